"""The injectable clock and the port-independent date maths, run in the
unix-port MicroPython and checked against CPython's datetime."""
import datetime
import hashlib
import json

from hypothesis import given, settings, strategies as st

from mpy import run_mpy, run_mpy_json

CLOCK_SCRIPT = r"""
import json
from firmware.clock import Clock, MIN_VALID_UTC_S

class Board:
    def __init__(self, rtc):
        self.rtc = rtc
        self.ms = 0
    def mono_ms(self):
        return self.ms
    def rtc_get(self):
        return self.rtc + self.ms // 1000
    def rtc_set(self, utc_s):
        self.rtc = utc_s - self.ms // 1000

out = {}
saved_at = 1767225600 + 5000
# RTC battery flat: it restarted in 2000 -> run on the persisted time, unsynced
b = Board(946684800)
c = Clock(b, 3 * 3600)
lost = c.restore({"utc_s": saved_at, "synced": True, "source": "modem", "utc_offset_s": 7200})
b.ms += 10000
out["lost"] = [lost, c.synced, c.utc_s(), c.local_s(), c.utc_offset_s]
step = c.set_utc(saved_at + 3600, "modem")
out["synced"] = [step, c.synced, c.source, c.utc_s()]
step = c.set_utc(saved_at + 1800, "server")          # stepped backwards by a server sync
out["back"] = [step, c.synced, c.source, c.utc_s(), c.to_dict()]
# RTC kept time through the cut: trusted, synced flag kept
b = Board(saved_at + 60)
c = Clock(b)
out["kept"] = [c.restore({"utc_s": saved_at, "synced": True, "source": "modem"}), c.synced, c.utc_s()]
# RTC reads before the last persisted time: it cannot be right
b = Board(saved_at - 100)
c = Clock(b)
out["behind"] = [c.restore({"utc_s": saved_at, "synced": True}), c.synced, c.utc_s()]
# nothing persisted and no valid time: runs from the build floor, unsynced
b = Board(0)
c = Clock(b)
out["fresh"] = [c.restore(None), c.synced, c.utc_s() == MIN_VALID_UTC_S]
print(json.dumps(out))
"""


def test_clock_runs_on_persisted_time_after_rtc_loss_and_accepts_backward_syncs():
    r = json.loads(run_mpy(CLOCK_SCRIPT).strip().splitlines()[-1])
    saved = 1767225600 + 5000
    assert r["lost"] == [True, False, saved + 10, saved + 10 + 7200, 7200]
    assert r["synced"] == [3600 - 10, True, "modem", saved + 3600]
    step, synced, source, utc, d = r["back"]
    assert (step, synced, source, utc) == (-1800, True, "server", saved + 1800)
    assert d == {"utc_s": saved + 1800, "synced": True, "source": "server", "utc_offset_s": 7200}
    assert r["kept"] == [False, True, saved + 60]
    assert r["behind"] == [True, False, saved]
    assert r["fresh"] == [True, False, True]


DATE_SCRIPT = r"""
import sys, json
from firmware import localtime as L
for line in sys.stdin:
    out = []
    for s in json.loads(line):
        day = L.day_number(s)
        y, m, d = L.civil(day)
        wd, sod = L.weekday(day), L.seconds_of_day(s)
        out.append([y, m, d, wd, sod, L.days_from_civil(y, m, d) == day, L.month_key(day),
                    L.month_start_day(L.month_key(day)) <= day < L.month_start_day(L.month_key(day) + 1)])
    print(json.dumps(out))
"""

EPOCH = datetime.datetime(1970, 1, 1)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 4102444800),                     # 1970..2100
                          st.integers(0, 200).map(lambda k: 951782400 + k * 86400 * 365 - 1),
                          st.sampled_from([951782399, 951782400, 951868800, 4107542399, 1772323200])),
                min_size=200, max_size=200))
