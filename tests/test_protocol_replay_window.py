"""The command-counter window (firmware/link/replay.py) in MicroPython, under
hypothesis: counters arriving in any order, repeated, with reboots between.

Properties:
- no counter is ever accepted twice, across reboots too;
- a counter never seen before is accepted whenever fewer than WINDOW larger
  counters have been accepted (a command overtaken by a few newer ones is
  still carried out);
- a counter with more than WINDOW larger ones accepted before it is refused.
"""
import json
import os
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from mpy import HEAP, MICROPYTHON, ROOT, mpy_path

WINDOW = 8

WORKER = r"""
import sys, json
from firmware.link.replay import CounterWindow, WINDOW
print(json.dumps({"window": WINDOW}))
while True:
    line = sys.stdin.readline()
    if not line:
        break
    req = json.loads(line)
    w = CounterWindow()
    out = []
    for i, ctr in enumerate(req["ctrs"]):
        if i in req["reboots"]:
            # a power cut: only what rows() held survives, through JSON as in the snapshot
            rows = json.loads(json.dumps(w.rows()))
            w = CounterWindow()
            w.load_rows(rows)
        ok = w.fresh(ctr)
        w.accept(ctr)
        out.append(ok)
    sys.stdout.write(json.dumps({"accepted": out, "last": w.last, "rows": w.rows()}) + "\n")
"""


@pytest.fixture(scope="module")
def window():
    env = dict(os.environ, MICROPYPATH=mpy_path())
    p = subprocess.Popen([MICROPYTHON, "-X", "heapsize=" + HEAP, "-c", WORKER], cwd=ROOT, env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    assert json.loads(p.stdout.readline()) == {"window": WINDOW}

    def run(ctrs, reboots=()):
        p.stdin.write(json.dumps({"ctrs": ctrs, "reboots": sorted(reboots)}) + "\n")
        p.stdin.flush()
        line = p.stdout.readline()
        assert line, "micropython worker died"
        return json.loads(line)
    yield run
    p.stdin.close()
    p.wait(10)


# counters near one another (so reordering and repeats are common), some of
# them at 2**48 scale, as a wall-clock-millisecond head-end issues them
counters = st.one_of(st.integers(1, 60), st.integers(2 ** 47, 2 ** 47 + 60))


@settings(max_examples=400, deadline=None)
@given(ctrs=st.lists(counters, max_size=80), reboots=st.sets(st.integers(0, 80), max_size=4))
def test_every_counter_is_used_at_most_once_and_late_ones_within_the_window_still_count(window, ctrs, reboots):
    out = window(ctrs, reboots)
    accepted = []
    for ctr, ok in zip(ctrs, out["accepted"]):
        newer = sum(1 for a in accepted if a > ctr)
        if ok:
            assert ctr not in accepted, "counter %d accepted twice" % ctr
            assert newer <= WINDOW, "counter %d accepted behind %d newer ones" % (ctr, newer)
            accepted.append(ctr)
        else:
            if ctr not in accepted:
                # refused though never used: only because it fell below the window
                assert newer >= WINDOW, "fresh counter %d refused with only %d newer" % (ctr, newer)
    assert out["last"] == (max(accepted) if accepted else 0)
    assert len(out["rows"]) <= WINDOW + 1


def test_a_replay_after_many_newer_commands_and_a_reboot_is_refused(window):
    ctrs = list(range(100, 130))
    out = window(ctrs + [100, 121, 122, 129, 130], reboots={10, 30})
    assert out["accepted"] == [True] * 30 + [False, False, False, False, True]
    assert out["rows"][0] == 122 and out["last"] == 130
