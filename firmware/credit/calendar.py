# Which kind of day a date is: weekday, weekend or holiday. Tariff day
# schedules and friendly-credit periods each carry one of these calendars.
from firmware.localtime import parse_day, in_days, weekday

WEEKDAY = 0
WEEKEND = 1
HOLIDAY = 2


class DayCalendar:
    def __init__(self, weekend=(5, 6), holidays=()):
        # weekend: weekday numbers, Monday = 0; holidays: 'YYYY-MM-DD' once, 'MM-DD' yearly
        self.weekend = tuple(int(w) for w in weekend)
        self.holidays = set(parse_day(h) for h in holidays)

    def day_type(self, day):
        if self.holidays and in_days(day, self.holidays):
            return HOLIDAY
        if weekday(day) in self.weekend:
            return WEEKEND
        return WEEKDAY
