"""The event outbox on a LittleFS image mounted in MicroPython (vfs.VfsLfs2
on a file-backed block device): bounded, persistent across processes, never
dropping credit or relay events, seqs only rising."""
import json

from headend import codec
from mpy import run_mpy

SETUP = r"""
import sys, json, vfs

class Dev:
    # A plain file-backed block device: 512-byte blocks, as LittleFS allows.
    def __init__(self, path, count):
        self.count = count
        try:
            self.f = open(path, "r+b")
        except OSError:
            self.f = open(path, "w+b")
            for _ in range(count):
                self.f.write(b"\xff" * 512)
            self.f.flush()
    def readblocks(self, n, buf, off=0):
        self.f.seek(n * 512 + off)
        self.f.readinto(buf)
    def writeblocks(self, n, buf, off=0):
        self.f.seek(n * 512 + off)
        self.f.write(buf)
        self.f.flush()
    def ioctl(self, op, arg):
        if op == 4: return self.count
        if op == 5: return 512
        if op == 6:
            self.f.seek(arg * 512)
            self.f.write(b"\xff" * 512)
            self.f.flush()
        return 0

dev = Dev(%(img)r, 256)
try:
    vfs.mount(vfs.VfsLfs2(dev), "/flash")
except OSError:
    vfs.VfsLfs2.mkfs(dev)
    vfs.mount(vfs.VfsLfs2(dev), "/flash")
from firmware.link.outbox import Outbox
from firmware.link import protocol as P
ob = Outbox("/flash/outbox", "MTR-0001", cap=%(cap)d, hard_cap=%(hard)d, seq_floor=%(floor)d)
def dump():
    return {"pending": ob.pending(), "len": len(ob), "next_seq": ob.next_seq, "dropped": ob.dropped,
            "dropped_total": ob.dropped_total, "corrupt": ob.corrupt,
            "entries": [[e[0], e[1], e[2], e[3].decode()] for e in ob.entries]}
"""


def run(img, body, cap=8, hard=12, floor=0):
    out = run_mpy(SETUP % {"img": str(img), "cap": cap, "hard": hard, "floor": floor} + body)
    return json.loads(out.strip().splitlines()[-1])


def test_events_persist_across_processes_with_rising_seqs(tmp_path):
    img = tmp_path / "lfs.img"
    a = run(img, 'seqs = [ob.add("telemetry", {"energy_wh": i}, 100 + i) for i in range(3)]\n'
                 'seqs.append(ob.add("topup", {"order": 4, "amount_minor": 500, "balance_minor": 900}, 200))\n'
                 'print(json.dumps(seqs))')
    assert a == [1, 2, 3, 4]
    b = run(img, 'print(json.dumps(dump()))')
    assert b["pending"] == 4 and b["next_seq"] == 5
    assert json.loads(b["entries"][3][3]) == {"v": 1, "meter": "MTR-0001", "seq": 4, "kind": "topup", "t": 200,
                                              "order": 4, "amount_minor": 500, "balance_minor": 900}
    c = run(img, 'print(json.dumps(ob.add("warning", {"level": 1, "balance_minor": 90}, 300)))')
    assert c == 5


def test_a_full_outbox_drops_telemetry_first_and_never_credit_or_relay(tmp_path):
    img = tmp_path / "lfs.img"
    out = run(img, r"""
kinds = ["telemetry", "topup", "telemetry", "warning", "relay", "telemetry", "telemetry", "fault"] * 3
got = [ob.add(k, {"n": i}, i) for i, k in enumerate(kinds)]
print(json.dumps({"got": got, "state": dump()}))
""")
    st = out["state"]
    assert st["len"] <= 8
    kept = {json.loads(e[3])["seq"]: json.loads(e[3])["kind"] for e in st["entries"]}
    made = {s: k for s, k in zip(out["got"], ["telemetry", "topup", "telemetry", "warning", "relay",
                                                   "telemetry", "telemetry", "fault"] * 3) if s}
    for seq, kind in made.items():
        if kind in ("topup", "relay"):
            assert kept.get(seq) == kind, "a %s event was dropped" % kind
    dropped_kinds = {made[s] for s in made if s not in kept}
    assert "telemetry" in dropped_kinds and not dropped_kinds & {"topup", "relay"}
    assert st["dropped_total"] == len([s for s in made if s not in kept])
    assert set(st["dropped"]) == {s for s in made if s not in kept}


