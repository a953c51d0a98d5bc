"""The calibration path a technician follows (docs/metering.md, "Calibrating
a meter"), end to end in the unix-port MicroPython, against waveforms from a
front end the firmware was never tuned on (tools/waveforms.py, HELD_OUT:
other gain errors and skew, DC offsets, more noise, 12-bit quantisation and
0.28 W of crosstalk at no load)."""
import os

import numpy as np
import pytest

import bench_metering as bm
import waveforms as wf
from mpy import run_mpy_json

HELD = wf.HELD_OUT


def test_a_technician_calibration_puts_every_iec_point_inside_class_05s(capsys):
    # step 1 at the current docs/metering.md recommends: Imax, PF 0.5L
    info = {}
    rows, cal = bm.measure_points(wf.iec_grid(), fe=HELD, ref_frac=wf.IMAX / wf.IN, info=info)
    with capsys.disabled():
        bm.print_table(rows)
    assert len(rows) == 63       # 7 currents x 3 PF x 49, 50, 51 Hz
    assert info["offset_refused"] is None
    for name, frac, pf, ref, got, err, limit in rows:
        assert abs(err) <= limit, (name, err)
    in02 = [r for r in rows if abs(r[5]) <= wf.class02s_limit_pct(r[1], r[2])]
    with capsys.disabled():
        print("\nclass 0.2S: %d of %d points; calibration %s, offset from %d captures"
              % (len(in02), len(rows), cal, info["offset_captures"]))
    # From 5 % Ib the noise is small: everything is inside class 0.2S. The
    # points at 50 % Ib and above show a gain error first: a quarter count of
    # Irms resolution put them at +0.07..+0.11 % on this front end (now
    # within 0.023 %).
    for name, frac, pf, ref, got, err, limit in rows:
        if frac >= 0.05:
            assert abs(err) <= wf.class02s_limit_pct(frac, pf), (name, err)
        if frac >= 0.5:
            assert abs(err) <= 0.06, (name, err)


def test_the_current_gain_comes_out_at_full_resolution_from_ib_up(tmp_path):
    # gain error against the truth, nominal scale / the board's gain error
    true_ki = 100e6 / 2048 / HELD.i_gain
    errs = []
    for k, frac in enumerate((1.0, 2.0, 6.0)):
        c = bm.reference_cal(str(tmp_path), HELD, ref_frac=frac, noload_captures=0)
        c["skip_offsets"] = True
        cal = run_mpy_json(bm._ENERGY_SCRIPT, {"rate": wf.RATE_HZ, "calibrate": c, "jobs": []})["cal"]
        errs.append(cal["i_ua_per_count"] / true_ki - 1)
    # Irms's quarter count was +0.074 % at Ib here; the exact mean square
    # leaves only the reference's noise, which falls as the current rises
    assert abs(errs[0]) < 3e-4, errs
    assert abs(errs[2]) < 1e-4, errs


# calibrate_offsets() on a stream of 200 ms captures; each case reports the
# calibration it returned or the reason it refused, and whether `cal` moved
_OFFSETS = """
import sys, json, array
from firmware.metering.calibration import calibrate_offsets
req = json.loads(sys.stdin.readline())
out = []
vb = array.array('h', bytes(1280)); ib = array.array('h', bytes(1280))
for path, max_captures in req["cases"]:
    cal = dict(req["cal"])
    before = dict(cal)
    f = open(path, "rb")
    used = [0]
    def capture(v, i):
        used[0] += 1
        if f.readinto(v) < 1280 or f.readinto(i) < 1280:
            return 0
        return 640
    try:
        got = calibrate_offsets(capture, vb, ib, 3200, cal, 230000, 10000, max_captures=max_captures)
        why = None
    except ValueError as e:
        got = None
        why = str(e)
    f.close()
    out.append([got, why, cal == before, used[0]])
print(json.dumps(out))
"""


def _stream(tmp_path, name, captures, v_rms, i_rms, seed):
    v, i, _ = wf.synth(captures * bm.CHUNK, v_rms, i_rms, 1.0, True, 50.0, seed=seed, fe=HELD,
                       harmonics=False)
    path = os.path.join(str(tmp_path), name)
    bm._write_chunks(path, v, i, bm.CHUNK)
    return path


def test_offsets_are_averaged_until_they_are_known_and_refused_with_a_reason_otherwise(tmp_path):
    cal = {"v_uv_per_count": 221876, "i_ua_per_count": 47688, "delay_q8": -95,
           "p_offset_mw": 0, "i_floor_q4": 0}
    quiet = _stream(tmp_path, "quiet.bin", 3000, wf.VN, 0.0, 11)
    loaded = _stream(tmp_path, "load.bin", 40, wf.VN, 0.2, 12)      # 2 % Ib left connected
    dead = _stream(tmp_path, "dead.bin", 40, 0.0, 0.0, 13)          # no voltage
    out = run_mpy_json(_OFFSETS, {"cal": cal, "cases": [[quiet, 3000], [quiet, 40],
                                                        [loaded, 40], [dead, 40]]})
    (good, why, same, used), noisy, load, nomains = out

    # 1 % Ib at PF 0.5 is 11.5 W; its class 0.2S limit 0.5 %; a quarter of
    # that is the target standard error: 14.4 mW. One capture's offset has a
    # standard deviation near 0.5 W here, so it takes hundreds of them.
    assert why is None and same
    assert 200 < used < 3000
    true_mw = HELD.offset_w(wf.VN) * 1000
    assert abs(good["p_offset_mw"] - true_mw) <= 3 * 14.4, (good, true_mw)
    assert good["i_floor_q4"] == pytest.approx(16 * HELD.i_noise ** 2, rel=0.15)
    assert {k: good[k] for k in ("v_uv_per_count", "i_ua_per_count", "delay_q8")} == \
        {k: cal[k] for k in ("v_uv_per_count", "i_ua_per_count", "delay_q8")}

    # a short stream does not reach the target: refused, nothing changed
    got, why, same, used = noisy
    assert got is None and same and used == 40
    assert why.startswith("offset too noisy"), why
    got, why, same, used = load
    assert got is None and same and why.startswith("load present"), why
    got, why, same, used = nomains
    assert got is None and same and why == "no mains", why


def test_a_reference_beyond_full_scale_is_refused(tmp_path):
    v, i, _ = wf.synth(wf.RATE_HZ, wf.VN, 80.0, 0.5, True, 50.0, seed=3, fe=HELD, harmonics=False)
    path = os.path.join(str(tmp_path), "clip.bin")
    with open(path, "wb") as f:
        f.write(v.astype("<i2").tobytes() + i.astype("<i2").tobytes())
    out = run_mpy_json("""
import sys, json, array
from firmware.metering.calibration import calibrate
path = json.loads(sys.stdin.readline())
vb = array.array('h', bytes(6400)); ib = array.array('h', bytes(6400))
with open(path, "rb") as f:
    f.readinto(vb); f.readinto(ib)
try:
    calibrate(vb, ib, 3200, 3200, 230000, 80000, 500)
    print(json.dumps("accepted"))
except ValueError as e:
    print(json.dumps(str(e)))
""", path)
    assert out == "reference clipped"
