"""The customer's forecasts (firmware/credit/forecast.py), running in the
unix-port MicroPython on a real credit engine, agree exactly with the CPython
model (tests/forecast_model.py) for flat, tiered, time-of-use and combined
tariffs, across month rollovers, tier boundaries, pending tariffs, unsynced
spells and persistence round trips; and the unit cases: the days basis of a
new meter, the days-based warning, and fill() allocating nothing."""
import json

import pytest
from hypothesis import given, strategies as st

from engine_props import assert_agree, draw_schedule, engine_settings, sod
from forecast_model import DRIVER, model_run
from mpy import run_mpy, run_mpy_rom
from simmeter import ensure_compiled

DAY = 86400
T_JAN = 1767225600          # 2026-01-01 00:00 local, a Thursday
SEQS_PER_PROCESS = 30
KINDS = ("flat", "tiered", "tou", "combined")

price = st.one_of(st.integers(0, 400000), st.sampled_from([150000, 999999, 1, 0]))


@st.composite
def tariffs(draw, version, kind=None):
    kind = kind or draw(st.sampled_from(KINDS))
    n_tiers = draw(st.integers(2, 4)) if kind in ("tiered", "combined") else 1
    n_periods = draw(st.integers(2, 4)) if kind in ("tou", "combined") else 1
    # small tiers, so that a month's consumption and a balance's worth cross them
    tops = sorted(draw(st.sets(st.integers(1, 20000), min_size=n_tiers - 1, max_size=n_tiers - 1)))
    d = {"version": version, "tiers_wh": tops,
         "prices_milli_per_kwh": [[draw(price) for _ in range(n_periods)] for _ in range(n_tiers)]}
    if n_periods > 1:
        d.update(draw_schedule(draw, n_periods, st.lists(
            st.sampled_from(["01-01", "02-01", "2026-01-31", "03-01"]), max_size=2)))
        if draw(st.booleans()):
            d["periods"] = ["sharp", "peak", "flat", "valley"][:n_periods]
    return d


@st.composite
def sequences(draw):
    # start near a month end, often, so that rollovers come
    start = T_JAN + draw(st.sampled_from([0, 29, 30, 57, 58])) * DAY + draw(sod)
    cfg = {"initial_balance_minor": draw(st.integers(-500, 30000)),
           "tariff": draw(tariffs(1)),
           "warn_minor": [draw(st.integers(0, 3000))]}
    if draw(st.booleans()):
        cfg["warn_days"] = draw(st.integers(1, 5))
    ops = [["tick", 0, start, 0, True]]
    now = start
    version = 1
    for _ in range(draw(st.integers(1, 20))):
        kind = draw(st.sampled_from(["tick", "tick", "long", "long", "long", "week", "topup",
                                     "tariff", "persist"]))
        if kind in ("tick", "long", "week"):
            span = draw(st.integers(1, 7200) if kind == "tick" else
                        st.integers(1, 3 * DAY) if kind == "long" else st.integers(5 * DAY, 9 * DAY))
            now += span
            synced = draw(st.integers(0, 9)) > 0      # an unsynced spell now and then
            ops.append(["tick", draw(st.integers(0, 6000 if kind == "tick" else 60000)), now, span,
                        synced])
        elif kind == "topup":
            ops.append(["topup", "o%d" % len(ops), draw(st.integers(1, 20000))])
        elif kind == "tariff":
            version += 1
            at = draw(st.one_of(st.none(), st.integers(now + 1, now + 10 * DAY)))
            ops.append(["tariff", draw(tariffs(version)), at])
        else:
            ops.append(["persist"])
    return {"cfg": cfg, "ops": ops}


@engine_settings(12)
@given(st.lists(sequences(), min_size=SEQS_PER_PROCESS, max_size=SEQS_PER_PROCESS))
def test_forecast_agrees_with_the_model_for_every_tariff_kind(seqs):
    assert_agree(DRIVER, seqs, model_run)


