"""ADC path: the firmware analyzer in the unix-port MicroPython against
numpy waveforms whose real power is known exactly (tools/waveforms.py)."""
import json
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import bench_metering as bm
import waveforms as wf
from mpy import run_mpy, run_mpy_json

# Analyze buffers from a file with the plain and the viper kernels (and each
# with any delay given) and report every reading of both.
_BOTH = """
import sys, json, array
from firmware.metering.waveform import Analyzer, DEFAULT_CAL
req = json.loads(sys.stdin.readline())
out = []
with open(req["path"], "rb") as f:
    for n, delay in req["cases"]:
        vb = array.array('h', bytes(2 * n)); ib = array.array('h', bytes(2 * n))
        f.readinto(vb); f.readinto(ib)
        cal = dict(DEFAULT_CAL); cal["delay_q8"] = delay
        row = []
        for fast in (False, True):
            a = Analyzer(3200, cal, fast=fast)
            fl = a.analyze(vb, ib, n)
            row.append([a.vrms_mv, a.irms_ma, a.p_mw, a.s_mva, a.pf_milli, a.freq_mhz, a.cycles, fl])
        out.append(row)
print(json.dumps(out))
"""

waves = st.lists(st.tuples(
    st.floats(0, 270), st.floats(0, 60), st.sampled_from([1.0, 0.8, 0.5, 0.2, 0.0]),
    st.booleans(), st.floats(45, 65), st.integers(64, 4096), st.integers(-256, 256),
    st.integers(0, 2**31)), min_size=1, max_size=12)


@settings(max_examples=12, deadline=None)
@given(waves)
def test_viper_and_plain_kernels_read_exactly_the_same(tmp_path_factory, cases):
    path = os.path.join(tmp_path_factory.mktemp("w"), "w.bin")
    with open(path, "wb") as f:
        for volts, amps, pf, lag, hz, n, delay, seed in cases:
            fe = wf.FrontEnd(v_offset=seed % 61 - 30, i_offset=seed % 41 - 20, skew_samples=0.4)
            v, i, _ = wf.synth(n, volts, amps, pf, lag, hz, seed=seed, fe=fe)
            f.write(v.astype("<i2").tobytes() + i.astype("<i2").tobytes())
    out = run_mpy_json(_BOTH, {"path": path, "cases": [[c[5], c[6]] for c in cases]})
    for plain, viper in out:
        assert plain == viper


def test_every_iec_point_in_the_subset_is_inside_class_05s():
    rows, cal = bm.measure_points(wf.iec_points(full=False))
    bm.print_table(rows)
    assert len(rows) >= 6
    for name, frac, pf, ref, got, err, limit in rows:
        assert abs(err) <= limit, (name, err)


def test_calibration_finds_the_front_ends_gains_and_sampling_skew(tmp_path):
    fe = wf.TYPICAL
    req = {"rate": wf.RATE_HZ, "calibrate": bm.reference_cal(str(tmp_path), fe), "jobs": []}
    cal = run_mpy_json(bm._ENERGY_SCRIPT, req)["cal"]
    # nominal scale divided by the board's gain error; the voltage also makes
    # up for the loss of the half-sample linear interpolation at 50 Hz
    theta = 2 * np.pi * 50 / wf.RATE_HZ
    interp = abs(0.5 + 0.5 * np.exp(-1j * theta))
    assert cal["v_uv_per_count"] == pytest.approx(450e6 / 2048 / fe.v_gain / interp, rel=2e-4)
    assert cal["i_ua_per_count"] == pytest.approx(100e6 / 2048 / fe.i_gain, rel=2e-4)
    # I is sampled half a sample late: advance V by 128/256 of a sample
    assert abs(cal["delay_q8"] - (-128)) <= 2
    assert cal["i_floor_q4"] == pytest.approx(16 * fe.i_noise ** 2, rel=0.35)


