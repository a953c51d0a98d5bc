"""Durable state (issue 5): the store on a real LittleFS (vfs.VfsLfs2) over the
sim's file-backed NOR flash, run in the unix-port MicroPython at 108 KB heap."""
import json

import pytest

from mpy import run_mpy_json

PRELUDE = r'''
import json, os, sys, vfs
from firmware.boards import flashdev
from firmware.store.store import Store, StoreFault, FAULT_LCD
from firmware.store import record
P = json.loads(sys.stdin.readline())
IMG = P["img"]
def fresh():
    try:
        os.remove(IMG)
    except OSError:
        pass
def mount():
    return flashdev.mount(IMG, "/flash")
def unmount(dev):
    try:
        vfs.umount("/flash")
    except OSError:
        pass
    dev.close()
def reboot(dev):
    unmount(dev)
    dev = mount()
    st = Store("/flash")
    s, status = st.load()
    return dev, st, s, status
def image_find(needle):
    # byte offset of `needle` in the raw flash image, or -1
    with open(IMG, "rb") as f:
        data = f.read()
    return data.find(needle)
def image_patch(off, data):
    with open(IMG, "r+b") as f:
        f.seek(off)
        f.write(data)
out = {}
'''


def run(body, tmp_path, heap="108k", **kw):
    return run_mpy_json(PRELUDE + body + "\nprint(json.dumps(out))\n",
                        {"img": str(tmp_path / "flash.img"), **kw}, heap=heap)


def test_empty_flash_is_factory_and_a_committed_state_round_trips(tmp_path):
    out = run(r'''
fresh()
dev = mount()
st = Store("/flash")
out["first"] = st.load()[1]
state = {"bal_minor": -12345678901, "wh": 0, "rem": 3599, "ids": ["a", "b"],
         "cfg": {"name": "Zoë", "cal": [1, 2, 3]}, "empty": {}}
st.commit(state)
dev, st, s, status = reboot(dev)
out["status"] = status
out["same"] = s == state
st.checkpoint({"wh": 7, "rem": 1})
dev, st, s, status = reboot(dev)
out["after_cp"] = [s["wh"], s["rem"], s["bal_minor"], status]
state["wh"] = 9
st.commit(state)
dev, st, s, status = reboot(dev)
out["after_commit"] = [s["wh"], s["rem"], status]
''', tmp_path)
    assert out["first"] == "factory"
    assert out["status"] == "ok" and out["same"]
    assert out["after_cp"] == [7, 1, -12345678901, "ok"]
    # a later snapshot supersedes the checkpoint taken before it
    assert out["after_commit"] == [9, 3599, "ok"]


def test_writes_are_refused_before_load_and_oversized_hot_patches_rejected(tmp_path):
    out = run(r'''
fresh()
dev = mount()
st = Store("/flash")
try:
    st.commit({})
    out["commit_before_load"] = "accepted"
except StoreFault:
    out["commit_before_load"] = "refused"
st.load()
try:
    st.checkpoint({"wh": 1})
    out["cp_before_factory_commit"] = "accepted"
except StoreFault:
    out["cp_before_factory_commit"] = "refused"
st.commit({"wh": 0})
try:
    st.checkpoint({"x": "y" * 120})
    out["big"] = "accepted"
except ValueError:
    out["big"] = "rejected"
''', tmp_path)
    assert out == {"commit_before_load": "refused", "cp_before_factory_commit": "refused", "big": "rejected"}


