"""Credit engine figures, measured in the unix-port MicroPython with the
ESP32-sized heap: RAM held by one engine with a tiered+TOU tariff, heap
allocated by a plain tick (no boundary inside), and ticks per second."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

SCRIPT = r"""
import gc, json, time, micropython
gc.collect()
free0 = gc.mem_free()
from firmware.credit.engine import CreditEngine
gc.collect()
free1 = gc.mem_free()
H = 3600
e = CreditEngine({"initial_balance_minor": 10 ** 9, "warn_minor": [5000, 1000], "emergency_minor": 500,
                  "friendly": {"windows": [[20 * H, 8 * H]], "weekend": True, "holidays": ["12-25"]},
                  "protection": {"over_power": {"limit": 10000}, "over_voltage": {"limit": 265},
                                 "under_voltage": {"limit": 170}},
                  "tariff": {"version": 1, "tiers_wh": [200000, 400000],
                             "periods": ["sharp", "peak", "flat", "valley"],
                             "prices_milli_per_kwh": [[300000, 250000, 150000, 80000]] * 3,
                             "days": {"weekday": [[0, 3], [8 * H, 2], [10 * H, 1], [18 * H, 0], [21 * H, 2]],
                                      "weekend": [[0, 3], [9 * H, 2]]}, "holidays": ["01-01"]}})
t = 1767225600 + 12 * H
e.tick(0, t, 0, True, 230, 1000)
gc.collect()
free2 = gc.mem_free()
# one tick that ends mid-TOU-period, after warm-up
for i in range(10):
    t += 1
    e.tick(1, t, 1, True, 230, 1000)
gc.collect()
before = gc.mem_free()
t += 1
e.tick(1, t, 1, True, 230, 1000)
alloc = before - gc.mem_free()
n = 20000
t0 = time.ticks_us()
for i in range(n):
    t += 1
    e.tick(1, t, 1, True, 230, 1000)
    e.pop_events()
us = time.ticks_diff(time.ticks_us(), t0)
print(json.dumps({"credit_code_bytes": free0 - free1, "credit_engine_bytes": free1 - free2,
                  "credit_tick_alloc_bytes": alloc, "credit_ticks_per_s": int(n * 1000000 // us)}))
"""

TARGETS = {"credit_engine_bytes": ("<=", 12000), "credit_code_bytes": ("<=", 40000)}


def run():
    from mpy import run_mpy
    return json.loads(run_mpy(SCRIPT).strip().splitlines()[-1])


if __name__ == "__main__":
    print(run())
