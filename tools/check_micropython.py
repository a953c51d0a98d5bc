"""Is this a MicroPython we can run the firmware in? `make setup` asks before
the long pip install when MICROPYTHON= is given, and right after it for the
venv wheel's binary.

    python3 tools/check_micropython.py PATH      # exit 0 and one line, or 1

It runs the binary and reads `sys.implementation`: a file that is there but
is CPython, a shell script or a build for another machine fails here, in a
second, with what it is, instead of in the middle of the test suite.
Standard library only: it runs before the venv exists.
"""
import os
import shutil
import subprocess
import sys

PROBE = "import sys; print(sys.implementation.name, '.'.join(str(x) for x in sys.implementation.version[:3]))"


def check(path):
    """(ok, message) for the MicroPython at `path` (a path, or a name on PATH)."""
    exe = path if os.sep in path else (shutil.which(path) or path)
    if not os.path.exists(exe):
        return False, "MICROPYTHON=%s: no such file" % path
    if not os.path.isfile(exe) or not os.access(exe, os.X_OK):
        return False, "MICROPYTHON=%s: not an executable file" % path
    try:
        proc = subprocess.run([exe, "-c", PROBE], capture_output=True, text=True, timeout=20)
    except OSError as e:
        return False, "MICROPYTHON=%s: cannot run it (%s)" % (path, e.strerror or e)
    except subprocess.TimeoutExpired:
        return False, "MICROPYTHON=%s: did not answer within 20 s" % path
    words = proc.stdout.split()
    if proc.returncode != 0 or len(words) != 2:
        said = (proc.stderr or proc.stdout).strip().splitlines()
        return False, "MICROPYTHON=%s: not MicroPython (it ran, exit %d: %s)" % (
            path, proc.returncode, said[-1][:100] if said else "no output")
    name, version = words
    if name != "micropython":
        return False, "MICROPYTHON=%s: not MicroPython (sys.implementation.name is %r)" % (path, name)
    return True, "micropython %s at %s" % (version, exe)


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ok, msg = check(argv[1])
    print(("setup: " if ok else "ERROR: ") + msg, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