def test_record_decode_and_its_streamed_check_reject_every_bit_flip_and_every_truncation(tmp_path):
    out = run(r'''
buf = record.encode(record.KIND_SNAP, 42, 0, b'{"bal":123456}')
ok = record.decode(buf, record.KIND_SNAP)
flips = 0
for i in range(len(buf)):
    for b in range(8):
        m = bytearray(buf)
        m[i] ^= 1 << b
        flips += record.decode(bytes(m), record.KIND_SNAP) is None
cuts = sum(record.decode(buf[:n], record.KIND_SNAP) is None for n in range(len(buf)))
# check(), the streamed form mirror() uses, through a buffer smaller than the record
import io
chunk = bytearray(16)
def check(b):
    return record.check(io.BytesIO(b), record.KIND_SNAP, chunk)
s_flips = 0
for i in range(len(buf)):
    for b in range(8):
        m = bytearray(buf)
        m[i] ^= 1 << b
        s_flips += check(bytes(m)) is None
streamed = {"ok": check(buf), "flips": s_flips,
            "cuts": sum(check(buf[:n]) is None for n in range(len(buf))),
            "padded": check(buf + b"\x00") is None, "wrong_kind": record.check(io.BytesIO(buf), record.KIND_HOT, chunk) is None}
out = {"ok": [ok[0], ok[1], ok[2].decode()], "flips": flips, "bits": len(buf) * 8,
       "cuts": cuts, "n": len(buf),
       "zero": record.decode(bytes(len(buf)), record.KIND_SNAP) is None,
       "erased": record.decode(b"\xff" * len(buf), record.KIND_SNAP) is None,
       "wrong_kind": record.decode(buf, record.KIND_HOT) is None, "streamed": streamed}
''', tmp_path)
    assert out["ok"] == [42, 0, '{"bal":123456}']
    assert out["flips"] == out["bits"]
    assert out["cuts"] == out["n"]
    assert out["zero"] and out["erased"] and out["wrong_kind"]
    assert out["streamed"] == {"ok": 42, "flips": out["bits"], "cuts": out["n"], "padded": True,
                               "wrong_kind": True}


FILE_CASES = r'''
def setup():
    fresh()
    dev = mount()
    st = Store("/flash")
    st.load()
    st.commit({"bal": 5000, "wh": 100, "rem": 0, "ids": ["t1"]})
    st.checkpoint({"bal": 4990, "wh": 101, "rem": 5})
    st.checkpoint({"bal": 4980, "wh": 102, "rem": 9})
    return dev
D = "/flash/store/"
def flip(name):
    with open(D + name, "rb") as f:
        b = bytearray(f.read())
    b[len(b) // 2] ^= 0x10
    with open(D + name, "wb") as f:
        f.write(b)
def truncate(name):
    with open(D + name, "rb") as f:
        b = f.read()
    with open(D + name, "wb") as f:
        f.write(b[:len(b) - 7])
def delete(name):
    os.remove(D + name)
def case(label, *damage):
    dev = setup()
    for fn, name in damage:
        fn(name)
    dev, st, s, status = reboot(dev)
    row = [status, s and [s["bal"], s["wh"], s["rem"]], st.lcd_code()]
    # a recovered store keeps working and heals on the next writes
    if not status.startswith("fault"):
        st.checkpoint({"bal": 4970, "wh": 103, "rem": 0})
        st.commit({"bal": 4970, "wh": 103, "rem": 0, "ids": ["t1"]})
        dev, st, s2, status2 = reboot(dev)
        row.append(status2)
    else:
        try:
            st.commit({"bal": 0})
            row.append("write accepted in fault")
        except StoreFault:
            st.restore({"bal": 4980, "wh": 102, "rem": 9, "ids": ["t1"]})
            dev, st, s2, status2 = reboot(dev)
            row.append([status2, s2["bal"]])
    unmount(dev)
    out[label] = row
case("flip_snap_a", (flip, "a/snap"))
case("truncate_snap_b", (truncate, "b/snap"))
case("delete_snap_a", (delete, "a/snap"))
case("flip_newest_hot", (flip, "hb/hot"))
case("delete_older_hot", (delete, "ha/hot"))
case("both_snaps_deleted", (delete, "a/snap"), (delete, "b/snap"))
case("both_snaps_damaged", (flip, "a/snap"), (truncate, "b/snap"))
case("both_hots_damaged", (flip, "ha/hot"), (delete, "hb/hot"))
'''


