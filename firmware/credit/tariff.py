# Tariffs: what one kWh costs, given the billing month's kWh so far (the tier)
# and the local time (the time-of-use period).
#
# One shape covers every kind the utility sells (docs/credit.md):
#   prices_milli_per_kwh[tier][period]
#   flat     = 1 tier x 1 period      tiered = N tiers x 1 period
#   TOU      = 1 tier x P periods     tiered + TOU = N x P
# tiers_wh lists the upper bounds (monthly Wh) of every tier but the last.
# days maps "weekday"/"weekend"/"holiday" to [[start_second_of_day, period], ...].
from firmware.localtime import DAY_S
from firmware.credit.calendar import DayCalendar, WEEKDAY, WEEKEND, HOLIDAY

_DAY_NAMES = ("weekday", "weekend", "holiday")


def _schedule(rows, periods):
    """[[start_s, period], ...] -> flat tuple (start0, p0, start1, p1, ...) from 0 s."""
    rows = sorted((int(r[0]), int(r[1])) for r in rows)
    if not rows:
        raise ValueError("tariff: empty day")
    flat = []
    for start, p in rows:
        if not (0 <= start < DAY_S) or not (0 <= p < periods):
            raise ValueError("tariff: day row")
        if flat and flat[-2] == start:
            raise ValueError("tariff: duplicate start")
        flat.append(start)
        flat.append(p)
    if flat[0] != 0:  # the last period of the day runs on past midnight
        flat = [0, flat[-1]] + flat
    return tuple(flat)


class Tariff:
    def __init__(self, d):
        """Validate and compile a tariff dict; raises ValueError on a bad one."""
        self.source = d
        self.version = int(d["version"])
        prices = d.get("prices_milli_per_kwh")
        if prices is None:
            prices = [[d["price_milli_per_kwh"]]]
        self.prices = tuple(tuple(int(p) for p in row) for row in prices)
        self.tiers_wh = tuple(int(t) for t in d.get("tiers_wh", ()))
        n_periods = len(self.prices[0])
        if len(self.prices) != len(self.tiers_wh) + 1 or n_periods < 1:
            raise ValueError("tariff: price table shape")
        for row in self.prices:
            if len(row) != n_periods or min(row) < 0:
                raise ValueError("tariff: price row")
        last = 0
        for t in self.tiers_wh:
            if t <= last:
                raise ValueError("tariff: tiers must rise")
            last = t
        self.n_periods = n_periods
        self.period_names = tuple(d.get("periods", ())) or tuple("p%d" % i for i in range(n_periods))
        days = d.get("days") or {}
        weekday = _schedule(days.get("weekday", [[0, 0]]), n_periods)
        weekend = _schedule(days["weekend"], n_periods) if "weekend" in days else weekday
        holiday = _schedule(days["holiday"], n_periods) if "holiday" in days else weekend
        self.days = (weekday, weekend, holiday)
        self.calendar = DayCalendar(d.get("weekend_days", (5, 6)), d.get("holidays", ()))
        up = d.get("unsynced_period")
        if up is None:  # the standard ("flat") price when the time of day is unknown
            up = self.period_names.index("flat") if "flat" in self.period_names else n_periods - 1
        self.unsynced_period = int(up)
        if not 0 <= self.unsynced_period < n_periods:
            raise ValueError("tariff: unsynced_period")
        self.tou = n_periods > 1
        self.next_switch_s = DAY_S  # set by period_at()

    def _row_after(self, sched, sod):
        # index of the first row starting after `sod` (the row before it is in force)
        i = 2
        n = len(sched)
        while i < n and sched[i] <= sod:
            i += 2
        return i

    def period_at(self, day_type, sod):
        """Period in force at second-of-day `sod`; sets next_switch_s to when it ends."""
        sched = self.days[day_type]
        i = self._row_after(sched, sod)
        self.next_switch_s = sched[i] if i < len(sched) else DAY_S
        return sched[i - 1]

    def period_of(self, day_type, sod):
        """Period in force at second-of-day `sod`, without touching next_switch_s
        (for views, which run between the engine's ticks)."""
        sched = self.days[day_type]
        return sched[self._row_after(sched, sod) - 1]

    def price_milli_per_kwh(self, tier, period):
        """What a kWh costs in `tier` during `period`. The engine charges with
        this lookup and every display of the price goes through it too, so
        the price shown is the price charged whatever form the tariff came in
        (a flat "price_milli_per_kwh" or a "prices_milli_per_kwh" table)."""
        return self.prices[tier][period]

    def tier_of(self, month_wh):
        """Index of the tier that the next Wh of the month falls into."""
        i = 0
        for top in self.tiers_wh:
            if month_wh < top:
                return i
            i += 1
        return i

    def tier_room_wh(self, tier, month_wh):
        """Wh left in `tier` before the next one starts; -1 for the last tier."""
        if tier < len(self.tiers_wh):
            return self.tiers_wh[tier] - month_wh
        return -1
