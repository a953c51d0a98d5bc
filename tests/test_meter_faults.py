"""Corrupted state on the sim meter's real LittleFS: detected, never a silent
reset of the balance, never a wrong value; the documented safe state."""
import os

import signed
from mqttc import Watcher
from simmeter import corrupt_store, snapshot_seqs

def corrupt(meter, names):
    corrupt_store(os.path.join(meter.dir, "flash.img"), names)


def test_one_damaged_copy_is_recovered_from_the_other_with_the_balance_intact(sim_meters):
    m = sim_meters("f1", config={"initial_balance_minor": 0, "key_hex": signed.KEY_HEX,
                                 "reconnect": "auto"}).start()
    m.control({"cmd": "command", "raw": signed.command("f1", "topup", order=1, amount_minor=4321).decode()})
    # the top-up's commit wrote one copy; the meter tick then copies it over
    # the other (docs/storage.md, "What a top-up writes")
    m.wait_for(lambda s: s["meter"]["store_level"], timeout=10)
    m.kill()
    corrupt(m, ["a/snap"])
    m.start()
    st = m.state()
    assert st["meter"]["balance_minor"] == 4321 and not st["meter"]["fault"]
    assert st["relay_closed"]


def test_the_newest_copy_damaged_before_the_mirror_is_a_recovery_one_commit_back_never_silent(sim_meters, broker):
    # The window the one-erase commit costs: a cut right after the top-up's
    # commit, before the tick copied it, then damage to that one copy. The
    # meter comes back at the commit before (the top-up's credit and its
    # order record gone together, so a re-send credits it once) and says
    # so: a store_recovered event, not a quiet "ok".
    m = sim_meters("f4", broker.port, config={"initial_balance_minor": 0, "key_hex": signed.KEY_HEX,
                                              "reconnect": "auto"}).start()
    m.wait_for(lambda s: s["meter"]["store_level"], timeout=10)
    m.control({"cmd": "hang", "task": "meter"})       # no tick: the mirror waits
    r = m.control({"cmd": "command", "raw": signed.command("f4", "topup", order=1, amount_minor=4321).decode()})
    assert r["reply"]["result"] == "credited"
    assert not m.state()["meter"]["store_level"]
    m.kill()
    seqs = snapshot_seqs(os.path.join(m.dir, "flash.img"))
    newest = max(seqs, key=seqs.get)
    assert seqs[newest] == min(seqs.values()) + 1, seqs   # the other a commit behind
    corrupt(m, [newest])
    w = Watcher(broker.port, ["meters/f4/evt"])
    try:
        m.start()
        st = m.state()
        assert st["meter"]["balance_minor"] == 0 and not st["meter"]["fault"]
        ev = w.wait(lambda t, b: b.get("kind") == "fault", timeout=20)
        assert ev["code"] == "store_recovered"
    finally:
        w.close()
    r = m.control({"cmd": "command", "raw": signed.command("f4", "topup", order=1, amount_minor=4321).decode()})
    assert r["reply"]["result"] == "credited" and m.state()["meter"]["balance_minor"] == 4321


