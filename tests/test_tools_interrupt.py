"""`make bench` and `make soak`, interrupted once a broker and a sim meter
are up, leave no process and no temp folder behind: Ctrl-C (SIGINT to the
terminal's whole process group) and `kill` (SIGTERM to make alone).

Each run is its own session, so every process it started (and any it
orphaned) is found by session id in /proc; TMPDIR points into tmp_path, so
every temp folder it made is there. `-o setup` keeps make from re-running
setup; the soak runs one campaign of 3 cuts, the bench only bench_firmware.
"""
import os
import signal
import subprocess

import pytest

from wait import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def session_procs(sid):
    """{pid: command name} of every live process in session `sid`."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            out[int(d)] = comm
    return out


def wait_until(cond, timeout, what):
    return wait_for(cond, timeout, what)


def leftovers(tmp):
    """Paths under `tmp` a run left; pytest's per-user root may stay, empty
    of numbered session folders."""
    left = []
    for name in os.listdir(tmp):
        p = os.path.join(tmp, name)
        if name.startswith("pytest-of-"):
            left += [os.path.join(p, n) for n in os.listdir(p) if n != "pytest-current"]
        else:
            left.append(p)
    return left


TARGETS = {
    "bench": ["bench", "BENCH=firmware"],
    # enough cuts that the campaign is still running when the interrupt lands
    # (3 cuts can end within a second, before it, and then fail their own check)
    "soak": ["soak", "SOAK_CUTS=500", "PYTEST_ARGS=-k powercut_meter -p no:cacheprovider"],
}


@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_an_interrupted_run_leaves_no_broker_meter_or_temp_folder(tmp_path, target, how):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    env.pop("MAKEFLAGS", None)
    proc = subprocess.Popen(["make", "--no-print-directory", "-o", "setup"] + TARGETS[target], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    sid = proc.pid
    try:
        up = wait_until(lambda: {"mosquitto", "micropython"} <= set(session_procs(sid).values())
                        and session_procs(sid), 60, "a broker and a meter")
        if how == "ctrl-c":
            os.killpg(sid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            out = proc.communicate(timeout=90)[0]
        except subprocess.TimeoutExpired:
            # say who was still running and what the run printed, not just "timeout"
            alive = session_procs(sid)
            os.killpg(sid, signal.SIGKILL)
            out = proc.communicate()[0]
            raise AssertionError("make %s did not exit within 90 s of the %s; still running: %s\n%s"
                                 % (target, how, alive, out[-3000:]))
    finally:
        if proc.poll() is None:
            os.killpg(sid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0, out
    # orphans keep the session id: none may be left, after a moment to exit
    try:
        wait_for(lambda: not session_procs(sid), 10, "the session's processes to exit")
    except AssertionError:
        pass   # reported below, with who survived
    survivors = session_procs(sid)
    for pid in survivors:   # do not leave them to the next test either
        os.kill(pid, signal.SIGKILL)
    assert survivors == {}, "%s survived %s (had %s)\n%s" % (survivors, how, up, out[-3000:])
    assert leftovers(str(tmp)) == [], out[-3000:]
    assert "Traceback" not in out or target == "soak", out[-3000:]
