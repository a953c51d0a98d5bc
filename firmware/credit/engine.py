# The credit engine: one object that the meter task ticks with each energy
# increment, and that the command handler and the buttons call. It charges the
# ledger under the active tariff, splitting every increment exactly at day,
# month, time-of-use, tier and tariff-activation boundaries, then lets the
# policy decide the relay, warnings and buzzer. Results are attributes
# (balance_minor(), relay_closed, relay_reason, level, alarm) plus events
# drained with pop_events() for the outbox. Rules in words: docs/credit.md.
from micropython import const

from firmware.localtime import DAY_S, month_key, month_start_day
from firmware.credit.ledger import Ledger, TOPUP, ADJUST, LOAN, REPAY
from firmware.credit.tariff import Tariff
from firmware.credit.policy import (Policy, Friendly, PREPAID, POSTPAID, REMOTE_AUTO, MANUAL,
                                    REMOTE_CONNECT, REMOTE_DISCONNECT)
from firmware.credit.protection import Protection

# An increment longer than this (meter time) is treated as this long: it bounds
# the work of one tick; energy is spread over the last _MAX_SPAN_S seconds.
_MAX_SPAN_S = const(2678400)  # 31 days

_FREE = {"version": 0, "price_milli_per_kwh": 0}


class CreditEngine:
    def __init__(self, cfg):
        self.cfg = dict(cfg)
        self.ledger = Ledger(cfg.get("initial_balance_minor", 0))
        self.policy = Policy(self.cfg)
        self.policy.mode = cfg.get("mode", PREPAID)
        self._configure()
        self.tariff = Tariff(cfg.get("tariff") or _FREE)
        self.pending = None
        self.pending_at_s = 0
        self.month_key = -1
        self.month_next_s = 0     # local second the next billing month starts
        self.month_wh = 0         # Wh charged in the billing month so far (sets the tier)
        self.month_c0 = 0         # the ledger's charges_minor when the month began (its cost so far: the LCD)
        self.now_s = 0            # local time at the end of the last tick
        self.synced = True
        self.unsynced_s = 0       # meter seconds run on an unsynced clock
        self.in_friendly = False
        self.last_topup = None    # [order id, amount_minor, local s] of the last top-up (LCD)
        self.events = []
        self._dt_day = None       # cache: day number -> tariff day type
        self._dt = 0

    def _configure(self):
        c = self.cfg
        self.policy.configure(c)
        self.friendly = Friendly(c.get("friendly"))
        self.protection = Protection(c.get("protection"))
        self.emergency_minor = c.get("emergency_minor", 0)
        self.emergency_below_minor = c.get("emergency_below_minor", 1000)
        self.unsynced_friendly_s = c.get("unsynced_friendly_s", 86400)

    # --- the meter task
    def tick(self, energy_wh, end_s, span_s, synced=True, voltage_v=None, power_w=None):
        """Charge `energy_wh` used over the `span_s` meter seconds ending at local
        time `end_s`, then re-decide. The increment's start is end_s - span_s,
        so a clock step between ticks never charges anything twice. Returns
        True if events were raised."""
        ev = self.events
        if span_s < 0:
            span_s = 0
        elif span_s > _MAX_SPAN_S:
            span_s = _MAX_SPAN_S
        if synced:
            self.unsynced_s = 0
        else:
            self.unsynced_s += span_s
        self.synced = synced
        start = end_s - span_s
        t = start
        done = 0
        while True:
            self._advance(t)
            day = t // DAY_S
            seg_end = (day + 1) * DAY_S
            if seg_end > end_s:
                seg_end = end_s
            tar = self.tariff
            if synced:
                if day != self._dt_day:
                    self._dt = tar.calendar.day_type(day)
                    self._dt_day = day
                period = tar.period_at(self._dt, t - day * DAY_S)
                switch = day * DAY_S + tar.next_switch_s
                if switch < seg_end:
                    seg_end = switch
            else:
                period = tar.unsynced_period
            if self.pending is not None and t < self.pending_at_s < seg_end:
                seg_end = self.pending_at_s
            # energy is taken as spread evenly over the increment
            if span_s:
                share = energy_wh * (seg_end - start) // span_s - done
            else:
                share = energy_wh - done
            if share:
                self._charge(share, period, day)
                done += share
            if seg_end >= end_s:
                break
            t = seg_end
        self._advance(end_s)
        self.now_s = end_s
        self.in_friendly = self._friendly_now()
        changed = self.protection.update(span_s, power_w, voltage_v, ev)
        self._settle("protection" if changed else "tick")
        return len(ev) > 0

    def _advance(self, t):
        """Apply what happens at local time t: a pending tariff, a new month.
        The month only ever moves forward, so a clock stepped back keeps
        billing into the later month instead of resetting its kWh twice."""
        if self.pending is not None and self.pending_at_s <= t:
            self._activate(self.pending)
        if t >= self.month_next_s:
            key = month_key(t // DAY_S)
            if key > self.month_key:
                if self.month_key >= 0:
                    self.ledger.close_charge(self.events)
                    self.events.append(("month", self.month_key, self.month_wh))
                self.month_key = key
                self.month_wh = 0
                self.month_c0 = self.ledger.charges_minor
                self.month_next_s = month_start_day(key + 1) * DAY_S

    def _charge(self, wh, period, day):
        tar = self.tariff
        led = self.ledger
        while wh > 0:
            tier = tar.tier_of(self.month_wh)
            room = tar.tier_room_wh(tier, self.month_wh)
            take = wh if (room < 0 or room >= wh) else room
            led.charge(take, tar.price_milli_per_kwh(tier, period), tar.version, tier, period, day,
                       self.events)
            self.month_wh += take
            wh -= take

    def _activate(self, tariff):
        self.ledger.close_charge(self.events)
        self.events.append(("tariff", self.tariff.version, tariff.version))
        self.tariff = tariff
        self.pending = None
        self._dt_day = None

    def _friendly_now(self):
        if not self.friendly.configured:
            return False
        if not self.synced:
            # Safe rule: the meter cannot tell night, weekend or holiday, so it
            # treats the time as friendly, but only for a bounded while.
            return self.unsynced_s <= self.unsynced_friendly_s
        return self.friendly.in_force(self.now_s)

    def _settle(self, why):
        p = self.policy
        if p.warn_days:
            # the meter core has it loaded for the screens anyway
            from firmware.credit.forecast import days
            p.days = days(self.ledger, self.now_s // DAY_S, self.ledger.balance_minor)
        p.settle(self.ledger.balance_minor, self.in_friendly,
                           self.protection.open_reason(), why, self.now_s, self.events)

    # --- customer and server actions; each returns "ok" or a reason code
    def topup(self, order_id, amount_minor):
        """Credit a payment; emergency credit still owed is repaid from it first."""
        if not isinstance(amount_minor, int) or amount_minor <= 0:
            return "bad_amount"
        led = self.ledger
        if led.seen(order_id):
            return "duplicate"
        led.remember(order_id)
        led.post(TOPUP, order_id, amount_minor, "payment", self.events)
        self.last_topup = [order_id, amount_minor, self.now_s]
        owed = led.owed_minor()
        if owed > 0:
            led.post(REPAY, order_id, owed if owed < amount_minor else amount_minor,
                     "emergency", self.events)
        self._settle("topup")
        return "ok"

    def adjust(self, adj_id, amount_minor, reason="adjust"):
        if not isinstance(amount_minor, int) or amount_minor == 0:
            return "bad_amount"
        led = self.ledger
        if led.seen(adj_id):
            return "duplicate"
        led.remember(adj_id)
        led.post(ADJUST, adj_id, amount_minor, reason, self.events)
        self._settle("adjust")
        return "ok"

    def emergency_refusal(self):
        """Why a long press would lend no emergency credit now: "not_prepaid",
        "disabled", "in_use" or "not_low"; None when it would (the LCD offers
        it only then, firmware/ui/screens.py)."""
        led = self.ledger
        if self.policy.mode != PREPAID:
            return "not_prepaid"
        if self.emergency_minor <= 0:
            return "disabled"
        if led.owed_minor() > 0:
            return "in_use"
        if led.balance_minor > self.emergency_below_minor:
            return "not_low"
        return None

    def long_press(self):
        """The customer asks for emergency credit."""
        why = self.emergency_refusal()
        if why:
            return why
        led = self.ledger
        led.post(LOAN, "ec", self.emergency_minor, "long_press", self.events)
        self.policy.credit_open = False  # the customer is at the meter: no extra press needed
        self._settle("emergency")
        return "ok"

    def press(self):
        """Short press: silences the buzzer, confirms a reconnection, clears a
        protection lockout."""
        self.policy.press(self.now_s, self.ledger.balance_minor, self.in_friendly)
        self.protection.reset(self.events)
        self._settle("press")
        return "ok"

    def remote(self, action):
        if action not in (REMOTE_AUTO, REMOTE_CONNECT, REMOTE_DISCONNECT):
            return "bad_action"
        if action == REMOTE_CONNECT:
            self.protection.reset(self.events)
            self.policy.credit_open = False
        self.policy.remote = action
        self.events.append(("remote", action))
        self._settle("remote")
        return "ok"

    def manual(self, action):
        """A technician's override of the relay: "open", "close" or "auto"
        (credit/policy.py, MANUAL): the relay's reason says so while it holds."""
        if action not in MANUAL:
            return "bad_action"
        self.policy.manual = action
        self._settle("manual")
        return "ok"

    def set_mode(self, mode):
        """Prepaid <-> postpaid; every register and the balance are kept."""
        if mode not in (PREPAID, POSTPAID):
            return "bad_mode"
        if mode != self.policy.mode:
            self.ledger.close_charge(self.events)
            self.policy.mode = mode
            self.policy.credit_open = False
            self.events.append(("mode", mode))
            self._settle("mode")
        return "ok"

    def set_tariff(self, d, activate_at_s=None):
        """Install a tariff now, or as pending from local time activate_at_s.
        A newer pending tariff replaces an older one."""
        try:
            t = Tariff(d)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError):
            return "bad_tariff"
        if t.version == self.tariff.version or (self.pending and self.pending.version == t.version):
            return "duplicate"
        if activate_at_s is None or activate_at_s <= self.now_s:
            self._activate(t)
        else:
            self.pending = t
            self.pending_at_s = activate_at_s
            self.events.append(("tariff_pending", t.version, activate_at_s))
        return "ok"

    def configure(self, changes):
        """Merge config changes (thresholds, friendly periods, emergency credit,
        reconnect mode, protection limits). Protection timers restart."""
        self.cfg.update(changes)
        self._configure()
        self._settle("config")
        return "ok"

    def apply_hot(self, balance_minor, rem_micro, wh, local_s):
        """Take the charging of a hot checkpoint newer than the snapshot this
        engine was loaded from (firmware/core/durable.py)."""
        self.ledger.apply_hot(balance_minor, rem_micro, wh)
        self.month_wh += wh
        if local_s > self.now_s:
            self.now_s = local_s

    # --- views
    def price_now(self):
        """(price_milli_per_kwh, tier, period) for the next Wh: the tier the
        billing month's Wh have reached and the period in force at the last
        tick's local time (the tariff's unsynced period while the clock is not
        synced), exactly as _charge() would look them up. The LCD, the state
        and the console show this, never the tariff's source dict."""
        tar = self.tariff
        tier = tar.tier_of(self.month_wh)
        if self.synced:
            day = self.now_s // DAY_S
            dt = self._dt if day == self._dt_day else tar.calendar.day_type(day)
            period = tar.period_of(dt, self.now_s - day * DAY_S)
        else:
            period = tar.unsynced_period
        return tar.price_milli_per_kwh(tier, period), tier, period

    def balance_minor(self):
        return self.ledger.balance_minor

    @property
    def relay_closed(self):
        return self.policy.relay_closed

    @property
    def relay_reason(self):
        return self.policy.relay_reason

    @property
    def level(self):
        return self.policy.level

    @property
    def alarm(self):
        return self.policy.alarm

    def pop_events(self):
        """Events since the last call, oldest first (an empty tuple if none)."""
        ev = self.events
        if not ev:
            return ()
        self.events = []
        return ev

    # --- persistence
    def to_dict(self):
        return {"cfg": self.cfg, "ledger": self.ledger.to_dict(), "policy": self.policy.to_dict(),
                "prot": self.protection.to_list(), "tariff": self.tariff.source,
                "pending": self.pending.source if self.pending else None,
                "pending_at_s": self.pending_at_s, "month_key": self.month_key,
                "month_wh": self.month_wh, "month_c0": self.month_c0, "now_s": self.now_s, "synced": self.synced,
                "unsynced_s": self.unsynced_s, "friendly": self.in_friendly,
                "last_topup": self.last_topup}

    @classmethod
    def from_dict(cls, d):
        e = cls(d["cfg"])
        e.ledger.load(d["ledger"])
        e.policy.load(d["policy"])
        e.protection.load(d.get("prot"))
        e.tariff = Tariff(d["tariff"])
        e.pending = Tariff(d["pending"]) if d.get("pending") else None
        e.pending_at_s = d.get("pending_at_s", 0)
        e.month_key = d.get("month_key", -1)
        e.month_wh = d.get("month_wh", 0)
        # a flash from before it: the month's cost counts from this boot on
        e.month_c0 = d.get("month_c0", e.ledger.charges_minor)
        e.month_next_s = month_start_day(e.month_key + 1) * DAY_S if e.month_key >= 0 else 0
        e.now_s = d.get("now_s", 0)
        e.synced = d.get("synced", True)
        e.unsynced_s = d.get("unsynced_s", 0)
        e.in_friendly = d.get("friendly", False)
        e.last_topup = d.get("last_topup")
        return e
