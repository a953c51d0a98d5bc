# Energy registers: the figures billing reads. Integer Wh only.
#
# Totals: import 1.8.0, per tariff period 1.8.1..1.8.4, export 2.8.0. Calendar
# registers: today/yesterday, this/last month, and the 15-minute maximum
# demand of the month (OBIS 1.6.0). Frozen records are taken at local
# midnight (daily, ring of _DAYS_KEPT) and at month end (monthly, ring of
# _MONTHS_KEPT).
#
# Time is the caller's local wall clock in seconds (clock.py), which can jump:
#  - backwards (RTC corrected, DST ending): the calendar position never moves
#    back, energy keeps going into the current day/month/window, so nothing is
#    counted twice and no record is rewritten;
#  - far forwards (the sim runs a month in seconds, a meter was unpowered for
#    days): every midnight and month end passed is frozen in order, the
#    skipped days with zero energy.
# Energy is added once, to whatever period is current after any rollover.
import array

from micropython import const

from firmware.localtime import DAY_S, month_key

_DAYS_KEPT = const(62)
_MONTHS_KEPT = const(24)
_PERIODS = const(4)
_WINDOW_S = const(900)     # demand integration period
_DREC = const(4)           # daily record: day, 1.8.0, 2.8.0, day import Wh
_MREC = const(9)           # monthly: month, 1.8.0, 1.8.1..1.8.4, 2.8.0, month Wh, max demand W
_SKIP_MAX = const(800)     # days frozen one by one on a forward jump (> 24 months)