def test_both_copies_damaged_is_a_fault_with_relay_open_an_lcd_code_and_a_live_event(sim_meters, broker):
    m = sim_meters("f2", broker.port, config={"initial_balance_minor": 0, "key_hex": signed.KEY_HEX,
                                              "reconnect": "auto"}).start()
    m.control({"cmd": "command", "raw": signed.command("f2", "topup", order=1, amount_minor=4321).decode()})
    m.kill()
    corrupt(m, ["a/snap", "b/snap"])
    w = Watcher(broker.port, ["meters/f2/evt", "meters/f2/state"])
    try:
        m.start()
        st = m.wait_for(lambda s: s["lcd"] and s["lcd"][0].startswith("Meter fault"), timeout=5)
        assert not st["relay_closed"]
        assert st["lcd"][1] == "E53"
        assert "4321" not in " ".join(st["lcd"]) and "0.00" not in " ".join(st["lcd"])
        ev = w.wait(lambda t, b: t.endswith("/evt") and b.get("kind") == "fault")
        assert ev["code"] == "snap_crc" and ev["lcd"] == 53
        signed.verify(__import__("json").dumps(ev).encode())
        state = w.wait(lambda t, b: t.endswith("/state") and b.get("fault"))
        assert state["fault"] == "snap_crc" and state["relay_closed"] == 0
        # a top-up in the fault state is refused, not credited into an unknown balance
        r = m.control({"cmd": "command", "raw": signed.command("f2", "topup", order=2, amount_minor=100).decode()})
        assert r["reply"]["result"] == "rejected" and r["reply"]["reason"] == "store_failed"
        # the damaged files are left for the technician: a restart faults again
        m.kill()
        m.start()
        assert m.wait_for(lambda s: s["lcd"] and s["lcd"][0].startswith("Meter fault"), timeout=5)
    finally:
        w.close()


def test_an_empty_flash_is_the_factory_state_not_a_fault(sim_meters):
    m = sim_meters("f3", config={"initial_balance_minor": 777}).start()
    st = m.state()
    assert st["meter"]["balance_minor"] == 777 and not st["meter"]["fault"]


RUNNING_DAMAGE = r"""
import json
from firmware.boards.sim import SimBoard
from firmware.meter import MeterCore
from firmware import config
from firmware.store import record

def boot():
    board = SimBoard(["--flash", %(dir)r, "--step", "--imp", "1000"])
    cfg = config.load({"meter_id": "MD-1", "initial_balance_minor": 100000, "imp_per_kwh": 1000})
    return MeterCore(board, cfg)

def seqs(st):
    r = []
    for n in ("a/snap", "b/snap"):
        with open(st.dir + "/" + n, "rb") as f:
            rec = record.decode(f.read(), record.KIND_SNAP)
        r.append(rec and rec[0])
    return r

core = boot()
d = core.durable
st = d.store
d.tidy()
core.engine.ledger.balance_minor += 555   # a change only this commit holds
d.commit()
newest = ("a/snap", "b/snap")[seqs(st).index(st.snap_seq)]
with open(st.dir + "/" + newest, "rb") as f:
    b = bytearray(f.read())
b[len(b) // 2] ^= 0x10
with open(st.dir + "/" + newest, "wb") as f:
    f.write(b)
seq0 = core.events.seq
d.tidy()        # the tick's mirror finds the newest copy damaged
ev = [e[3].decode() for e in core.events.outbox.entries if e[2] > seq0]
out = {"events": ev, "behind": st.behind}
d.tidy()
out["level"] = [seqs(st), st.snap_seq, st.behind]
del core
core = boot()
out["boot"] = core.engine.ledger.balance_minor
print(json.dumps(out))
"""


def test_a_copy_damaged_while_the_meter_runs_is_written_again_from_ram_and_reported(tmp_path):
    # The meter tick's mirror checks the newest copy before copying it: damage
    # is never copied over the good older copy; the state, still whole in
    # RAM, is committed again and a store_recovered event tells the server.
    from mpy import run_mpy
    from simmeter import COMPILED, ensure_compiled
    ensure_compiled()
    out = run_mpy(RUNNING_DAMAGE % {"dir": str(tmp_path / "sim")}, heap="108wk", timeout=60,
                  extra_path=(COMPILED, os.path.join(COMPILED, "lib")))
    r = __import__("json").loads(out.strip().splitlines()[-1])
    assert len(r["events"]) == 1 and '"store_recovered"' in r["events"][0], r
    assert r["behind"] is True                      # the new commit, not copied yet
    seqs, seq, behind = r["level"]
    assert seqs == [seq, seq] and behind is False   # the next tick levels them
    assert r["boot"] == 100555
