"""Energy registers and the pulse/ADC cross-check, in the unix-port MicroPython."""
import datetime
import json

from hypothesis import given, settings, strategies as st

from mpy import run_mpy, run_mpy_json

T0 = 1767225600  # 2026-01-01 00:00 local
# long scenarios: the harness's own input and per-step log need more than the
# ESP32's heap; the registers themselves are fixed-size arrays
HARNESS_HEAP = "1m"

# Feed a list of (import_wh, export_wh, period, local_s) and report the
# telemetry after every add, the records at the end, and a JSON round trip.
_FEED = """
import sys, json
from firmware.metering.registers import Registers
out = []
for adds in json.loads(sys.stdin.readline()):
    r = Registers()
    tel = []
    for imp, exp, per, t in adds:
        r.add(imp, exp, per, t)
        tel.append([r.import_wh] + list(r.period_wh) + [r.export_wh])
    d = r.to_dict()
    again = Registers.from_dict(json.loads(json.dumps(d))).to_dict()
    out.append({"tel": tel, "last": r.telemetry(), "daily": r.daily_records(), "monthly": r.monthly_records(),
                "same": again == d, "today": r.today_wh, "month": r.month_wh,
                "newest": [r.last_daily(), r.last_monthly()]})
print(json.dumps(out))
"""

MONOTONE = ("1.8.0", "1.8.1", "1.8.2", "1.8.3", "1.8.4", "2.8.0")   # order of "tel" rows

steps = st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 500), st.integers(0, 3),
                           st.one_of(st.integers(-7200, 7200),          # jitter, DST, RTC fix
                                     st.integers(0, 40 * 86400),        # a long outage
                                     st.integers(-3 * 86400, 0))),      # clock set back
                 min_size=1, max_size=80)


def _absolute(case):
    t, adds = T0, []
    for imp, exp, per, dt in case:
        t += dt
        adds.append([imp, exp, per, t])
    return adds


@settings(max_examples=15, deadline=None)
@given(st.lists(steps, min_size=1, max_size=6))
def test_registers_never_decrease_and_every_wh_lands_exactly_once(cases):
    feeds = [_absolute(c) for c in cases]
    # up to 6 x 80 steps in and a telemetry row per step out: the harness's
    # JSON, not the registers, needs more than the board's heap
    out = run_mpy_json(_FEED, feeds, heap=HARNESS_HEAP)
    for adds, res in zip(feeds, out):
        tel = res["tel"]
        for a, b in zip(tel, tel[1:]):
            assert all(y >= x for x, y in zip(a, b)), "a register went down"
        last = res["last"]
        assert last["1.8.0"] == sum(a[0] for a in adds)
        assert last["2.8.0"] == sum(a[1] for a in adds)
        assert sum(last["1.8.%d" % p] for p in range(1, 5)) == last["1.8.0"]
        days, months = res["daily"], res["monthly"]
        # records are in calendar order, frozen totals never go down
        assert [d[0] for d in days] == sorted(set(d[0] for d in days))
        assert all(a[1] <= b[1] for a, b in zip(days, days[1:]))
        assert all(a[1] <= b[1] for a, b in zip(months, months[1:]))
        if len(days) < 62:
            assert sum(d[3] for d in days) + res["today"] == last["1.8.0"]
        if len(months) < 24:
            assert sum(m[7] for m in months) + res["month"] == last["1.8.0"]
        assert res["same"]


def test_a_clock_set_back_counts_nothing_twice_and_rewrites_no_record():
    t = T0 + 10 * 3600
    adds = [[100, 0, 0, t], [100, 0, 0, t + 86400], [100, 0, 0, t - 86400 * 3],
            [100, 0, 0, t - 3600], [100, 0, 0, t + 86400 + 60]]
    res = run_mpy_json(_FEED, [adds])[0]
    last = res["last"]
    assert last["1.8.0"] == 500
    assert res["daily"] == [[20454, 100, 0, 100]]      # only the first midnight froze
    assert last["today_wh"] == 400 and last["yesterday_wh"] == 100


def test_a_rollover_that_skips_days_freezes_each_missed_midnight():
    adds = [[50, 0, 0, T0 + 3600], [70, 0, 0, T0 + 5 * 86400 + 3600]]
    res = run_mpy_json(_FEED, [adds])[0]
    assert [d[0] - 20454 for d in res["daily"]] == [0, 1, 2, 3, 4]
    assert [d[3] for d in res["daily"]] == [50, 0, 0, 0, 0]
    assert res["last"]["yesterday_wh"] == 0 and res["last"]["today_wh"] == 70


def test_a_simulated_month_in_seconds_freezes_the_month_with_its_demand():
    # 1 kW all of January (hourly steps), 4 kW for one quarter hour on the 10th
    adds = [[1000, 0, h % 4, T0 + h * 3600] for h in range(1, 31 * 24 + 1)]
    adds.insert(9 * 24, [1000, 0, 0, T0 + 9 * 86400 + 15 * 60 + 30])
    adds.append([1, 0, 0, T0 + 32 * 86400])
    res = run_mpy_json(_FEED, [adds], heap=HARNESS_HEAP)[0]
    jan = res["monthly"][0]
    month = datetime.date(2026, 1, 1)
    assert jan[0] == month.year * 12 + month.month - 1
    assert jan[7] == 31 * 24 * 1000 - 1000 + 1000           # the step at 00:00 Feb 1 is February's
    assert jan[8] == 4000                                  # 1000 Wh in one window = 4 kW average
    assert res["last"]["last_month_wh"] == jan[7]
    assert len(res["daily"]) == 32


