"""CF pulse path: pulses -> integer Wh, run in the unix-port MicroPython."""
import json

from hypothesis import given, settings, strategies as st

from mpy import run_mpy, run_mpy_json

# Each case: [imp_per_kwh, [reads...]]; MicroPython feeds the reads one by one
# and also the whole train at once, and reports both.
_SPLIT = """
import sys, json
from firmware.metering.pulse import PulseEnergy
out = []
for imp, reads in json.loads(sys.stdin.readline()):
    a = PulseEnergy(imp)
    wh = 0
    for d in reads:
        wh += a.feed(d)
    b = PulseEnergy(imp)
    whole = b.feed(sum(reads))
    out.append([wh, a.rem, whole, b.rem])
print(json.dumps(out))
"""

trains = st.lists(st.tuples(st.integers(1000, 10000),
                            st.lists(st.integers(0, 5000), min_size=1, max_size=40)),
                  min_size=1, max_size=20)


@settings(max_examples=15, deadline=None)
@given(trains)
def test_any_split_of_a_pulse_train_gives_the_same_exact_energy(cases):
    out = run_mpy_json(_SPLIT, cases)
    for (imp, reads), (wh, rem, whole, rem2) in zip(cases, out):
        total = sum(reads)
        assert wh == whole == total * 1000 // imp
        assert rem == rem2 == total * 1000 % imp


def test_pulse_feed_allocates_nothing():
    out = run_mpy("""
import micropython
from firmware.metering.pulse import PulseEnergy
p = PulseEnergy(3200)
wh = k = 0   # globals exist before the lock: a new global would allocate
micropython.heap_lock()
while k < 5000:
    k += 1
    wh += p.feed(37)
micropython.heap_unlock()
print(wh, p.total_pulses, p.rem)
""")
    wh, c, rem = map(int, out.split())
    assert c == 5000 * 37
    assert wh == 5000 * 37 * 1000 // 3200 and rem == 5000 * 37 * 1000 % 3200


def test_a_counter_running_backwards_registers_nothing():
    out = run_mpy("""
from firmware.metering.pulse import PulseEnergy
p = PulseEnergy(1000)
print(p.feed(-5), p.feed(0), p.feed(3), p.total_wh)
""")
    assert out.split() == ["0", "0", "3", "3"]


def test_restored_state_carries_the_fraction_across_a_reboot():
    out = run_mpy_json("""
import sys, json
from firmware.metering.pulse import PulseEnergy
a = PulseEnergy(3600)
first = a.feed(1000)                      # 277 Wh and 2800/3600 carried
saved = json.dumps(a.state())
b = PulseEnergy(3600)
b.restore(json.loads(saved))
print(json.dumps([first, b.feed(800), b.total_wh, b.rem]))
""", None)
    first, second, total, rem = out
    assert first == 277 and second == 500 - 277   # 1800 pulses at 3600 imp/kWh = 500 Wh
    assert total == 1800 * 1000 // 3600 and rem == 1800 * 1000 % 3600


def test_meter_constant_outside_1000_to_10000_is_refused():
    out = run_mpy("""
from firmware.metering.pulse import PulseEnergy
for imp in (999, 10001, 1000, 10000):
    try:
        PulseEnergy(imp); print('ok')
    except ValueError:
        print('refused')
""")
    assert out.split() == ["refused", "refused", "ok", "ok"]
