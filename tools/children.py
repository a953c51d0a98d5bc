"""Child processes (brokers, sim meters) that must not outlive the tool that
started them, whether it ends normally, on Ctrl-C (SIGINT), on `kill`
(SIGTERM) or when its terminal closes (SIGHUP).

    children.exit_on_signals()     # once, in a tool's main(): SIGTERM/SIGHUP
                                   # unwind like Ctrl-C, so `finally` runs
    proc = subprocess.Popen(...)
    children.track(proc)           # killed at exit if still running
    ...
    children.untrack(proc)         # once it has been waited for

Python's default for SIGTERM and SIGHUP ends the process at once: no
`finally`, no `with` exit, no atexit, so a broker or a meter started with
Popen would keep running and its temp folder would stay. Here those signals
raise KeyboardInterrupt in the main thread instead, so every clean-up path
already written for Ctrl-C runs; the atexit hook then kills whatever tracked
process a clean-up path missed (a signal between a start and its `try`).
Nothing survives SIGKILL: that is what a power cut is, and tests use it.
"""
import atexit
import signal
import threading

_lock = threading.Lock()
_live = set()


def track(proc):
    """Kill `proc` (a subprocess.Popen) at interpreter exit if it still runs."""
    with _lock:
        _live.add(proc)
    return proc


def untrack(proc):
    with _lock:
        _live.discard(proc)


def kill_all():
    """SIGKILL and reap every tracked process still running."""
    with _lock:
        procs = list(_live)
        _live.clear()
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except Exception:   # gone already, or unkillable: nothing more to do
                pass


atexit.register(kill_all)


def _interrupt(signum, frame):
    # Ignore further signals while the clean-up this raise starts runs:
    # a second `kill` must not cut a broker's stop() short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    raise KeyboardInterrupt("signal %d" % signum)


def exit_on_signals():
    """SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread, as
    Ctrl-C does. Call from the main thread (signal handlers live there)."""
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
