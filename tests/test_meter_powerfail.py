"""The power-fail callback against work in progress, in MicroPython on the
sim board's LittleFS.

On the ESP32 the power-fail pin's ISR hands the app's callback to
micropython.schedule, and the VM runs it between any two bytecodes of the
main code. Here micropython.schedule does the same for real: the flash
device schedules the callback at a chosen block write, so it runs inside a
snapshot commit, or inside a top-up between its credit and its commit. The
checkpoint the callback writes must then wait until that work is whole: a
hot record naming a snapshot still being written, or holding a credit the
order record does not, would come back after the cut as a store fault or as
a top-up credited twice."""
import json
import os

from headend import codec
from mpy import run_mpy_rom

KEY_HEX = "44" * 32
METER = "PF-1"

SCRIPT = r"""
import json, micropython
from firmware.link import commands   # early, while the heap is whole (the app's link task does this on the board)
from firmware.boards.sim import SimBoard
from firmware.app import App

board = SimBoard(["--flash", %(dir)r, "--step", "--config", %(cfg)r])
app = App(board)
core = app.core
st = core.durable.store
dev = board.flash_dev
trace = []
in_commit = [False]

orig_commit = st.commit
def commit(state):
    in_commit[0] = True
    try:
        return orig_commit(state)
    finally:
        in_commit[0] = False
st.commit = commit

orig_checkpoint = st.checkpoint
def checkpoint(patch):
    d = core.durable.dispatcher
    trace.append(["checkpoint", in_commit[0], d is not None and d.orders.find(7) is not None,
                  core.engine.balance_minor()])
    return orig_checkpoint(patch)
st.checkpoint = checkpoint

def pf(_):
    trace.append(["pf", in_commit[0], core.engine.balance_minor()])
    board._power_fail_cb(None)   # what the ESP32 board schedules from its ISR

arm = [0]
orig_op = dev._op
def op():
    # every program and erase passes here (vfs keeps the device's own bound
    # writeblocks from mount time, so the hook goes one level down)
    if arm[0]:
        arm[0] -= 1
        if not arm[0]:
            micropython.schedule(pf, None)
    return orig_op()
dev._op = op

out = {}
board.set_load(2000)
board.advance(2000); core.tick()    # energy in RAM, not yet checkpointed: the callback has work to do
arm[0] = 3                   # inside the snapshot commit of the next tick
core.durable.dirty = True
core.tick()
out["commit"] = trace[:]
del trace[:]

arm[0] = 1                   # the top-up's event reaches the flash before its commit
import gc; gc.collect()
ack = app.handle_command(bytes.fromhex(%(topup)r))
out["topup"] = trace[:]
out["ack"] = ack.decode()
out["hot_base_ok"] = st.hot_seq > 0
print(json.dumps(out))
"""


def test_a_power_fail_inside_a_commit_or_a_command_checkpoints_once_the_work_is_whole(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"meter_id": METER, "key_hex": KEY_HEX, "initial_balance_minor": 10000}))
    topup = codec.command(METER, bytes.fromhex(KEY_HEX), 5, 4102444800, "topup", order=7, amount_minor=2500)
    # the compiled firmware from its ROMFS image, in the board's heap, as the sim meters run it
    out = run_mpy_rom(SCRIPT % {"dir": str(tmp_path / "sim"), "cfg": str(cfg), "topup": topup.hex()},
                      heap="108wk", timeout=60)
    res = json.loads(out.strip().splitlines()[-1])

    # the callback really ran inside the commit...
    assert res["commit"][0][:2] == ["pf", True], res["commit"]
    checkpoints = [t for t in res["commit"] if t[0] == "checkpoint"]
    # ...and its checkpoint came after the commit, not on a half-written snapshot
    assert checkpoints and all(not t[1] for t in checkpoints), res["commit"]

    ack = json.loads(res["ack"])
    assert ack["result"] == "credited" and ack["order"] == 7
    pf = [t for t in res["topup"] if t[0] == "pf"]
    assert pf, res["topup"]          # it ran during the command
    checkpoints = [t for t in res["topup"] if t[0] == "checkpoint"]
    # every hot record written holds the credit together with its order record
    assert checkpoints, res["topup"]
    for _, in_commit, order_known, balance in checkpoints:
        assert not in_commit and order_known and balance == ack["balance_minor"], res["topup"]
