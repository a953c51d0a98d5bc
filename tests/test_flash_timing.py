"""The sim flash's timing model (docs/storage.md, "Flash timing"): each erase
and program stalls the whole process for the datasheet's time, as an ESP32
stalls with its caches off; the sim counts what every top-up erases; and a
meter whose flash takes that long still credits top-ups and keeps ticking.
No assertion here bounds a time from above: a sleep can run long on a
loaded machine, never short."""
import json

import signed
from mpy import run_mpy

DEV_SCRIPT = r'''
import json, os, time
from firmware.boards import flashdev
out = {"none": flashdev.timing(None), "typ": flashdev.timing("typ"),
       "max": flashdev.timing("max"), "ppp4": flashdev.timing("typ", 4)}
try:
    os.remove("%(img)s")
except OSError:
    pass
dev = flashdev.FileBlockDev("%(img)s", 16)
dev.ioctl(6, 3)
dev.writeblocks(3, b"\0" * 256, 0)
out["untimed_stall_us"] = dev.stall_us
dev.timing = flashdev.timing("typ")
t0 = time.ticks_us()
dev.ioctl(6, 4)
t1 = time.ticks_us()
out["erase_stall_us"] = dev.stall_us
out["erase_took_us"] = time.ticks_diff(t1, t0)
dev.writeblocks(4, b"\0" * 256, 0)      # one whole page
out["page_us"] = dev.stall_us - out["erase_stall_us"]
s = dev.stall_us
dev.writeblocks(4, b"\0" * 32, 256)     # a 32-byte program: its floor, tPP/8
out["small_us"] = dev.stall_us - s
s = dev.stall_us
dev.writeblocks(4, b"\0" * 256, 640)    # crosses a page boundary: two programs
out["straddle_us"] = dev.stall_us - s
dev.close()
print(json.dumps(out))
'''


def test_the_timing_model_stalls_for_the_datasheet_times_and_only_when_on(tmp_path):
    out = json.loads(run_mpy(DEV_SCRIPT % {"img": str(tmp_path / "t.img")}).strip().splitlines()[-1])
    assert out["none"] is None and out["untimed_stall_us"] == 0
    assert out["typ"] == [45000, 400] and out["max"] == [400000, 3000]
    assert out["ppp4"] == [180000, 1600]            # the PPP slowdown multiplies both
    assert out["erase_stall_us"] == 45000
    assert out["erase_took_us"] >= 45000            # the call itself blocked that long
    assert out["page_us"] == 400
    assert out["small_us"] == 50
    assert out["straddle_us"] == 400                # 128 + 128 bytes: half a tPP each


def _topup(m, order):
    raw = signed.command(m.meter_id, "topup", order=order, amount_minor=10).decode()
    return m.control({"cmd": "command", "raw": raw})["reply"]


def test_a_timed_flash_stalls_each_top_up_for_what_it_erased(sim_meters):
    # One meter, the timing switched on halfway (the sim's flash_timing
    # control): the same top-ups, compared within one run.
    m = sim_meters("ft1", config={"initial_balance_minor": 5000, "key_hex": signed.KEY_HEX}).start()
    assert m.control({"cmd": "flash_stats"})["timing"] is None
    assert _topup(m, 1)["result"] == "credited"     # loads the dispatcher
    per_topup = []
    for order in range(2, 7):
        f0 = m.control({"cmd": "flash_stats"})
        assert _topup(m, order)["result"] == "credited"
        f1 = m.control({"cmd": "flash_stats"})
        per_topup.append(f1["erases"] - f0["erases"])
        assert f1["stall_us"] == 0
    # every top-up commits a snapshot, which takes at least one fresh block
    assert min(per_topup) >= 1
    assert m.control({"cmd": "flash_timing", "mode": "typ"})["timing"] == [45000, 400]
    for order in range(7, 12):
        f0 = m.control({"cmd": "flash_stats"})
        assert _topup(m, order)["result"] == "credited"
        f1 = m.control({"cmd": "flash_stats"})
        erases, progs = f1["erases"] - f0["erases"], f1["progs"] - f0["progs"]
        stall = f1["stall_us"] - f0["stall_us"]
        # each erase stalls 45 ms, each program at least tPP/8 and at most
        # tPP per page (LittleFS programs at most its 128-byte cache)
        assert erases * 45000 + progs * 50 <= stall <= erases * 45000 + progs * 400
    # off again: nothing more is stalled
    m.control({"cmd": "flash_timing", "mode": None})
    s = m.control({"cmd": "flash_stats"})["stall_us"]
    assert _topup(m, 12)["result"] == "credited"
    assert m.control({"cmd": "flash_stats"})["stall_us"] == s


def test_with_the_flash_timed_top_ups_credit_and_the_meter_keeps_ticking(sim_meters):
    m = sim_meters("ft2", config={"initial_balance_minor": 5000, "key_hex": signed.KEY_HEX},
                   flash_timing="typ").start()
    assert m.control({"cmd": "flash_stats"})["timing"] == [45000, 400]
    m.control({"cmd": "meter_every_ms", "ms": 100})
    m.control({"cmd": "load", "w": 10000})       # hot checkpoints every few seconds
    reads0 = m.control({"cmd": "tick_times_ms"})["reads"]
    for order in range(1, 21):
        assert _topup(m, order)["result"] == "credited"
    st = m.wait_for(lambda s: m.control({"cmd": "tick_times_ms"})["reads"] >= reads0 + 20, timeout=30)
    f = m.control({"cmd": "flash_stats"})
    assert f["stall_us"] >= 20 * 45000            # every top-up erased at least one block
    t = m.control({"cmd": "tick_times_ms"})
    assert len(t["ms"]) == min(t["reads"] - reads0, 512)    # recorded from the first request
    meter = m.state()["meter"]
    assert meter["import_wh"] > 0 and meter["relay_closed"]
    assert st["reset_cause"] == "power"           # no watchdog reset from the stalls


def test_a_top_up_erases_one_snapshot_block_only_and_its_event_survives_a_cut(sim_meters):
    # The top-up event rides in the snapshot's tail (core/durable.py) until
    # the outbox file is next written, and the commit writes one snapshot
    # copy, the meter tick the other: a cut right after the ack loses
    # nothing, and the top-up erased one snapshot copy's block only.
    m = sim_meters("ft3", config={"initial_balance_minor": 5000, "key_hex": signed.KEY_HEX}).start()
    assert _topup(m, 1)["result"] == "credited"
    erases = []
    for order in (2, 3, 4):
        m.wait_for(lambda s: s["meter"]["store_level"], timeout=10)
        f0 = m.control({"cmd": "flash_stats"})
        assert _topup(m, order)["result"] == "credited"
        erases.append(m.control({"cmd": "flash_stats"})["erases"] - f0["erases"])
    # one snapshot copy; a directory's compaction, or a tick that falls in
    # between (its mirror, the outbox file), may add one now and then
    assert erases.count(1) >= 1 and max(erases) <= 3
    seq = m.control({"cmd": "meter_state"})["state"]["seq"]
    m.kill()                                       # power cut, no warning
    m.start()
    assert m.control({"cmd": "meter_state"})["state"]["seq"] == seq
    raw = signed.command("ft3", "query", what="events", since=0).decode()
    reply = m.control({"cmd": "command", "raw": raw})["reply"]
    assert (reply["data"]["first"], reply["data"]["last"]) == (1, seq), reply
    # and a re-sent top-up is still known: its order record came back too
    assert _topup(m, 3)["result"] == "duplicate"
