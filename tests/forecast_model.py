"""Reference model of the customer's forecasts (firmware/credit/forecast.py),
in CPython, written to be obviously correct rather than small or fast.

It rides on the credit engine's reference model (tests/credit_model.py),
which keeps the exact money sum, the billing month and the tariff, and adds
what the forecasts need, each got a different way from the firmware's:
- every day's cost in a dict keyed by the day (the firmware keeps a ring of
  8 slots), and the first day that ever took a charge (the firmware infers it
  from a count of days seen);
- the Wh the balance buys by a binary search over "what would w Wh cost",
  each Wh priced by its tier (the firmware walks the tiers once);
- the next price change by listing every instant where the price could
  change (each midnight and each period start of the next 9 days, the
  pending activation, the next month start) and testing the price at each,
  with the date from Python's datetime (the firmware scans its schedule
  rows and its integer calendar).
"""
import datetime

from credit_model import DAY, Model, ymd

MICRO = 10 ** 6
BASIS_DAYS = 7
AHEAD_DAYS = 8


class ForecastModel(Model):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.day_cost = {}       # local day number -> minor units charged that day
        self.first_day = None    # the first day that took a charge
        self.newest_day = None

    def charge(self, wh, price, ver, tier, per, day):
        before = self.charged
        super().charge(wh, price, ver, tier, per, day)
        # the rule: a day before the newest one charged (a clock stepped
        # back) counts into the newest
        if self.newest_day is None or day > self.newest_day:
            self.newest_day = day
        if self.first_day is None:
            self.first_day = day
        self.day_cost[self.newest_day] = self.day_cost.get(self.newest_day, 0) + self.charged - before

    # --- the figures
    def rem_micro(self):
        return self.S % MICRO

    def period_now(self):
        return self.tariff.period(self.now) if self.synced else self.tariff.unsynced

    def cost_micro(self, w, period):
        """Millionths of a minor unit that w more Wh cost from month_wh on."""
        total = 0
        at = self.month_wh
        left = w
        while left > 0:
            tier, room = self.tariff.tier(at)
            take = left if room is None else min(left, room)
            total += take * self.tariff.prices[tier][period]
            at += take
            left -= take
        return total

    def remaining_wh(self):
        period = self.period_now()
        budget = self.balance * MICRO - self.rem_micro()
        if budget <= 0:
            return 0
        tops = self.tariff.tops
        last_price = self.tariff.prices[len(tops)][period]
        if last_price == 0:
            # free once the last tier is reached: unlimited if the money
            # lasts to its start
            to_last = max(0, (tops[-1] if tops else 0) - self.month_wh)
            if self.cost_micro(to_last, period) <= budget:
                return -1
        lo, hi = 0, 1
        while self.cost_micro(hi, period) <= budget:
            hi *= 2
        while hi - lo > 1:            # cost(lo) <= budget < cost(hi)
            mid = (lo + hi) // 2
            if self.cost_micro(mid, period) <= budget:
                lo = mid
            else:
                hi = mid
        return lo

    def estimate(self, wh):
        tops = self.tariff.tops
        if wh < 0:
            last_tier = len(tops)
        else:
            last_tier = self.tariff.tier(self.month_wh + wh - 1 if wh else self.month_wh)[0]
        n_periods = len(self.tariff.prices[0])
        return n_periods > 1 or self.pending is not None or last_tier > 0

    def days(self):
        today = self.now // DAY
        if self.first_day is None:
            used = 0
        else:
            used = max(0, min(BASIS_DAYS, today - self.first_day))
        total = sum(self.day_cost.get(d, 0) for d in range(today - used, today))
        if total <= 0:
            return None, used
        if self.balance <= 0:
            return 0, used
        # days = balance / (total / used), in tenths, rounded down
        return (self.balance * 10 * used) // total, used

    def next_change_s(self, tier, price):
        now = self.now
        candidates = []
        if self.pending is not None:
            candidates.append(self.pending_at)
        if tier > 0:
            d = ymd(now)
            first = datetime.date(d.year + d.month // 12, d.month % 12 + 1, 1)
            candidates.append((first - datetime.date(1970, 1, 1)).days * DAY)
        tar = self.tariff
        if self.synced and len(tar.prices[0]) > 1:
            today0 = now - now % DAY
            for k in range(AHEAD_DAYS + 1):
                day_start = today0 + k * DAY
                for t in [day_start] + tar.starts_in_day(day_start):
                    if t > now and tar.prices[tier][tar.period(t)] != price:
                        candidates.append(t)
        return min(candidates) - now if candidates else None

    def figures(self):
        """The firmware's OUT list."""
        period = self.period_now()
        tier, room = self.tariff.tier(self.month_wh)
        price = self.tariff.prices[tier][period]
        wh = self.remaining_wh()
        days_x10, used = self.days()
        names = list(self.tariff.d.get("periods", [])) or ["p%d" % i for i in range(len(self.tariff.prices[0]))]
        return [wh, self.estimate(wh), days_x10, used, price, names[period],
                self.next_change_s(tier, price), tier, room,
                self.tariff.prices[tier + 1][period] if room is not None else None]


# Runs one CreditEngine per sequence in MicroPython and prints forecast.fill()
# after each op (JSON lines; "END" after each sequence).
DRIVER = r"""
import sys, json
from firmware.credit.engine import CreditEngine
from firmware.credit import forecast

for line in sys.stdin:
    seq = json.loads(line)
    e = CreditEngine(seq["cfg"])
    for op in seq["ops"]:
        k = op[0]
        if k == "tick":
            e.tick(op[1], op[2], op[3], op[4])
        elif k == "topup":
            e.topup(op[1], op[2])
        elif k == "tariff":
            e.set_tariff(op[1], op[2])
        elif k == "persist":
            e = CreditEngine.from_dict(json.loads(json.dumps(e.to_dict())))
        print(json.dumps([forecast.fill(e), e.level]))
        e.pop_events()   # as the meter drains them each tick: left, they grew until a 2 KB list found no hole
    print("END")
"""


def model_run(seq):
    m = ForecastModel(seq["cfg"])
    out = []
    for op in seq["ops"]:
        k = op[0]
        if k == "tick":
            m.tick(op[1], op[2], op[3], op[4])
        elif k == "topup":
            m.topup(op[1], op[2])
        elif k == "tariff":
            m.set_tariff(op[1], op[2])
        f = m.figures()
        # the days-based warning: level 1 at least once the forecast is at
        # or below warn_days (prepaid only), whatever the money thresholds say
        wd = seq["cfg"].get("warn_days")
        level = m.level
        if not level and m.mode == "prepaid" and wd and f[2] is not None and f[2] <= wd * 10:
            level = 1
        out.append([f, level])
    return out