def test_damaged_or_missing_files_are_recovered_from_the_other_copy_or_faulted(tmp_path):
    out = run(FILE_CASES, tmp_path)
    latest = [4980, 102, 9]
    # one snapshot copy damaged: the mirror holds the same state
    for label in ("flip_snap_a", "truncate_snap_b", "delete_snap_a"):
        assert out[label] == ["recovered", latest, 0, "ok"], label
    # the newest checkpoint damaged: the previous one, one checkpoint behind
    assert out["flip_newest_hot"] == ["recovered", [4990, 101, 5], 0, "ok"]
    assert out["delete_older_hot"] == ["recovered", latest, 0, "ok"]
    # no trustworthy copy: a fault with an LCD code, never a reset balance;
    # writes are refused until restore()
    assert out["both_snaps_deleted"][:3] == ["fault:snap_missing", None, 52]
    assert out["both_snaps_damaged"][:3] == ["fault:snap_crc", None, 53]
    # the snapshot survives but energy since it is unknown: fault, evidence kept
    assert out["both_hots_damaged"][:3] == ["fault:hot_lost", [5000, 100, 0], 55]
    for label in ("both_snaps_deleted", "both_snaps_damaged", "both_hots_damaged"):
        assert out[label][3] == ["ok", 4980], label


def test_a_factory_commit_cut_short_is_still_factory_not_corruption(tmp_path):
    out = run(r'''
fresh()
dev = mount()
st = Store("/flash")
st.load()
dev.arm_cut(6)
try:
    st.commit({"bal": 1})
except OSError:
    pass
out["dead"] = dev.dead
dev, st, s, status = reboot(dev)
out["status"] = status
st.commit({"bal": 2})
dev, st, s, status = reboot(dev)
out["then"] = [status, s["bal"]]
''', tmp_path)
    assert out == {"dead": True, "status": "factory", "then": ["ok", 2]}


RAW_CASES = r'''
fresh()
dev = mount()
st = Store("/flash")
st.load()
st.commit({"bal": 777000, "wh": 5, "rem": 0, "mark": "SNAPMARK"})
st.checkpoint({"bal": 776000, "wh": 6, "rem": 1})
unmount(dev)
with open(IMG, "rb") as f:
    pristine = f.read()
def restore_image():
    with open(IMG, "wb") as f:
        f.write(pristine)
def load_now():
    dev = mount()
    if dev.mount_error:
        r = ["fault:fs", None]
    else:
        s, status = Store("/flash").load()
        r = [status, s and [s["bal"], s["wh"], s["rem"]]]
    unmount(dev)
    return r
# a flipped bit inside the first snapshot copy's data block
off = pristine.find(b"SNAPMARK")
image_patch(off, b"SNAPMARK"[:3] + bytes([pristine[off + 3] ^ 4]))
out["flip_raw"] = load_now()
restore_image()
# zero every block of the image in turn (every flash sector the fs uses)
results = {}
for b in range(dev.block_count):
    blk = pristine[b * 4096:(b + 1) * 4096]
    if blk.count(b"\xff") == 4096:
        continue
    image_patch(b * 4096, bytes(4096))
    r = load_now()
    key = json.dumps(r)
    results[key] = results.get(key, 0) + 1
    restore_image()
out["zeroed"] = results
# the superblock pair destroyed: never reformatted into a factory flash
image_patch(0, bytes(8192))
out["no_fs"] = load_now()
'''


def test_raw_flash_damage_is_detected_never_yields_a_wrong_value(tmp_path):
    # the test keeps a copy of the 1 MB image in RAM: a host-sized heap
    out = run(RAW_CASES, tmp_path, heap="8m")
    good = [776000, 6, 1]
    assert out["flip_raw"] == ["recovered", good]
    outcomes = {}
    import json as _json
    for key, n in out["zeroed"].items():
        status, value = _json.loads(key)
        # each zeroed sector: the right state (perhaps via the mirror), or a
        # fault; never another balance and never "factory"
        assert status in ("ok", "recovered") and value == good or status.startswith("fault"), key
        outcomes[status] = outcomes.get(status, 0) + n
    assert "factory" not in outcomes
    assert outcomes.get("ok", 0) + outcomes.get("recovered", 0) >= 1
    assert out["no_fs"] == ["fault:fs", None]


