# Pure calendar maths on *local seconds* (seconds since 1970-01-01 00:00 in
# local time, i.e. UTC seconds + the configured UTC offset).
#
# Why not time.localtime(): its epoch, range and time-zone handling differ
# between MicroPython ports (the ESP32 counts from 2000 on older builds, the
# unix port uses the host's zone). These integer functions give the same date
# on every port and in CPython, for any day from year 1 onwards.
#
# This is the firmware's one copy of the calendar: the credit engine, the
# energy registers and the ESP32 board's RTC all use it. (lib/atmodem.py keeps
# a small +CCLK parser of its own: lib/ drivers do not import firmware/.)
from micropython import const

DAY_S = const(86400)
_DAYS_400Y = const(146097)      # days in a 400-year Gregorian cycle
_EPOCH_SHIFT = const(719468)    # days from 0000-03-01 to 1970-01-01


def day_number(local_s):
    """Day count since 1970-01-01 (negative before it)."""
    return local_s // DAY_S


def seconds_of_day(local_s):
    return local_s % DAY_S


def weekday(day):
    """Monday = 0 ... Sunday = 6. 1970-01-01 was a Thursday."""
    return (day + 3) % 7


def days_from_civil(y, m, d):
    """Day number of the date y-m-d."""
    # Count years from March so that the leap day is the last day of the year.
    if m <= 2:
        y -= 1
    era = y // 400
    year_of_era = y - era * 400
    month_from_march = (m + 9) % 12
    day_of_year = (153 * month_from_march + 2) // 5 + d - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * _DAYS_400Y + day_of_era - _EPOCH_SHIFT


def _civil_packed(day):
    # ((year * 16 + month) * 32 + day of month) of a day number: one small
    # int, so month_key() (run at every midnight) allocates nothing.
    z = day + _EPOCH_SHIFT
    era = z // _DAYS_400Y
    day_of_era = z - era * _DAYS_400Y
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36524
                   - day_of_era // 146096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_from_march = (5 * day_of_year + 2) // 153
    d = day_of_year - (153 * month_from_march + 2) // 5 + 1
    m = month_from_march + 3 if month_from_march < 10 else month_from_march - 9
    y = year_of_era + era * 400 + (1 if m <= 2 else 0)
    return (y * 16 + m) * 32 + d


def civil(day):
    """(year, month, day) of a day number."""
    p = _civil_packed(day)
    return (p >> 9, (p >> 5) & 15, p & 31)


def month_key(day):
    """year * 12 + (month - 1): increases by one each calendar month.
    Allocates nothing."""
    ym = _civil_packed(day) >> 5
    return (ym >> 4) * 12 + (ym & 15) - 1


def month_start_day(key):
    """Day number of the first day of the month `key` (see month_key)."""
    return days_from_civil(key // 12, key % 12 + 1, 1)


def parse_day(text):
    """'YYYY-MM-DD' -> day number; 'MM-DD' -> -(month * 100 + day), a yearly date.

    A yearly date is returned negative so one set can hold both kinds."""
    parts = text.split("-")
    if len(parts) == 3:
        return days_from_civil(int(parts[0]), int(parts[1]), int(parts[2]))
    if len(parts) == 2:
        return -(int(parts[0]) * 100 + int(parts[1]))
    raise ValueError("date")


def in_days(day, days):
    """True if `day` is listed in a set built with parse_day()."""
    if day in days:
        return True
    _, m, d = civil(day)
    return -(m * 100 + d) in days
