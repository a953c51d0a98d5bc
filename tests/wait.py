"""Wait on a condition, not on time: the tests' one polling helper.

    wait_for(lambda: proxy.accepted >= 3, 10, "three connection attempts")

A test that means "once X has happened" says X; a sleep that hopes X has
happened by then passes or fails with the machine's load. For messages,
prefer the waits that block on arrival (mqttc.Watcher.wait,
linkrig.MpyProc.wait); for a sim meter's state, SimMeter.wait_for.
"""
import time

POLL_S = 0.02


def wait_for(predicate, timeout, what):
    """Return predicate()'s first truthy value, polling until `timeout`
    seconds; raise AssertionError naming `what` (and the last value) if it
    never comes."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, got))
        time.sleep(POLL_S)


def event_after(proc, name, since, predicate, timeout=20, what=None):
    """The first event `name` of a linkrig.MpyProc after event `since` (by
    its position in proc.events) for which predicate(event) holds."""
    start = proc.events.index(since) + 1 if since is not None else 0

    def find():
        for ev in proc.events[start:]:
            if ev.get("ev") == name and predicate(ev):
                return ev
        return None
    return wait_for(find, timeout, what or "a %r event after %r" % (name, since and since.get("ev")))


def _run_delay_s(path):
    try:
        with open(path) as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def own_latency(fn, pid):
    """(fn(), seconds) where seconds is how long the call took less the time
    the process `pid` (its main thread: a sim meter's loop) and this thread
    spent runnable but waiting for a CPU (Linux schedstat's run delay). A
    loop that is held shows in it; a loaded machine that runs both sides
    late does not, so a bound on it is not a wall-clock pace."""
    theirs, mine = "/proc/%d/schedstat" % pid, "/proc/thread-self/schedstat"
    t0, r0, s0 = time.monotonic(), _run_delay_s(theirs), _run_delay_s(mine)
    out = fn()
    took = time.monotonic() - t0
    waited = (_run_delay_s(theirs) - r0) + (_run_delay_s(mine) - s0)
    return out, max(0.0, took - waited)
