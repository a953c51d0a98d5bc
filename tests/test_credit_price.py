"""The price shown is the price charged (issue 12, item 3): what the LCD, the
state and the console show comes from CreditEngine.price_now(), the same
lookup the engine charges with. Each case reads the price at a position
(tier reached, time-of-use period, clock synced or not), then charges the
next kWh (or, at an edge, the next Wh) and compares. Run in MicroPython."""
from mpy import run_mpy_json

T0 = 1767225600  # 2026-01-01 00:00 local, a Thursday
H = 3600

_SCRIPT = """
import sys, json
from firmware.credit.engine import CreditEngine
out = []
for name, tariff, lead_wh, at_s, synced, next_wh in json.loads(sys.stdin.readline()):
    e = CreditEngine({"initial_balance_minor": 10 ** 9, "tariff": tariff})
    e.tick(0, at_s - 120, 0, synced)
    e.tick(lead_wh, at_s - 60, 60, synced)     # the month's Wh so far: the tier position
    e.tick(0, at_s, 60, synced)
    shown, tier, period = e.price_now()
    led = e.ledger
    before = led.charges_minor * 1000000 + led.rem_micro
    e.tick(next_wh, at_s + 1, 1, synced)       # the next kWh (or Wh), charged at once
    after = led.charges_minor * 1000000 + led.rem_micro
    out.append([name, shown, tier, period, after - before])
print(json.dumps(out))
"""

FLAT_TABLE = {"version": 2, "prices_milli_per_kwh": [[200000]]}   # the documented table form
FLAT = {"version": 1, "price_milli_per_kwh": 123457}
TIERED = {"version": 3, "tiers_wh": [100000, 300000],
          "prices_milli_per_kwh": [[100000], [200000], [350000]]}
TOU = {"version": 4, "periods": ["peak", "valley", "flat"],
       "prices_milli_per_kwh": [[300000, 100000, 180000]],
       "days": {"weekday": [[0, 1], [8 * H, 0], [20 * H, 2]], "weekend": [[0, 1]]}}
BOTH = {"version": 5, "periods": ["peak", "valley"], "tiers_wh": [50000],
        "prices_milli_per_kwh": [[250000, 90000], [400000, 150000]],
        "days": {"weekday": [[0, 1], [8 * H, 0], [22 * H, 1]]}, "unsynced_period": 0}

CASES = [
    # name, tariff, month Wh before, local time, synced, Wh charged next
    ["flat_table", FLAT_TABLE, 5000, T0 + 10 * H, True, 1000],
    ["flat", FLAT, 0, T0 + 10 * H, True, 1000],
    ["tier0", TIERED, 20000, T0 + 10 * H, True, 1000],
    ["tier1", TIERED, 150000, T0 + 10 * H, True, 1000],
    ["tier2", TIERED, 400000, T0 + 10 * H, True, 1000],
    ["tier0_last_wh", TIERED, 99999, T0 + 10 * H, True, 1],
    ["tier1_first_wh", TIERED, 100000, T0 + 10 * H, True, 1],
    ["tou_valley", TOU, 0, T0 + 3 * H, True, 1000],
    ["tou_peak", TOU, 0, T0 + 12 * H, True, 1000],
    ["tou_flat", TOU, 0, T0 + 21 * H, True, 1000],
    ["tou_peak_first_second", TOU, 0, T0 + 8 * H, True, 1],
    ["tou_weekend", TOU, 0, T0 + 2 * 86400 + 12 * H, True, 1000],   # Saturday noon: valley
    ["tou_unsynced", TOU, 0, T0 + 12 * H, False, 1000],             # the flat period
    ["both_t0_peak", BOTH, 10000, T0 + 12 * H, True, 1000],
    ["both_t1_peak", BOTH, 60000, T0 + 12 * H, True, 1000],
    ["both_t1_valley", BOTH, 60000, T0 + 23 * H, True, 1000],
    ["both_t0_valley", BOTH, 10000, T0 + 2 * H, True, 1000],
    ["both_unsynced", BOTH, 60000, T0 + 23 * H, False, 1000],       # unsynced_period 0: peak
]

WANT = {  # hand-worked: the price of the next Wh at that position, milli-minor per kWh
    "flat_table": 200000, "flat": 123457, "tier0": 100000, "tier1": 200000, "tier2": 350000,
    "tier0_last_wh": 100000, "tier1_first_wh": 200000, "tou_valley": 100000,
    "tou_peak": 300000, "tou_flat": 180000, "tou_peak_first_second": 300000,
    "tou_weekend": 100000, "tou_unsynced": 180000, "both_t0_peak": 250000,
    "both_t1_peak": 400000, "both_t1_valley": 150000, "both_t0_valley": 90000,
    "both_unsynced": 400000,
}


def test_the_price_shown_is_what_the_next_kwh_is_charged_for_every_kind_of_tariff():
    out = run_mpy_json(_SCRIPT, CASES)
    assert [r[0] for r in out] == [c[0] for c in CASES]
    for (name, shown, tier, period, charged_micro), case in zip(out, CASES):
        assert shown == WANT[name], (name, shown, tier, period)
        # price_milli_per_kwh * Wh is in millionths of a minor unit
        assert charged_micro == shown * case[5], (name, shown, charged_micro)