def test_rings_keep_62_days_and_24_months():
    adds = [[1, 0, 0, T0 + d * 86400] for d in range(0, 800, 1)]
    res = run_mpy_json(_FEED, [adds], heap=HARNESS_HEAP)[0]
    assert len(res["daily"]) == 62 and len(res["monthly"]) == 24
    assert res["daily"][-1][0] == 20454 + 798
    # the rings have wrapped: the newest record is still the last of the views
    assert res["newest"] == [res["daily"][-1], res["monthly"][-1]]
    fresh = run_mpy_json(_FEED, [[[1, 0, 0, T0]]], heap=HARNESS_HEAP)[0]
    assert fresh["daily"] == [] and fresh["newest"][0] is None


def test_add_without_rollover_allocates_nothing():
    out = run_mpy("""
import micropython
from firmware.metering.registers import Registers
r = Registers()
r.add(1, 0, 0, 1767225600)
t = 1767225600
micropython.heap_lock()
while t < 1767225600 + 800:
    r.add(2, 1, 3, t)
    t += 1
micropython.heap_unlock()
print(r.import_wh, r.period_wh[3], r.export_wh)
""")
    assert out.split() == ["1601", "1600", "800"]


_CROSS = """
import sys, json
from firmware.metering.crosscheck import CrossCheck
out = []
for limit, pairs in json.loads(sys.stdin.readline()):
    c = CrossCheck(limit_pct=limit, window_wh=200)
    out.append([c.feed(p, a) for p, a in pairs])
print(json.dumps(out))
"""


def test_cross_check_flags_divergence_above_the_limit_only():
    agree = [[10, 10]] * 19 + [[10, 11]]           # 200 vs 201: 0.5 %
    bypass = [[10, 8]] * 20                         # ADC 20 % low: shunt bypassed
    out = run_mpy_json(_CROSS, [[3, agree], [3, bypass]])
    assert not any(out[0])
    assert out[1].count(True) == 1 and out[1][-1] is True


_REVENUE = """
import sys, json, array
from firmware.boards import sim_adc
from firmware.metering.revenue import Revenue
req = json.loads(sys.stdin.readline())
events = []
r = Revenue(req["source"], imp_per_kwh=1000, limit_pct=3, window_wh=50,
            on_event=lambda k, t, v: events.append([k, t]))
vb = array.array('h', bytes(1280)); ib = array.array('h', bytes(1280))
imp = exp = pulses = 0
for k, (watts, pulse_per_s, cover) in enumerate(req["ticks"]):
    sim_adc.fill(vb, ib, 3200, 230, watts, 1000, 50, k * 1000)
    pulses += pulse_per_s
    imp += r.tick(pulses, vb, ib, 640, 1000, 1000 + k, cover)
    exp += r.export_wh
print(json.dumps({"imp": imp, "exp": exp, "events": events}))
"""


def test_reverse_power_is_export_and_raises_one_event_per_episode():
    # 9 kW for a second = 2.5 Wh: 60 ticks of export, then import, then export again
    ticks = [[-9000, 0, False]] * 60 + [[3600, 0, False]] * 10 + [[-9000, 0, False]] * 5
    out = run_mpy_json(_REVENUE, {"source": "adc", "ticks": ticks}, heap=HARNESS_HEAP)
    assert [e for e in out["events"]] == [["reverse_energy", 1000], ["reverse_energy", 1070]]
    assert 160 <= out["exp"] <= 166 and 9 <= out["imp"] <= 11   # 65 x 2.5 Wh, 10 Wh


def test_pulses_bill_and_a_bypassed_adc_raises_a_metering_fault():
    # pulses say 3600 W (1 pulse/s at 1000 imp/kWh = 3.6 kW), the ADC sees a third of it
    ticks = [[1200, 1, False]] * 80
    out = run_mpy_json(_REVENUE, {"source": "both", "ticks": ticks}, heap=HARNESS_HEAP)
    assert out["imp"] == 80
    assert out["events"] and out["events"][0][0] == "metering_fault"
    agree = run_mpy_json(_REVENUE, {"source": "both", "ticks": [[3600 * 0.995, 1, False]] * 80},
                         heap=HARNESS_HEAP)
    assert agree["events"] == []


def test_opening_the_terminal_cover_is_a_time_stamped_event():
    ticks = [[0, 0, False]] * 3 + [[0, 0, True]] * 2 + [[0, 0, False]]
    out = run_mpy_json(_REVENUE, {"source": "pulse", "ticks": ticks}, heap=HARNESS_HEAP)
    assert out["events"] == [["cover_open", 1003], ["cover_closed", 1005]]