def test_local_date_maths_matches_datetime_at_every_second(seconds):
    got = json.loads(run_mpy(DATE_SCRIPT, stdin=json.dumps(seconds) + "\n").strip())
    for s, row in zip(seconds, got):
        dt = EPOCH + datetime.timedelta(seconds=s)
        sod = dt.hour * 3600 + dt.minute * 60 + dt.second
        assert row[:5] == [dt.year, dt.month, dt.day, dt.weekday(), sod], s
        assert row[5] is True and row[7] is True
        assert row[6] == dt.year * 12 + dt.month - 1


def test_dates_parse_to_day_numbers_and_yearly_holidays_match_every_year():
    out = run_mpy(r"""
from firmware import localtime as L
days = set([L.parse_day("2026-12-25"), L.parse_day("01-01")])
print(L.parse_day("2026-01-01"), L.in_days(L.parse_day("2026-12-25"), days),
      L.in_days(L.parse_day("2027-12-25"), days), L.in_days(L.parse_day("2031-01-01"), days))
""").split()
    assert out == [str((datetime.date(2026, 1, 1) - datetime.date(1970, 1, 1)).days), "True", "False", "True"]


# firmware/localtime.py is the firmware's one calendar (the registers' month
# rollover and the ESP32 board's RTC tuples were copies of it). Checked here
# day by day against CPython's datetime: every day from 1999 to 2101 (the
# RTC's and the modem's years, 2000 leap, 2100 not), and every 37th day from
# 0001-01-01 to 9999-12-31 (eras, centuries, days before 1970). MicroPython
# hashes its answers per block of days; CPython hashes what datetime says.
CALENDAR_SCRIPT = r"""
import sys, json, hashlib
from firmware import localtime as L
out = []
for first, last, step in json.loads(sys.stdin.readline()):
    h = hashlib.sha256()
    for day in range(first, last + 1, step):
        y, m, d = L.civil(day)
        h.update(b"%d %d-%d-%d %d %d %d %d;" % (day, y, m, d, L.weekday(day), L.month_key(day),
                                               L.days_from_civil(y, m, d),
                                               L.month_start_day(L.month_key(day))))
    out.append(h.digest().hex())
print(json.dumps(out))
"""

_ORDINAL_1970 = datetime.date(1970, 1, 1).toordinal()


def _calendar_digest(first, last, step):
    h = hashlib.sha256()
    for day in range(first, last + 1, step):
        dt = datetime.date.fromordinal(day + _ORDINAL_1970)
        start = (datetime.date(dt.year, dt.month, 1).toordinal() - _ORDINAL_1970)
        h.update(b"%d %d-%d-%d %d %d %d %d;" % (day, dt.year, dt.month, dt.day, dt.weekday(),
                                               dt.year * 12 + dt.month - 1, day, start))
    return h.hexdigest()


def _day(y, m, d):
    return datetime.date(y, m, d).toordinal() - _ORDINAL_1970


def test_the_one_calendar_matches_datetime_from_year_1_to_9999():
    blocks = []
    for y in range(1999, 2102, 8):         # every day, in blocks of 8 years
        blocks.append([_day(y, 1, 1), _day(min(y + 7, 2101), 12, 31), 1])
    blocks.append([_day(1, 1, 1), _day(9999, 12, 31), 37])
    blocks.append([_day(1, 1, 1), _day(1, 3, 31), 1])          # the first day the maths takes
    blocks.append([_day(9999, 11, 1), _day(9999, 12, 31), 1])  # and the last datetime has
    blocks.append([_day(1899, 12, 1), _day(1900, 3, 31), 1])   # a century that is not leap
    blocks.append([_day(1969, 12, 1), _day(1970, 1, 31), 1])   # day 0 and the days before it
    got = run_mpy_json(CALENDAR_SCRIPT, blocks, timeout=300)
    want = [_calendar_digest(*b) for b in blocks]
    bad = [(datetime.date.fromordinal(b[0] + _ORDINAL_1970).isoformat(), b[2])
           for b, g, w in zip(blocks, got, want) if g != w]
    assert bad == []