_SIM = """
import sys, json, array, micropython
from firmware.boards import sim_adc
from firmware.metering.waveform import Analyzer, FLAG_REVERSE, FLAG_NO_CYCLES
req = json.loads(sys.stdin.readline())
vb = array.array('h', bytes(1280)); ib = array.array('h', bytes(1280))
out = []
for volts, watts, pf, hz, caps, dt_ms, fast in req:
    sim_adc.seed(5)
    a = Analyzer(3200, fast=fast)
    flags = 0
    t = 0
    while t < caps:
        sim_adc.fill(vb, ib, 3200, volts, watts, pf, hz, t * dt_ms)
        micropython.heap_lock()
        flags |= a.analyze(vb, ib, 640)
        a.accumulate(dt_ms)
        micropython.heap_unlock()
        t += 1
    s = a.state()
    out.append([s["imp_wh"], s["imp_rem"], s["exp_wh"], s["exp_rem"], flags, a.freq_mhz, a.p_mw])
print(json.dumps(out))
"""


def _mj(wh, rem):
    return wh * 3600000 + rem[1] + rem[0] / 1000.0


def test_analysis_and_accumulation_allocate_nothing_and_export_never_adds_import():
    # the heap is locked around analyze() + accumulate() inside the script
    out = run_mpy_json(_SIM, [[230, 2300, 1000, 50, 20, 200, True],
                              [230, 2300, 1000, 50, 20, 200, False],
                              [230, -1500, 1000, 50, 20, 200, True]])
    (iwh, irem, ewh, erem, fl, hz, p), plain, (iwh2, irem2, ewh2, erem2, fl2, hz2, p2) = out
    assert plain[:4] == [iwh, irem, ewh, erem]
    # 2300 W for 4 s = 9200 J; default (uncalibrated) scale plus 1 % harmonic power
    assert _mj(iwh, irem) == pytest.approx(9200e3, rel=0.02)
    assert _mj(ewh, erem) == 0
    # reverse power: export register and the flag, nothing on import
    assert _mj(iwh2, irem2) == 0 and fl2 & 2
    assert _mj(ewh2, erem2) == pytest.approx(6000e3, rel=0.02)


def test_no_load_at_115_percent_voltage_registers_nothing_over_an_hour():
    # one capture every 10 s of meter time for an hour: 360 analyses
    out = run_mpy_json(_SIM, [[264.5, 0, 1000, 50, 360, 10000, True]])
    iwh, irem, ewh, erem, fl, hz, p = out[0]
    assert (iwh, irem, ewh, erem) == (0, [0, 0], 0, [0, 0])


def test_starting_current_of_0_4_percent_ib_registers():
    watts = 230 * wf.IN * 0.004
    out = run_mpy_json(_SIM, [[230, watts, 1000, 50, 50, 1000, True]])
    iwh, irem, ewh, erem, fl, hz, p = out[0]
    assert _mj(iwh, irem) == pytest.approx(watts * 50 * 1000, rel=0.1)


def test_frequency_is_measured_over_whole_cycles():
    out = run_mpy_json(_SIM, [[230, 2300, 1000, hz, 1, 200, True] for hz in (49, 50, 51, 60)])
    assert [abs(row[5] - hz * 1000) <= 10 for row, hz in zip(out, (49, 50, 51, 60))] == [True] * 4


def test_no_voltage_means_no_cycles_and_no_energy():
    out = run_mpy_json(_SIM, [[0, 2300, 1000, 50, 5, 1000, True]])
    iwh, irem, ewh, erem, fl, hz, p = out[0]
    assert fl & 1 and _mj(iwh, irem) == 0


_ACC = """
import sys, json
from firmware.metering.waveform import Analyzer
out = []
for p_mw, steps in json.loads(sys.stdin.readline()):
    a = Analyzer(3200); b = Analyzer(3200)
    a.p_reg_mw = b.p_reg_mw = p_mw
    for s in steps:
        a.accumulate(s)
    b.accumulate(sum(steps))
    out.append([a.state(), b.state()])
print(json.dumps(out))
"""