UNIT = r"""
import json, micropython
from firmware.credit.engine import CreditEngine
from firmware.credit.ledger import Ledger
from firmware.credit import forecast

H = 3600
D = 86400
M = %d                   # midnight, a Thursday
T = M + 12 * H           # its noon
out = {}

def flat(price):
    return {"version": 1, "price_milli_per_kwh": price}

# a new meter: no whole day yet, then the days there are, up to 7
e = CreditEngine({"initial_balance_minor": 10000, "tariff": flat(100000)})
e.tick(0, T, 0)
seen = [forecast.fill(e)[2:4]]
e.tick(1000, T + H, H)                 # 1 kWh at 1.00 on the first day
seen.append(forecast.fill(e)[2:4])
e.tick(0, T + D, D - H)                # the next day: one whole day to average
seen.append(forecast.fill(e)[2:4])
e.tick(0, T + 3 * D, 2 * D)            # two more days without consumption
seen.append(forecast.fill(e)[2:4])
for n in range(4, 12):                 # then 1 kWh a day
    e.tick(1000, T + n * D, D)
    seen.append(forecast.fill(e)[2:4])
out["basis"] = seen
out["costs"] = list(e.ledger.costs)

# the days-based warning, with and without the key
def warn_run(cfg):
    c = {"initial_balance_minor": 1000, "warn_minor": [100], "tariff": flat(100000)}
    c.update(cfg)
    e = CreditEngine(c)
    e.tick(0, M, 0)
    trace = []
    for n in range(1, 5):
        e.tick(3000, M + n * D, D)     # 3.00 a day, midnight to midnight
        trace.append([e.balance_minor(), forecast.days(e.ledger, e.now_s // D, e.balance_minor()),
                      e.level, e.alarm])
    return trace, [x for x in e.pop_events() if x[0] == "warn"]
out["warn_days"] = warn_run({"warn_days": 2})
out["no_key"] = warn_run({})

# a clock stepped back a day: the cost goes into the newest day
e = CreditEngine({"initial_balance_minor": 10000, "tariff": flat(100000)})
e.tick(0, M, 0)
e.tick(1000, M + D, D)                 # 1.00 on the first day
e.tick(500, M + D + H, H)              # 0.50 on the second
e.tick(2000, M + H, 10)                # the clock back on the first day: 2.00
out["back"] = list(e.ledger.costs)

# the ring in the ledger's saved form; a ledger saved before it had none
led = Ledger(0)
led.load(json.loads(json.dumps(e.ledger.to_dict())))
out["round_trip"] = led.costs == e.ledger.costs
old = e.ledger.to_dict()
del old["costs"]
led = Ledger(0)
led.load(old)
out["old_form"] = list(led.costs)

# fill() allocates nothing (a tiered TOU tariff, no holidays: no calendar lookup)
tou = {"version": 3, "tiers_wh": [2000, 5000], "periods": ["sharp", "peak", "flat", "valley"],
       "prices_milli_per_kwh": [[300000, 250000, 150000, 80000], [350000, 300000, 200000, 100000],
                                [450000, 400000, 300000, 150000]],
       "days": {"weekday": [[0, 3], [28800, 2], [36000, 1], [64800, 0], [75600, 2]],
                "weekend": [[0, 3], [32400, 2]]}}
e = CreditEngine({"initial_balance_minor": 50000, "tariff": tou})
e.tick(0, T, 0)
e.tick(2500, T + D, D)
forecast.fill(e)
micropython.heap_lock()
try:
    r = forecast.fill(e)
    out["locked"] = "ok"
except MemoryError:
    out["locked"] = "allocated"
micropython.heap_unlock()
out["tou"] = list(r)
out["money"] = [e.ledger.balance_minor, e.ledger.rem_micro]
print(json.dumps(out))
""" % T_JAN


@pytest.fixture(scope="module")
def unit():
    return json.loads(run_mpy(UNIT).splitlines()[-1])