def test_critical_events_fill_to_the_hard_cap_then_are_refused(tmp_path):
    out = run(tmp_path / "lfs.img", r"""
got = [ob.add("topup", {"order": i}, i) for i in range(15)]
print(json.dumps({"got": got, "state": dump()}))
""")
    assert out["got"][:12] == list(range(1, 13)) and out["got"][12:] == [None, None, None]
    assert out["state"]["dropped_total"] == 0 and out["state"]["next_seq"] == 13


def test_sent_events_make_room_first_and_can_be_replayed(tmp_path):
    img = tmp_path / "lfs.img"
    out = run(img, r"""
for i in range(6):
    ob.add("topup", {"order": i}, i)
while ob.peek():
    ob.mark_sent(ob.peek()[0])
ob.flush()
r = ob.rewind(3)
ob.flush()
print(json.dumps({"rewind": r, "pending": ob.pending(), "peek": ob.peek()[0]}))
""")
    assert out == {"rewind": [4, 6], "pending": 3, "peek": 4}
    out = run(img, r"""
for i in range(8):
    ob.add("warning", {"level": 1}, i)
print(json.dumps(dump()))
""")
    kinds = [json.loads(e[3])["kind"] for e in out["entries"]]
    assert out["len"] == 8 and kinds.count("topup") == 3   # the 3 still-unsent top-ups survive


def test_delivered_credit_events_are_the_last_history_to_make_room(tmp_path):
    # a head-end that missed a top-up event asks for it back ("query events
    # since"); delivered telemetry and warnings give way before it does
    out = run(tmp_path / "lfs.img", r"""
ob.add("topup", {"order": 1}, 1)
ob.add("telemetry", {"w": 5}, 2)
ob.add("relay", {"action": "disconnect"}, 3)
ob.add("warning", {"level": 1}, 4)
for i in range(4):
    ob.add("telemetry", {"w": i}, 5 + i)
while ob.peek():
    ob.mark_sent(ob.peek()[0])
for i in range(5):
    ob.add("tariff", {"version": i + 1}, 10 + i)
print(json.dumps(dump()))
""")
    held = sorted((json.loads(e[3])["kind"], e[2]) for e in out["entries"] if e[1])
    assert held == [("relay", 3), ("topup", 1), ("warning", 4)]
    assert out["dropped_total"] == 0   # evicting delivered history drops nothing


def test_a_cut_before_sent_marks_are_saved_resends_rather_than_loses(tmp_path):
    img = tmp_path / "lfs.img"
    run(img, 'ob.add("topup", {"order": 1}, 1)\nob.add("relay", {"action": "disconnect"}, 2)\n'
             'ob.mark_sent(1)\nprint(1)')   # no flush(): the process ends like a power cut
    out = run(img, 'print(json.dumps([ob.peek()[0], ob.pending()]))')
    assert out == [1, 2]


def test_published_events_are_signed_and_verify_on_the_head_end(tmp_path):
    out = run(tmp_path / "lfs.img", r"""
ob.add("topup", {"order": 9, "amount_minor": 5, "balance_minor": 77}, 1767225600)
seq, body = ob.peek()
print(json.dumps(P.seal(P.Signer(bytes(range(32))), body).decode()))
""")
    ev = codec.verify(bytes(range(32)), out.encode())
    assert ev["seq"] == 1 and ev["balance_minor"] == 77 and ev["kind"] == "topup"


