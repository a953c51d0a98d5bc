"""Reference model of the credit engine, in CPython, written to be obviously
correct rather than small or fast. The property tests run the firmware in
MicroPython and require exact agreement with this model.

Deliberately different ways of getting the same answers:
- dates come from Python's datetime, not the firmware's integer calendar;
- money charged is floor(S / 1e6) of the exact running sum S of price x Wh,
  not a carried remainder;
- an increment is cut at every candidate instant (each midnight, each TOU
  start of each day, the pending activation) listed up front, and Wh are
  handed out Wh by tier with plain min() arithmetic.
"""
import datetime

DAY = 86400
EPOCH = datetime.date(1970, 1, 1)
MAX_SPAN = 31 * DAY
NAMES = ("weekday", "weekend", "holiday")
KINDS = ("over_power", "over_voltage", "under_voltage")


def ymd(local_s):
    return EPOCH + datetime.timedelta(days=local_s // DAY)


def month_no(local_s):
    d = ymd(local_s)
    return d.year * 12 + d.month - 1


def is_holiday(local_s, holidays):
    d = ymd(local_s)
    return ("%04d-%02d-%02d" % (d.year, d.month, d.day)) in holidays or \
        ("%02d-%02d" % (d.month, d.day)) in holidays


def day_kind(local_s, weekend_days, holidays):
    if is_holiday(local_s, holidays):
        return "holiday"
    if ymd(local_s).weekday() in weekend_days:
        return "weekend"
    return "weekday"


class ModelTariff:
    def __init__(self, d):
        self.d = d
        self.version = d["version"]
        self.prices = d.get("prices_milli_per_kwh") or [[d["price_milli_per_kwh"]]]
        self.tops = list(d.get("tiers_wh", []))
        n = len(self.prices[0])
        days = d.get("days") or {}
        self.rows = {}
        self.rows["weekday"] = sorted(tuple(r) for r in days.get("weekday", [[0, 0]]))
        self.rows["weekend"] = sorted(tuple(r) for r in days["weekend"]) if "weekend" in days else self.rows["weekday"]
        self.rows["holiday"] = sorted(tuple(r) for r in days["holiday"]) if "holiday" in days else self.rows["weekend"]
        self.weekend_days = list(d.get("weekend_days", [5, 6]))
        self.holidays = set(d.get("holidays", []))
        names = list(d.get("periods", [])) or ["p%d" % i for i in range(n)]
        up = d.get("unsynced_period")
        self.unsynced = up if up is not None else (names.index("flat") if "flat" in names else n - 1)

    def period(self, local_s):
        rows = self.rows[day_kind(local_s, self.weekend_days, self.holidays)]
        sod = local_s % DAY
        p = rows[-1][1]  # before the first start of the day, yesterday's last period runs on
        for start, per in rows:
            if start <= sod:
                p = per
        return p

    def starts_in_day(self, day_start_s):
        rows = self.rows[day_kind(day_start_s, self.weekend_days, self.holidays)]
        return [day_start_s + s for s, _ in rows]

    def tier(self, month_wh):
        for i, top in enumerate(self.tops):
            if month_wh < top:
                return i, top - month_wh
        return len(self.tops), None


class ModelTrip:
    def __init__(self, kind, c):
        self.kind = kind
        self.limit = c["limit"]
        self.hold = c.get("hold_s", 5)
        self.retry = c.get("retry_s", 60)
        self.tries_max = c.get("tries", 3)
        self.clear = c.get("clear_s", 600)
        self.state = "armed"
        self.tries = 0
        self.bad = self.good = self.open = 0

    def update(self, span, value, ev):
        if self.state == "armed":
            if value is None:
                return False
            bad = value < self.limit if self.kind == "under_voltage" else value > self.limit
            if bad:
                self.bad += span
                self.good = 0
                if self.bad >= self.hold:
                    self.state, self.tries, self.bad, self.open = "tripped", self.tries + 1, 0, 0
                    ev.append(["trip", self.kind, self.tries, value])
                    return True
            else:
                self.bad = 0
                self.good += span
                if self.tries and self.good >= self.clear:
                    self.tries = 0
            return False
        if self.state == "tripped":
            self.open += span
            if self.open >= self.retry:
                if self.tries >= self.tries_max:
                    self.state = "locked"
                    ev.append(["lockout", self.kind, self.tries])
                else:
                    self.state, self.good = "armed", 0
                    ev.append(["retry", self.kind, self.tries])
                return True
        return False

    def reset(self, ev):
        if self.state == "locked":
            ev.append(["prot_reset", self.kind])
            self.state, self.tries, self.bad, self.good, self.open = "armed", 0, 0, 0, 0

    def reason(self):
        return {"armed": None, "tripped": self.kind, "locked": self.kind + "_lockout"}[self.state]


class Model:
    def __init__(self, cfg):
        self.cfg = dict(cfg)
        self.initial = cfg.get("initial_balance_minor", 0)
        self.S = 0                     # exact sum of price_milli_per_kwh * Wh
        self.charged = 0               # minor units charged = S // 10**6
        self.topups = self.loans = self.adjusts = self.repays = 0
        self.charged_wh = 0
        self.seq = 0
        self.open = None               # [ver, tier, period, day, wh, minor]
        self.ids = []
        self.mode = cfg.get("mode", "prepaid")
        self.remote_state = "auto"
        self.latched = False
        self.closed = True
        self.reason = "boot"
        self.level = 0
        self.alarm = 0
        self.beeps = 0
        self.beep_day = -1
        self.silenced_until = 0
        self.tariff = ModelTariff(cfg.get("tariff") or {"version": 0, "price_milli_per_kwh": 0})
        self.pending = None
        self.pending_at = 0
        self.month = None
        self.month_wh = 0
        self.now = 0
        self.synced = True
        self.unsynced_s = 0
        self.friendly_now = False
        self.ev = []
        self._configure()

    def _configure(self):
        c = self.cfg
        self.warn = list(c.get("warn_minor", [5000, 1000]))
        self.repeat_level = c.get("repeat_level", 2)
        self.silence_s = c.get("silence_s", 3600)
        self.auto = c.get("reconnect", "press") == "auto"
        f = c.get("friendly") or {}
        self.f_windows = [tuple(w) for w in f.get("windows", [])]
        self.f_weekend = bool(f.get("weekend", False))
        self.f_weekend_days = list(f.get("weekend_days", [5, 6]))
        self.f_holidays = set(f.get("holidays", []))
        self.f_configured = bool(self.f_windows or self.f_weekend or self.f_holidays)
        self.trips = [ModelTrip(k, (c.get("protection") or {})[k])
                      if (c.get("protection") or {}).get(k) else None for k in KINDS]
        self.ec_amount = c.get("emergency_minor", 0)
        self.ec_below = c.get("emergency_below_minor", 1000)
        self.unsynced_grace = c.get("unsynced_friendly_s", 86400)

    # --- money
    @property
    def balance(self):
        return self.initial + self.topups + self.loans + self.adjusts - self.charged - self.repays

    def close(self):
        if self.open:
            ver, tier, per, day, wh, minor = self.open
            self.seq += 1
            self.ev.append(["entry", self.seq, "charge", ver, minor, self.balance, "t%d/p%d" % (tier, per), wh])
            self.open = None

    def post(self, kind, ref, amount, reason):
        self.close()
        if kind == "topup":
            self.topups += amount
        elif kind == "loan":
            self.loans += amount
        elif kind == "repay":
            self.repays += amount
        else:
            self.adjusts += amount
        self.seq += 1
        self.ev.append(["entry", self.seq, kind, ref, amount, self.balance, reason, 0])

    def charge(self, wh, price, ver, tier, per, day):
        key = [ver, tier, per, day]
        if self.open and self.open[:4] != key:
            self.close()
        if not self.open:
            self.open = key + [0, 0]
        before = self.S // 10**6
        self.S += price * wh
        whole = self.S // 10**6 - before
        self.charged += whole
        self.charged_wh += wh
        self.open[4] += wh
        self.open[5] += whole

    # --- time
    def at(self, t):
        if self.pending and self.pending_at <= t:
            self.activate(self.pending)
        m = month_no(t)
        if self.month is None or m > self.month:
            if self.month is not None:
                self.close()
                self.ev.append(["month", self.month, self.month_wh])
            self.month = m
            self.month_wh = 0

    def activate(self, t):
        self.close()
        self.ev.append(["tariff", self.tariff.version, t.version])
        self.tariff = t
        self.pending = None

    def tick(self, wh, end, span, synced=True, volts=None, watts=None):
        span = max(0, min(span, MAX_SPAN))
        self.unsynced_s = 0 if synced else self.unsynced_s + span
        self.synced = synced
        start = end - span
        # every instant where the price, tier table or entry could change
        cuts = set()
        d0 = start - start % DAY
        for day_start in range(d0, end + 1, DAY):
            cuts.add(day_start)
            cuts.update(self.tariff.starts_in_day(day_start))
            if self.pending:
                cuts.update(self.pending.starts_in_day(day_start))
        if self.pending:
            cuts.add(self.pending_at)
        points = [start] + sorted(c for c in cuts if start < c < end) + [end]
        given = 0
        for i in range(len(points) - 1 if span else 1):
            a = points[i]
            b = points[i + 1] if span else end
            self.at(a)
            target = wh * (b - start) // span if span else wh
            share = target - given
            given = target
            per = self.tariff.period(a) if synced else self.tariff.unsynced
            while share > 0:
                tier, room = self.tariff.tier(self.month_wh)
                take = share if room is None else min(share, room)
                self.charge(take, self.tariff.prices[tier][per], self.tariff.version, tier, per, a // DAY)
                self.month_wh += take
                share -= take
        self.at(end)
        self.now = end
        self.friendly_now = self.friendly(end)
        changed = False
        for trip, value in zip(self.trips, (watts, volts, volts)):
            if trip and trip.update(span, value, self.ev):
                changed = True
        self.settle("protection" if changed else "tick")

    def friendly(self, t):
        if not self.f_configured:
            return False
        if not self.synced:
            return self.unsynced_s <= self.unsynced_grace
        kind = day_kind(t, self.f_weekend_days, self.f_holidays)
        if kind == "holiday" or (kind == "weekend" and self.f_weekend):
            return True
        sod = t % DAY
        for a, b in self.f_windows:
            if (a <= b and a <= sod < b) or (a > b and (sod >= a or sod < b)):
                return True
        return False

    # --- decisions
    def prot_reason(self):
        for trip in self.trips:
            if trip and trip.reason():
                return trip.reason()
        return None

    def settle(self, why):
        bal = self.balance
        pr = self.prot_reason()
        if self.remote_state == "disconnect":
            closed, reason = False, "remote_disconnect"
        elif pr:
            closed, reason = False, pr
        elif self.remote_state == "connect":
            closed, reason = True, "remote_connect"
        elif self.mode == "postpaid":
            closed, reason = True, "postpaid"
        elif bal <= 0 and not self.friendly_now:
            self.latched = True
            closed, reason = False, "credit"
        elif self.latched and not self.auto:
            closed, reason = False, "await_press"
        else:
            self.latched = False
            closed, reason = True, ("friendly" if bal <= 0 else why)
        standing = ("remote_connect", "postpaid", "friendly")
        if closed != self.closed or (reason != self.reason and (
                not closed or reason in standing or self.reason in standing)):
            self.ev.append(["relay", int(closed), reason, bal])
            self.closed, self.reason = closed, reason
        level = sum(1 for t in self.warn if bal <= t) if self.mode == "prepaid" else 0
        if level != self.level:
            self.ev.append(["warn", self.level, level, bal])
            self.level = level
            self.silenced_until = 0     # a press silences one level only
        if level >= self.repeat_level and self.now >= self.silenced_until:
            self.alarm = 2
        elif level >= 1 and self.now // DAY != self.beep_day:
            self.alarm, self.beep_day, self.beeps = 1, self.now // DAY, self.beeps + 1
        else:
            self.alarm = 0

    # --- actions
    def topup(self, ref, amount):
        if not isinstance(amount, int) or amount <= 0:
            return "bad_amount"
        if ref in self.ids:
            return "duplicate"
        self.remember(ref)
        self.post("topup", ref, amount, "payment")
        owed = self.loans - self.repays
        if owed > 0:
            self.post("repay", ref, min(owed, amount), "emergency")
        self.settle("topup")
        return "ok"

    def remember(self, ref):
        self.ids = (self.ids + [ref])[-16:]

    def adjust(self, ref, amount, reason="adjust"):
        if not isinstance(amount, int) or amount == 0:
            return "bad_amount"
        if ref in self.ids:
            return "duplicate"
        self.remember(ref)
        self.post("adjust", ref, amount, reason)
        self.settle("adjust")
        return "ok"

    def long_press(self):
        if self.mode != "prepaid":
            return "not_prepaid"
        if self.ec_amount <= 0:
            return "disabled"
        if self.loans - self.repays > 0:
            return "in_use"
        if self.balance > self.ec_below:
            return "not_low"
        self.post("loan", "ec", self.ec_amount, "long_press")
        self.latched = False
        self.settle("emergency")
        return "ok"

    def press(self):
        self.silenced_until = self.now + self.silence_s
        self.beep_day = self.now // DAY      # the daily beep is silenced too
        if self.latched and (self.balance > 0 or self.friendly_now):
            self.latched = False
        for trip in self.trips:
            if trip:
                trip.reset(self.ev)
        self.settle("press")
        return "ok"

    def remote(self, action):
        if action not in ("auto", "connect", "disconnect"):
            return "bad_action"
        if action == "connect":
            for trip in self.trips:
                if trip:
                    trip.reset(self.ev)
            self.latched = False
        self.remote_state = action
        self.ev.append(["remote", action])
        self.settle("remote")
        return "ok"

    def set_mode(self, mode):
        if mode not in ("prepaid", "postpaid"):
            return "bad_mode"
        if mode != self.mode:
            self.close()
            self.mode = mode
            self.latched = False
            self.ev.append(["mode", mode])
            self.settle("mode")
        return "ok"

    def set_tariff(self, d, at=None):
        t = ModelTariff(d)
        if t.version == self.tariff.version or (self.pending and self.pending.version == t.version):
            return "duplicate"
        if at is None or at <= self.now:
            self.activate(t)
        else:
            self.pending, self.pending_at = t, at
            self.ev.append(["tariff_pending", t.version, at])
        return "ok"

    def configure(self, changes):
        self.cfg.update(changes)
        self._configure()
        self.settle("config")
        return "ok"

    def report(self):
        return {"balance_minor": self.balance, "owed_minor": self.loans - self.repays,
                "charged_wh": self.charged_wh, "month_wh": self.month_wh,
                "month_key": self.month if self.month is not None else -1,
                "tariff_version": self.tariff.version,
                "pending_version": self.pending.version if self.pending else None,
                "pending_at_s": self.pending_at if self.pending else None,
                "mode": self.mode, "remote": self.remote_state, "relay_closed": self.closed,
                "relay_reason": self.reason, "level": self.level, "alarm": self.alarm,
                "beeps": self.beeps, "friendly": self.friendly_now, "synced": self.synced,
                "protection": self.prot_reason()}

    def totals(self):
        return [self.initial, self.topups, self.loans, self.adjusts, self.charged, self.repays]

    def pop_events(self):
        ev, self.ev = self.ev, []
        return ev


# --- running the firmware engine and the model on the same op sequences
#
# An op is a list: ["tick", wh, end_s, span_s, synced, volts, watts],
# ["topup", id, amount], ["adjust", id, amount, reason], ["press"], ["long"],
# ["remote", action], ["mode", mode], ["tariff", dict, at_or_None],
# ["config", changes], ["persist"] (firmware only: to_dict -> JSON -> from_dict;
# the model has nothing to persist, so agreement proves the round trip).

DRIVER = r"""
import sys, json
from firmware.credit.engine import CreditEngine

def apply(e, op):
    k = op[0]
    if k == "tick":
        return e.tick(op[1], op[2], op[3], op[4], op[5], op[6]) and "ev" or "-"
    if k == "topup":
        return e.topup(op[1], op[2])
    if k == "adjust":
        return e.adjust(op[1], op[2], op[3])
    if k == "press":
        return e.press()
    if k == "long":
        return e.long_press()
    if k == "remote":
        return e.remote(op[1])
    if k == "mode":
        return e.set_mode(op[1])
    if k == "tariff":
        return e.set_tariff(op[1], op[2])
    if k == "config":
        return e.configure(op[1])
    if k == "persist":
        return "ok"
    raise ValueError(k)

def report(e):
    # what the model's report() gives, from the engine's public surface
    led = e.ledger
    p = e.policy
    return {"balance_minor": led.balance_minor, "owed_minor": led.owed_minor(),
            "charged_wh": led.charged_wh, "month_wh": e.month_wh, "month_key": e.month_key,
            "tariff_version": e.tariff.version,
            "pending_version": e.pending.version if e.pending else None,
            "pending_at_s": e.pending_at_s if e.pending else None,
            "mode": p.mode, "remote": p.remote, "relay_closed": p.relay_closed,
            "relay_reason": p.relay_reason, "level": p.level, "alarm": p.alarm,
            "beeps": p.beeps, "friendly": e.in_friendly, "synced": e.synced,
            "protection": e.protection.open_reason()}

for line in sys.stdin:
    seq = json.loads(line)
    e = CreditEngine(seq["cfg"])
    for op in seq["ops"]:
        if op[0] == "persist":
            e = CreditEngine.from_dict(json.loads(json.dumps(e.to_dict())))
        r = apply(e, op)
        L = e.ledger
        print(json.dumps([r, report(e), e.pop_events(),
                          [L.initial_minor, L.topups_minor, L.loans_minor, L.adjust_minor,
                           L.charges_minor, L.repay_minor], L.rem_micro, L.conserved()]))
    print("END")
    e = None
"""


def model_apply(m, op):
    k = op[0]
    if k == "tick":
        before = len(m.ev)
        m.tick(op[1], op[2], op[3], op[4], op[5], op[6])
        return "ev" if len(m.ev) > before else "-"
    if k == "topup":
        return m.topup(op[1], op[2])
    if k == "adjust":
        return m.adjust(op[1], op[2], op[3])
    if k == "press":
        return m.press()
    if k == "long":
        return m.long_press()
    if k == "remote":
        return m.remote(op[1])
    if k == "mode":
        return m.set_mode(op[1])
    if k == "tariff":
        return m.set_tariff(op[1], op[2])
    if k == "config":
        return m.configure(op[1])
    if k == "persist":
        return "ok"
    raise ValueError(k)


def run_model(seq):
    m = Model(seq["cfg"])
    steps = []
    for op in seq["ops"]:
        r = model_apply(m, op)
        steps.append([r, m.report(), m.pop_events(), m.totals(), m.S % 10**6, True])
    return steps