def test_a_new_meter_forecasts_from_the_days_it_has_and_says_how_many(unit):
    r = unit
    basis = r["basis"]
    assert basis[0] == [None, 0]          # no charge yet
    assert basis[1] == [None, 0]          # the first day is not over
    assert basis[2] == [9900 * 10 // 100, 1]     # 99.00 left at 1.00 over 1 day
    assert basis[3] == [9900 * 10 * 3 // 100, 3]  # the same 1.00 over 3 days
    # then 1 kWh a day: the basis grows to 7 days and stays there
    assert [u for _, u in basis[4:]] == [4, 5, 6, 7, 7, 7, 7, 7]
    bal = 9900 - 100 * 8
    assert basis[-1] == [bal * 10 * 7 // (100 * 7), 7]
    # the ring: the newest day first (half a day so far: the ticks run noon
    # to noon), 8 days seen, the whole ones 1.00 (100 minor) each
    assert r["costs"][1] == 8 and r["costs"][2:] == [50] + [100] * 7


def test_the_days_warning_raises_level_one_and_its_absence_changes_nothing(unit):
    trace, events = unit["warn_days"]
    # 10.00 at 3.00 a day: after day 2, 4.00 is 1.3 days: at or below 2 days
    assert [t[0] for t in trace] == [700, 400, 100, -200]
    assert trace[0][1] == 23 and trace[0][2] == 0
    assert trace[1][1] == 13 and trace[1][2] == 1 and trace[1][3] == 1   # one beep that day
    assert trace[2][2] == 1            # at the money threshold too: still level 1
    assert events[0] == ["warn", 0, 1, 400]
    no_trace, no_events = unit["no_key"]
    assert [t[2] for t in no_trace] == [0, 0, 1, 1]        # only the money threshold
    assert no_events[0] == ["warn", 0, 1, 100]


def test_a_clock_stepped_back_charges_the_newest_day_and_the_ring_is_kept(unit):
    r = unit
    assert r["back"][1] == 2 and r["back"][2:5] == [50 + 200, 100, 0]
    assert r["round_trip"]
    assert r["old_form"] == [-1, 0] + [0] * 8


def test_fill_allocates_nothing_and_prices_a_tiered_tou_tariff(unit):
    r = unit
    assert r["locked"] == "ok"
    wh, est, days_x10, used, price, name, change_s, tier, left, nxt = r["tou"]
    # Friday noon: peak (10:00-18:00), tier 1 after 2.5 kWh; sharp at 18:00
    assert (price, name, tier, left, nxt) == (300000, "peak", 1, 2500, 400000)
    assert change_s == 6 * 3600 and est is True and used == 1
    # the money left buys the rest of tier 1 at peak (3.00), then tier 2 (4.00)
    budget = r["money"][0] * 10 ** 6 - r["money"][1]
    assert budget > 2500 * 300000
    assert wh == 2500 + (budget - 2500 * 300000) // 400000


CORE = r"""
import json, os
from firmware.boards.sim import SimBoard
from firmware.meter import MeterCore
from firmware import config

DIR = %r
H = 3600 * 1000

def boot():
    b = SimBoard(["--flash", DIR, "--step", "--epoch", "1767268800"])   # 2026-01-01 12:00
    return b, MeterCore(b, config.load({"meter_id": "FC-1", "initial_balance_minor": 100000}))

b, core = boot()
b.set_load(2000)                     # 2 kW: 48 kWh a day at 1.50 = 72.00
for _ in range(66):                  # to 06:00 on the 4th day in 1 h ticks: midnights, snapshots, checkpoints
    b.advance(H)
    core.tick()
b.set_load(0)
first = core.forecast()
out = {"same_list": core.forecast() is first, "before": list(first),
       "costs": list(core.engine.ledger.costs), "balance": core.engine.balance_minor(),
       "rem_micro": core.engine.ledger.rem_micro}
b.set_load(2000)
b.advance(H // 60)                   # one more minute of charging ...
core.tick()
core.durable.checkpoint()            # ... in a hot checkpoint only (a power cut's last record)
out["costs_at_cut"] = list(core.engine.ledger.costs)
with open(DIR + "/simclock", "w") as f:
    f.write(str(b.mono_ms()))
import vfs
vfs.umount("/flash")
b2, core2 = boot()
out["costs_after"] = list(core2.engine.ledger.costs)
out["after"] = list(core2.forecast())
print(json.dumps(out))
"""


def test_the_core_shows_the_forecast_and_each_day_s_cost_survives_a_power_cut(tmp_path):
    ensure_compiled()
    out = json.loads(run_mpy_rom(CORE % str(tmp_path / "m")).splitlines()[-1])
    assert out["same_list"]                     # one list, reused: nothing allocated per call
    c = out["costs"]
    # from noon: half a day, two whole days at 72.00, then 6 h of today
    assert c[1] == 4 and c[2:7] == [1800, 7200, 7200, 3600, 0]
    wh, est, days_x10, used, price = out["before"][:5]
    assert used == 3 and days_x10 == out["balance"] * 10 * 3 // (7200 + 7200 + 3600)
    # flat 1.50: exact, and what the money left buys at 1.50 a kWh
    assert price == 150000 and est is False
    assert wh == (out["balance"] * 10 ** 6 - out["rem_micro"]) // 150000
    # a minute at 2 kW more, in a hot checkpoint: 33 Wh, 4 or 5 minor units
    assert out["costs_at_cut"][2] > c[2]
    assert out["costs_after"] == out["costs_at_cut"]
    assert out["after"][3] == 3 and out["after"][5] == "p0"