def test_store_lives_within_the_esp32_heap(tmp_path):
    out = run(r'''
import gc
fresh()
dev = mount()
st = Store("/flash")
st.load()
state = {"bal": 1, "wh": 2, "ids": ["t%d" % i for i in range(64)],
         "out": [[i, "topup:t%d:1000000" % i] for i in range(40)]}
st.commit(state)
gc.collect()
free0 = gc.mem_free()
for i in range(50):
    st.checkpoint({"wh": i, "rem": 0, "chg": i * 150000, "bal": 1 - i * 150000})
st.commit(state)
gc.collect()
leak = free0 - gc.mem_free()
dev, st, s, status = reboot(dev)
out = {"status": status, "leak": leak}
''', tmp_path)
    assert out["status"] == "ok"
    assert out["leak"] < 2048


SEQS = r'''
D = "/flash/store/"
def loaded():
    # a fresh flash, mounted, its store loaded (factory)
    fresh()
    dev = mount()
    st = Store("/flash")
    st.load()
    return dev, st
def seqs():
    # the seq each snapshot copy holds (None: fails its check)
    r = []
    for n in ("a/snap", "b/snap"):
        try:
            with open(D + n, "rb") as f:
                rec = record.decode(f.read(), record.KIND_SNAP)
        except OSError:
            rec = None
        r.append(rec and rec[0])
    return r
def raw(n):
    with open(D + n, "rb") as f:
        return f.read()
def flip(name):
    b = bytearray(raw(name))
    b[len(b) // 2] ^= 0x10
    with open(D + name, "wb") as f:
        f.write(b)
'''


def test_a_commit_writes_one_copy_and_mirror_makes_the_other_a_byte_for_byte_copy(tmp_path):
    out = run(SEQS + r'''
dev, st = loaded()
st.commit({"bal": 1, "pad": "x" * 700})          # the first build writes both copies
out["factory"] = [seqs(), st.behind]
w0 = dev.writes
st.commit({"bal": 2, "pad": "x" * 700})
out["commit"] = [seqs(), st.behind]
out["mirror"] = st.mirror()
out["after"] = [seqs(), st.behind, raw("a/snap") == raw("b/snap")]
out["idle"] = [st.mirror(), dev.writes > w0]
dev, st, s, status = reboot(dev)
out["boot"] = [status, s["bal"], st.behind]
''', tmp_path)
    assert out["factory"] == [[1, 1], False]
    # one copy holds the commit, the other is exactly one behind
    assert sorted(out["commit"][0]) == [1, 2] and out["commit"][1] is True
    assert out["mirror"] is True and out["after"] == [[2, 2], False, True]
    assert out["idle"][0] is True
    assert out["boot"] == ["ok", 2, False]


def test_two_commits_before_a_mirror_write_the_older_copy_so_the_copies_stay_one_apart(tmp_path):
    out = run(SEQS + r'''
dev, st = loaded()
st.commit({"bal": 1})
for bal in (2, 3, 4):
    st.commit({"bal": bal})
    out.setdefault("seqs", []).append(seqs())
# a cut now (no mirror): the newest is taken, the other was a commit behind
dev, st, s, status = reboot(dev)
out["cut"] = [status, s["bal"], seqs()]
st.commit({"bal": 5})
st.commit({"bal": 6})
n = [i for i, q in enumerate(seqs()) if q == st.snap_seq][0]
flip(("a/snap", "b/snap")[n])
dev, st, s, status = reboot(dev)
out["damaged"] = [status, s["bal"]]
''', tmp_path)
    assert out["seqs"] == [[1, 2], [3, 2], [3, 4]]      # each commit takes the older copy
    assert out["cut"] == ["ok", 4, [4, 4]]               # and load() brought the other level
    # the window: the newest copy damaged while the other is behind is the
    # commit before, said as recovered (never "ok", never a mix)
    assert out["damaged"] == ["recovered", 5]


