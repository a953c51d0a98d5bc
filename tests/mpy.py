"""Run firmware code in the unix-port MicroPython, not in CPython.

Tests hand a script (and optionally JSON input on stdin) to `micropython`
with the repository and lib/ on MICROPYPATH and the ESP32-sized heap, and get
its stdout back. Batch many cases into one run: a process costs ~30 ms.
"""
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.environ.get("MICROPYTHON") or os.path.join(ROOT, ".venv", "bin", "micropython")
HEAP = "108k"  # an ESP32-WROOM without PSRAM


def mpy_path(*extra):
    return ":".join(list(extra) + [ROOT, os.path.join(ROOT, "lib"), ".frozen"])


def run_mpy(script, stdin=None, heap=HEAP, extra_path=(), timeout=120, check=True, env=None):
    """Run `script` (source text) in MicroPython; return stdout as text."""
    e = dict(os.environ)
    e["MICROPYPATH"] = mpy_path(*extra_path)
    if env:
        e.update(env)
    # `-c` puts "" (the working directory, ROOT) first on sys.path, ahead of
    # MICROPYPATH: a test that asks for the compiled firmware (extra_path)
    # would get the sources, compiled into its heap. ROOT is on MICROPYPATH
    # anyway (mpy_path), after the extra paths. (Line numbers shift by one.)
    script = "import sys;sys.path.remove('') if '' in sys.path else 0\n" + script
    proc = subprocess.run([MICROPYTHON, "-X", "heapsize=" + heap, "-c", script],
                          input=stdin, capture_output=True, text=True, timeout=timeout, env=e, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError("micropython failed (rc=%d)\n--- stdout\n%s\n--- stderr\n%s"
                             % (proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))
    return proc.stdout


def run_mpy_json(script, data, **kw):
    """Feed `data` as one JSON line on stdin; parse the last stdout line as JSON."""
    out = run_mpy(script, stdin=json.dumps(data) + "\n", **kw)
    lines = [l for l in out.splitlines() if l.strip()]
    return json.loads(lines[-1])


# Mounts the compiled firmware's ROMFS image at /rom and puts it first on
# sys.path, as tools/sim_entry.py does for a sim meter (docs/deploy.md).
_ROM_PRELUDE = """import os as _os, sys as _sys, vfs as _vfs
_rom = bytearray(_os.stat(%r)[6])
with open(%r, "rb") as _f:
    _f.readinto(_rom)
_vfs.mount(_vfs.VfsRom(_rom), "/rom")
_sys.path[:0] = ["/rom", "/rom/lib"]
del _rom, _f
"""


def run_mpy_rom(script, heap="108wk", **kw):
    """Run `script` with the firmware's code from its ROMFS image, as a
    production board runs it: the bytecode stays out of the firmware's heap,
    and the process gets the image's size on top of `heap` (the image sits
    in the heap here, flash-mapped on the board), so the script has the
    board's heap to itself. Use it for scripts that build a whole App or
    MeterCore at the board's heap; loaded as .mpy files that code alone
    takes about half of it."""
    from simmeter import COMPILED, ensure_compiled, process_heap
    ensure_compiled()
    image = COMPILED + ".romfs"
    return run_mpy(_ROM_PRELUDE % (image, image) + script, heap=process_heap(heap, image), **kw)