class Registers:
    def __init__(self):
        self.import_wh = 0                       # 1.8.0
        self.period_wh = array.array("i", bytes(4 * _PERIODS))  # 1.8.1..1.8.4
        self.export_wh = 0                       # 2.8.0
        self.day = -1                            # local day number of "today"
        self.today_wh = 0
        self.yesterday_wh = 0
        self.month = -1                          # year*12 + month0 of "this month"
        self.month_wh = 0
        self.last_month_wh = 0
        self.window = -1                         # current 15-min window number
        self.window_wh = 0
        self.md_w = 0                            # this month's max 15-min demand
        self.md_at = 0                           # local start of that window
        self.last_md_w = 0
        self.daily = array.array("i", bytes(4 * _DREC * _DAYS_KEPT))
        self.days_n = 0                          # records held (<= _DAYS_KEPT)
        self.days_head = 0                       # next slot to write
        self.monthly = array.array("i", bytes(4 * _MREC * _MONTHS_KEPT))
        self.months_n = 0
        self.months_head = 0

    # --- the one way energy comes in
    def add(self, import_wh, export_wh, period_index, local_s):
        """Register energy metered since the last call at local time local_s."""
        self._advance(local_s)
        if import_wh > 0:
            self.import_wh += import_wh
            if period_index < 0 or period_index >= _PERIODS:
                period_index = 0
            self.period_wh[period_index] += import_wh
            self.today_wh += import_wh
            self.month_wh += import_wh
            self.window_wh += import_wh
        if export_wh > 0:
            self.export_wh += export_wh

    def _advance(self, local_s):
        day = local_s // DAY_S
        win = local_s // _WINDOW_S
        if self.day < 0:                      # first call ever: just start here
            self.day = day
            self.month = month_key(day)
            self.window = win
            return
        if win > self.window:
            self._close_window()
            self.window = win
        while day > self.day:
            if day - self.day > _SKIP_MAX:
                # years without power or a bogus clock: both rings are already
                # full of empty records, so jump to where they matter again
                self._end_day()
                target = day - _SKIP_MAX
                m = month_key(target)
                if m != self.month:
                    self._end_month()
                    self.month = m
                self.day = target
                self.yesterday_wh = 0
                continue
            self._end_day()

    def _close_window(self):
        d = self.window_wh * (3600 // _WINDOW_S)   # Wh in 15 min -> average W
        if d > self.md_w:
            self.md_w = d
            self.md_at = self.window * _WINDOW_S
        self.window_wh = 0

    def _end_day(self):
        r = self.daily
        k = self.days_head * _DREC
        r[k] = self.day
        r[k + 1] = self.import_wh
        r[k + 2] = self.export_wh
        r[k + 3] = self.today_wh
        self.days_head = (self.days_head + 1) % _DAYS_KEPT
        if self.days_n < _DAYS_KEPT:
            self.days_n += 1
        self.yesterday_wh = self.today_wh
        self.today_wh = 0
        self.day += 1
        m = month_key(self.day)
        if m != self.month:
            self._end_month()
            self.month = m

    def _end_month(self):
        r = self.monthly
        k = self.months_head * _MREC
        r[k] = self.month
        r[k + 1] = self.import_wh
        for p in range(_PERIODS):
            r[k + 2 + p] = self.period_wh[p]
        r[k + 6] = self.export_wh
        r[k + 7] = self.month_wh
        r[k + 8] = self.md_w
        self.months_head = (self.months_head + 1) % _MONTHS_KEPT
        if self.months_n < _MONTHS_KEPT:
            self.months_n += 1
        self.last_month_wh = self.month_wh
        self.month_wh = 0
        self.last_md_w = self.md_w
        self.md_w = 0
        self.md_at = 0

    # --- views
    def daily_records(self):
        """Oldest first: [day, import_wh(1.8.0), export_wh(2.8.0), day_wh]."""
        return list(self.daily_rows())

    def monthly_records(self):
        """Oldest first: [month, 1.8.0, 1.8.1, 1.8.2, 1.8.3, 1.8.4, 2.8.0, month_wh, md_w]."""
        return list(self.monthly_rows())

    def daily_rows(self):
        """daily_records() one row at a time (a generator): a commit writes
        them as they come, never holding the 62 rows as lists at once."""
        return _rows(self.daily, self.days_head, self.days_n, _DAYS_KEPT, _DREC)

    def monthly_rows(self):
        return _rows(self.monthly, self.months_head, self.months_n, _MONTHS_KEPT, _MREC)

    def last_daily(self):
        """The newest daily record (daily_records()[-1]), None if none."""
        return _newest(self.daily, self.days_head, self.days_n, _DAYS_KEPT, _DREC)

    def last_monthly(self):
        return _newest(self.monthly, self.months_head, self.months_n, _MONTHS_KEPT, _MREC)

    def telemetry(self):
        """Compact dict with OBIS names for the state report."""
        p = self.period_wh
        return {"1.8.0": self.import_wh, "1.8.1": p[0], "1.8.2": p[1], "1.8.3": p[2],
                "1.8.4": p[3], "2.8.0": self.export_wh, "1.6.0": self.md_w,
                "today_wh": self.today_wh, "yesterday_wh": self.yesterday_wh,
                "month_wh": self.month_wh, "last_month_wh": self.last_month_wh}

    # --- persistence
    _SCALARS = ("import_wh", "export_wh", "day", "today_wh", "yesterday_wh", "month",
                "month_wh", "last_month_wh", "window", "window_wh", "md_w", "md_at",
                "last_md_w")

    def to_dict(self):
        d = dict(self.members())
        d["daily"] = list(d["daily"])
        d["monthly"] = list(d["monthly"])
        return d

    def members(self):
        """to_dict()'s (key, value) pairs in its order, the records as row
        generators: the snapshot is written from these (core/durable.py)."""
        for name in self._SCALARS:
            yield name, getattr(self, name)
        yield "period_wh", list(self.period_wh)
        yield "daily", self.daily_rows()
        yield "monthly", self.monthly_rows()

    @classmethod
    def from_dict(cls, d):
        r = cls()
        for name in cls._SCALARS:
            if name in d:
                setattr(r, name, int(d[name]))
        for p, v in enumerate(d.get("period_wh", ())[:_PERIODS]):
            r.period_wh[p] = int(v)
        for rec in d.get("daily", ())[-_DAYS_KEPT:]:
            k = r.days_head * _DREC
            for j in range(_DREC):
                r.daily[k + j] = int(rec[j])
            r.days_head = (r.days_head + 1) % _DAYS_KEPT
            r.days_n += 1
        for rec in d.get("monthly", ())[-_MONTHS_KEPT:]:
            k = r.months_head * _MREC
            for j in range(_MREC):
                r.monthly[k + j] = int(rec[j])
            r.months_head = (r.months_head + 1) % _MONTHS_KEPT
            r.months_n += 1
        return r


def _rows(ring, head, n, kept, width):
    # a ring of fixed-width records, oldest first, one list per row
    start = (head - n) % kept
    for j in range(n):
        k = ((start + j) % kept) * width
        yield list(ring[k:k + width])


def _newest(ring, head, n, kept, width):
    if not n:
        return None
    k = ((head - 1) % kept) * width
    return list(ring[k:k + width])
