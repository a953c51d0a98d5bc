"""Line coverage of firmware/boards/esp32.py and pins.py by the board exercise.

MicroPython has no settrace, so this runs the same exercise script the tests
run in the unix port (tests/esp32_exercise.py) under CPython with `coverage`,
the fakes of machine/esp32/network (tests/fakes) and small CPython shims for
`micropython` and `vfs` (tests/fakes/cpython, never on MicroPython's path).

    .venv/bin/python tools/esp32_coverage.py          # prints the percentages
    .venv/bin/python tools/esp32_coverage.py --json   # one JSON line
"""
import io
import json
import os
import runpy
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKES = os.path.join(ROOT, "tests", "fakes")
SHIMS = os.path.join(FAKES, "cpython")
EXERCISE = os.path.join(ROOT, "tests", "esp32_exercise.py")
MEASURED = [os.path.join(ROOT, "firmware", "boards", "esp32.py"),
            os.path.join(ROOT, "firmware", "boards", "pins.py")]
_PERIOD = 1 << 30           # the ESP32's ticks period


def _install_time_shims():
    # MicroPython's time.ticks_* and sleep_* on top of CPython's clock
    t0 = time.monotonic()

    def ticks_ms():
        return int((time.monotonic() - t0) * 1000) & (_PERIOD - 1)

    def ticks_us():
        return int((time.monotonic() - t0) * 1000000) & (_PERIOD - 1)

    def ticks_add(t, delta):
        return (t + delta) & (_PERIOD - 1)

    def ticks_diff(a, b):
        return ((a - b + _PERIOD // 2) & (_PERIOD - 1)) - _PERIOD // 2

    time.ticks_ms = ticks_ms
    time.ticks_us = ticks_us
    time.ticks_add = ticks_add
    time.ticks_diff = ticks_diff
    time.sleep_ms = lambda ms: time.sleep(ms / 1000)
    time.sleep_us = lambda us: time.sleep(us / 1000000)


def measure():
    """Run the exercise under coverage; returns {file: {percent, lines, missing}}."""
    import coverage
    sys.path[:0] = [SHIMS, FAKES, ROOT]
    _install_time_shims()
    tmp = tempfile.mkdtemp(prefix="esp32cov-")
    cfg = {"tmp": tmp, "cases": None, "timestamps": [0, 951782400, 1767225600, 4107542400]}
    cov = coverage.Coverage(data_file=None, include=MEASURED)
    stdin, stdout = sys.stdin, sys.stdout
    sys.stdin, sys.stdout = io.StringIO(json.dumps(cfg) + "\n"), io.StringIO()
    cov.start()
    try:
        runpy.run_path(EXERCISE, run_name="__main__")
    finally:
        cov.stop()
        sys.stdin, sys.stdout = stdin, stdout
        shutil.rmtree(tmp, ignore_errors=True)
    out = {}
    for path in MEASURED:
        _, statements, _, missing, _ = cov.analysis2(path)
        done = len(statements) - len(missing)
        out[os.path.basename(path)] = {
            "percent": round(100.0 * done / len(statements), 2) if statements else 100.0,
            "lines": len(statements), "missing": missing}
    return out


def main():
    result = measure()
    if "--json" in sys.argv:
        print(json.dumps(result))
        return
    for name, r in result.items():
        line = "%-9s %6.2f %% of %d lines" % (name, r["percent"], r["lines"])
        if r["missing"]:
            line += "  missing: %s" % r["missing"]
        print(line)


if __name__ == "__main__":
    main()