def test_a_corrupted_outbox_is_detected_and_seqs_still_rise_from_the_floor(tmp_path):
    img = tmp_path / "lfs.img"
    run(img, 'ob.add("topup", {"order": 1}, 1)\nprint(1)')
    run(img, r"""
with open("/flash/outbox", "rb") as f:
    data = bytearray(f.read())
data[20] ^= 0x01
with open("/flash/outbox", "wb") as f:
    f.write(data)
print(1)
""")
    out = run(img, 'print(json.dumps([ob.corrupt, ob.add("warning", {"level": 2}, 5)]))', floor=41)
    assert out == [True, 42]


def test_can_add_says_in_advance_whether_a_credit_event_would_be_kept(tmp_path):
    # the meter refuses a top-up ("busy") before crediting it when the outbox
    # is full of undelivered credit events, instead of crediting with no event
    out = run(tmp_path / "lfs.img", r"""
from firmware.link.outbox import CRITICAL, TELEMETRY
seen = []
for i in range(13):
    seen.append([ob.can_add(CRITICAL), ob.can_add(TELEMETRY), ob.add("topup", {"order": i}, i)])
ob.mark_sent(1)
print(json.dumps({"seen": seen, "after_sent": ob.can_add(CRITICAL)}))
""", cap=8, hard=12)
    seen = out["seen"]
    # room until the hard cap: predicted and kept alike
    assert all(s[0] is True and s[2] is not None for s in seen[:12])
    assert seen[12] == [False, False, None]            # full: predicted refused, and refused
    assert [s[1] for s in seen[:8]] == [True] * 8 and not any(s[1] for s in seen[8:])
    assert out["after_sent"] is True                   # a delivered event makes room


def test_events_added_unsaved_come_back_from_the_snapshot_tail_after_a_cut(tmp_path):
    img = tmp_path / "ob.img"
    # two events saved, two added unsaved (the meter's way): the file holds
    # the first two; the tail (what the meter's snapshot carries) the others
    out = run(img, r"""
ob.add("topup", {"n": 1}, 100)
ob.add("topup", {"n": 2}, 101)
ob.add("topup", {"n": 3}, 102, False)
ob.add("relay", {"n": 4}, 103, False)
print(json.dumps({"tail": ob.tail(), "saved": ob.saved_seq}))
""")
    assert out["saved"] == 2 and [r[1] for r in out["tail"]] == [3, 4]
    tail = out["tail"]
    # power back: the file alone lacks 3 and 4; merging the tail restores
    # them, exactly (same bytes), unsent; a tail row the file holds is skipped
    back = run(img, r"""
before = len(ob)
ob.merge(%s)
d = dump(); d["before"] = before
print(json.dumps(d))
""" % json.dumps([[2, 2, "dup"]] + tail))
    assert back["before"] == 2
    assert [e[2] for e in back["entries"]] == [1, 2, 3, 4]
    assert [e[3] for e in back["entries"][2:]] == [r[2] for r in tail]
    assert back["next_seq"] == 5 and back["pending"] == 4
    # a save takes them into the file: the tail is empty
    again = run(img, r"""
ob.merge(%s)
ob.save()
print(json.dumps({"tail": ob.tail(), "saved": ob.saved_seq}))
""" % json.dumps(tail))
    assert again == {"tail": [], "saved": 4}


def test_dropping_an_unsent_event_writes_the_file_at_once(tmp_path):
    # cap 2, hard cap 2: a third telemetry event drops the oldest unsent one;
    # the drop is recorded on flash even though the adds asked not to save
    img = tmp_path / "ob.img"
    run(img, r"""
ob.add("telemetry", {"n": 1}, 100, False)
ob.add("telemetry", {"n": 2}, 101, False)
ob.add("warning", {"n": 3}, 102, False)
print(json.dumps(dump()))
""", cap=2, hard=2)
    back = run(img, "print(json.dumps(dump()))", cap=2, hard=2)
    assert back["dropped"] == [1] and back["dropped_total"] == 1
    assert [e[2] for e in back["entries"]] == [2, 3]