@settings(max_examples=10, deadline=None)
@given(st.lists(st.tuples(st.integers(-23000000, 23000000),
                          st.lists(st.integers(0, 100000), min_size=1, max_size=30)),
                min_size=1, max_size=15))
def test_energy_integration_is_exact_however_time_is_split(cases):
    out = run_mpy_json(_ACC, cases)
    for (p_mw, steps), (a, b) in zip(cases, out):
        assert a == b
        # p_mw * ms is microjoules; 1 Wh = 3.6e9 uJ
        uj = abs(p_mw) * sum(steps)
        key = "imp" if p_mw > 0 else "exp"
        assert a[key + "_wh"] == uj // 3600000000
        assert a[key + "_rem"] == [uj % 1000, uj // 1000 % 3600000]


_FIX = """
import sys, json
from firmware.metering.fixmath import muldiv, div_wide, isqrt
req = json.loads(sys.stdin.readline())
print(json.dumps([[muldiv(a, b, c) for a, b, c in req[0]],
                  [div_wide(h, l, bits, d) for h, l, bits, d in req[1]],
                  [isqrt(n) for n in req[2]]]))
"""


def _trunc_div(x, d):
    q = abs(x) // d
    return q if x >= 0 else -q


@settings(max_examples=10, deadline=None)
@given(st.lists(st.tuples(st.integers(-2**28 + 1, 2**28 - 1), st.integers(0, 2**28 - 1),
                          st.integers(1, 2**28 - 1)), max_size=30),
       st.lists(st.tuples(st.integers(-2**20, 2**20), st.integers(0, 2**26 - 1),
                          st.integers(1, 2**28 - 1)), max_size=30),
       st.lists(st.integers(0, 2**30 - 1), max_size=30))
def test_wide_integer_helpers_match_exact_arithmetic(md, dw, sq):
    md = [(a, b, c) for a, b, c in md if abs(a * b) // c < 2**30]
    dw = [(h, l, 26, d) for h, l, d in dw if abs(h * 2**26 + l) // d < 2**30]
    out = run_mpy_json(_FIX, [md, dw, sq])
    assert out[0] == [_trunc_div(a * b, c) for a, b, c in md]
    assert out[1] == [_trunc_div(h * 2**26 + l, d) for h, l, bits, d in dw]
    assert out[2] == [int(np.floor(np.sqrt(n))) if n < 2**52 else None for n in sq]


def test_a_current_beyond_the_adc_range_is_flagged_as_clipped():
    out = run_mpy("""
import array
from firmware.boards import sim_adc
from firmware.metering.waveform import Analyzer, FLAG_CLIPPED
vb = array.array('h', bytes(1280)); ib = array.array('h', bytes(1280))
for watts in (13800, 30000):      # 60 A fits; 130 A peaks past 100 A full scale
    sim_adc.fill(vb, ib, 3200, 230, watts, 1000, 50, 0)
    print(Analyzer(3200).analyze(vb, ib, 640) & FLAG_CLIPPED)
""")
    assert out.split() == ["0", "4"]


def test_sim_adc_is_deterministic_and_delivers_the_requested_load():
    out = run_mpy_json("""
import sys, json, array
from firmware.boards import sim_adc
from firmware.metering.waveform import Analyzer
vb = array.array('h', bytes(1280)); ib = array.array('h', bytes(1280))
out = []
for watts, pf in ((2300, 1000), (1500, 500), (-2000, -800), (6000, 800)):
    sim_adc.seed(42)
    sim_adc.fill(vb, ib, 3200, 230, watts, pf, 50, 12345)
    first = bytes(vb) + bytes(ib)
    sim_adc.seed(42)
    sim_adc.fill(vb, ib, 3200, 230, watts, pf, 50, 12345)
    a = Analyzer(3200)
    a.analyze(vb, ib, 640)
    out.append([first == bytes(vb) + bytes(ib), a.p_mw])
print(json.dumps(out))
""", None)
    for (same, p_mw), watts in zip(out, (2300, 1500, -2000, 6000)):
        assert same
        assert p_mw / 1000 == pytest.approx(watts, rel=0.005)
