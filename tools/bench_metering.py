"""Metering bench: class 0.5S accuracy table, creep, pulse integrity, speed.

The analyzer under test is the firmware's own (firmware/metering/waveform.py)
running in the unix-port MicroPython; only the waveforms and the reference
energy come from CPython/numpy (tools/waveforms.py). `run()` is called by
tools/bench.py (`make bench`); tests call the helpers with smaller sets.
"""
import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import waveforms as wf  # noqa: E402
from mpy import run_mpy_json  # noqa: E402

CHUNK = 640          # samples per capture: 200 ms at 3200 S/s, about 10 cycles
CHUNK_MS = 200

TARGETS = {
    "adc_points_outside_class05s": ("==", 0),
    "pulse_lost": ("==", 0),
    "creep_wh": ("==", 0),
    "adc_viper_speedup": (">=", 2.0),
    "adc_start_registers": ("==", 1),
}

# MicroPython side: stream chunks from a file through one Analyzer per job and
# report the energy it registered, down to the microjoule.
_ENERGY_SCRIPT = """
import sys, json, array
from firmware.metering.waveform import Analyzer
from firmware.metering.calibration import calibrate, calibrate_offsets
req = json.loads(sys.stdin.readline())
rate = req["rate"]
cal = req.get("cal")
c = req.get("calibrate")
if c:
    n = c["n"]
    vb = array.array('h', bytes(2 * n)); ib = array.array('h', bytes(2 * n))
    with open(c["path"], "rb") as f:
        f.readinto(vb); f.readinto(ib)
    cal = calibrate(vb, ib, n, rate, c["v_mv"], c["i_ma"], c["pf_milli"], c["lagging"])
    with open(c["path0"], "rb") as f:
        f.readinto(vb); f.readinto(ib)
    cal = calibrate_offsets(vb, ib, n, rate, cal)
    vb = ib = None
out = {"cal": cal, "jobs": []}
for job in req["jobs"]:
    n = job["chunk"]
    vb = array.array('h', bytes(2 * n)); ib = array.array('h', bytes(2 * n))
    an = Analyzer(rate, cal, creep_mw=job.get("creep_mw", 4000), fast=job.get("fast", True))
    flags = 0
    with open(job["path"], "rb") as f:
        for k in range(job["chunks"]):
            f.readinto(vb); f.readinto(ib)
            flags |= an.analyze(vb, ib, n)
            an.accumulate(job["dt_ms"])
    s = an.state()
    out["jobs"].append({"imp_wh": s["imp_wh"], "imp_rem": s["imp_rem"], "exp_wh": s["exp_wh"],
                        "exp_rem": s["exp_rem"], "flags": flags, "v_mv": an.vrms_mv,
                        "i_ma": an.irms_ma, "p_mw": an.p_mw, "pf_milli": an.pf_milli,
                        "f_mhz": an.freq_mhz})
print(json.dumps(out))
"""


def _write_chunks(path, v, i, chunk):
    """Interleave chunk-sized pieces of v and i as the board would deliver them."""
    k = len(v) // chunk
    with open(path, "wb") as f:
        for c in range(k):
            f.write(v[c * chunk:(c + 1) * chunk].astype("<i2").tobytes())
            f.write(i[c * chunk:(c + 1) * chunk].astype("<i2").tobytes())
    return k


def energy_mj(job, key="imp"):
    wh = job[key + "_wh"]
    uj, mj = job[key + "_rem"]
    return wh * 3600000 + mj + uj / 1000.0


def reference_cal(tmp, fe=wf.TYPICAL, seed=99):
    """Request part that calibrates the analyzer in MicroPython at In, PF 0.5L,
    then measures the offsets at no load, as a factory would."""
    n = wf.RATE_HZ
    v, i, _ = wf.synth(n, wf.VN, wf.IN, 0.5, True, 50.0, seed=seed, fe=fe, harmonics=False)
    p1 = os.path.join(tmp, "cal.bin")
    with open(p1, "wb") as f:
        f.write(v.astype("<i2").tobytes() + i.astype("<i2").tobytes())
    v, i, _ = wf.synth(n, wf.VN, 0.0, 1.0, True, 50.0, seed=seed + 1, fe=fe, harmonics=False)
    p0 = os.path.join(tmp, "cal0.bin")
    with open(p0, "wb") as f:
        f.write(v.astype("<i2").tobytes() + i.astype("<i2").tobytes())
    return {"n": n, "path": p1, "path0": p0, "v_mv": int(wf.VN * 1000), "i_ma": int(wf.IN * 1000),
            "pf_milli": 500, "lagging": True}


def measure_points(points, fe=wf.TYPICAL, seed=7, fast=True):
    """Run the accuracy points; returns (rows, cal). Each row:
    (name, i_frac, pf, ref_mj, got_mj, err_pct, limit_pct)."""
    with tempfile.TemporaryDirectory() as tmp:
        jobs, refs = [], []
        for k, (name, frac, pf, lag, hz, secs) in enumerate(points):
            n = int(secs * wf.RATE_HZ) // CHUNK * CHUNK
            v, i, p_w = wf.synth(n, wf.VN, wf.IN * frac, pf, lag, hz, seed=seed + k, fe=fe)
            path = os.path.join(tmp, "p%d.bin" % k)
            chunks = _write_chunks(path, v, i, CHUNK)
            jobs.append({"path": path, "chunk": CHUNK, "chunks": chunks, "dt_ms": CHUNK_MS,
                         "fast": fast})
            # the analyzer integrates power over the capture's nominal duration
            refs.append(p_w * chunks * CHUNK_MS)  # W * ms = mJ
        req = {"rate": wf.RATE_HZ, "calibrate": reference_cal(tmp, fe), "jobs": jobs}
        out = run_mpy_json(_ENERGY_SCRIPT, req, timeout=600)
    rows = []
    for (name, frac, pf, lag, hz, secs), ref, job in zip(points, refs, out["jobs"]):
        got = energy_mj(job)
        err = (got - ref) / ref * 100.0
        rows.append((name, frac, pf, ref, got, err, wf.class05s_limit_pct(frac, pf)))
    return rows, out["cal"]


def print_table(rows):
    print("%-24s %12s %12s %8s %6s %s" % ("point", "ref mJ", "meter mJ", "err %", "limit", "ok"))
    for name, frac, pf, ref, got, err, lim in rows:
        print("%-24s %12.1f %12.1f %+8.3f %6.1f %s" % (name, ref, got, err, lim,
                                                       "yes" if abs(err) <= lim else "NO"))


def run():
    rows, cal = measure_points(wf.iec_points(full=True))
    print_table(rows)
    print("calibration:", cal)
    res = {
        "adc_points": len(rows),
        "adc_points_outside_class05s": sum(1 for r in rows if abs(r[5]) > r[6]),
        "adc_max_abs_error_pct": round(max(abs(r[5]) for r in rows), 4),
    }
    return res


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