def test_a_cut_at_every_write_of_the_mirror_copy_leaves_the_newest_state_as_ok(tmp_path):
    # the script keeps the 1 MB image in RAM: a host-sized heap
    out = run(SEQS + r'''
dev, st = loaded()
st.commit({"bal": 1, "pad": "y" * 3000})
st.commit({"bal": 2, "pad": "z" * 3000})
unmount(dev)
with open(IMG, "rb") as f:
    pristine = f.read()
def attempt(cut, torn):
    with open(IMG, "wb") as f:
        f.write(pristine)
    dev = mount()
    st = Store("/flash")
    st.load()
    # load() repairs at boot; set the second copy back a commit to mirror it
    st.commit({"bal": 3, "pad": "w" * 3000})
    dev.arm_cut(cut, torn)
    w0 = dev.writes
    try:
        st.mirror()
    except OSError:
        if not dev.dead:
            raise
    writes = dev.writes - w0
    dev, st, s, status = reboot(dev)
    r = [status, s["bal"], seqs()]
    unmount(dev)
    return writes, r
total = attempt(0, 0)[0]
results = {}
for n in range(1, total + 1):
    for torn in (0, 1, 100, 4000):
        key = json.dumps(attempt(n, torn)[1])
        results[key] = results.get(key, 0) + 1
out = {"writes": total, "results": results}
''', tmp_path, heap="8m")
    assert out["writes"] >= 2          # the copy really takes block writes
    assert out["results"] == {json.dumps(["ok", 3, [3, 3]]): out["writes"] * 4}, out


def test_the_newest_copy_damaged_while_the_other_is_behind(tmp_path):
    out = run(SEQS + r'''
def setup():
    fresh()
    dev = mount()
    st = Store("/flash")
    st.load()
    st.commit({"bal": 1, "wh": 0})
    st.commit({"bal": 2, "wh": 0})
    newest = ("a/snap", "b/snap")[seqs().index(2)]
    return dev, st, newest
# cut before the mirror, then the newest copy damaged: the commit before
dev, st, newest = setup()
flip(newest)
dev, st, s, status = reboot(dev)
out["at_boot"] = [status, s["bal"]]
unmount(dev)
# the same with a hot checkpoint on the lost commit: it cannot be placed
dev, st, newest = setup()
st.checkpoint({"wh": 5})
flip(newest)
dev, st, s, status = reboot(dev)
out["with_hot"] = [status, st.lcd_code()]
unmount(dev)
# damage found by mirror() while running: nothing copied over the good
# older copy; the state is committed again from RAM and mirrored
dev, st, newest = setup()
flip(newest)
out["mirror"] = st.mirror()
out["kept"] = sorted(q for q in seqs() if q)
st.commit({"bal": 2, "wh": 0})
out["again"] = st.mirror()
dev, st, s, status = reboot(dev)
out["healed"] = [status, s["bal"], seqs()]
''', tmp_path)
    assert out["at_boot"] == ["recovered", 1]
    assert out["with_hot"] == ["fault:snap_lost", 54]
    assert out["mirror"] is False and out["kept"] == [1]
    assert out["again"] is True and out["healed"] == ["ok", 2, [3, 3]]


def test_a_memory_error_in_the_mirror_leaves_both_copies_as_they_were(tmp_path):
    out = run(SEQS + r'''
import micropython
dev, st = loaded()
st.commit({"bal": 1})
st.commit({"bal": 2})
before = seqs()
def locked(fn):
    # the heap locked, as full: any allocation raises MemoryError
    micropython.heap_lock()
    try:
        fn()
        return None
    except MemoryError:
        return "MemoryError"
    finally:
        micropython.heap_unlock()
out["raised"] = locked(st.mirror)
out["same"] = [seqs() == before, st.behind]
dev, st, s, status = reboot(dev)
out["boot"] = [status, s["bal"]]
''', tmp_path)
    assert out == {"raised": "MemoryError", "same": [True, True], "boot": ["ok", 2]}
