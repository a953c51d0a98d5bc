"""QoS 1 delivery of the outbox's events (firmware/link/delivery.py), in
MicroPython against a session stand-in that records what it was handed and
acknowledges on the test's word: an event is marked sent only on its PUBACK,
what had none goes again after a drop, nothing leaves before it is durable,
and at most WINDOW wait for their PUBACK."""
import json

from mpy import run_mpy

SCRIPT = r"""
import json, os
from firmware.link.outbox import Outbox
from firmware.link.delivery import EventDelivery, WINDOW
from firmware.link import protocol as P

class Sess:
    # what EventDelivery needs of Session: up, drops, publish -> pid, acked(pid)
    def __init__(self):
        self.up = True
        self.drops = 0
        self.pid = 0
        self.unacked = set()
        self.sent = []          # (seq or kind, pid) in the order handed out
    def publish(self, topic, payload, retain, qos):
        if not self.up:
            return False
        self.pid += 1
        self.unacked.add(self.pid)
        body = json.loads(payload)
        self.sent.append(body.get("seq", body.get("kind")))
        return self.pid
    def acked(self, pid):
        return pid not in self.unacked

class Clock:
    def utc_s(self):
        return 1767225600

path = "%(path)s"
for p in (path, path + ".new"):
    try:
        os.remove(p)
    except OSError:
        pass
ob = Outbox(path, "D1")
for i in range(12):
    ob.add("telemetry" if i %% 2 else "topup", {"n": i}, 1767225600 + i)
s = Sess()
d = EventDelivery(s, ob, b"meters/D1/evt", P.Signer(b"k" * 32), "D1", Clock())
out = {"window": WINDOW}
d.pump(3, [])                                     # only seqs 1..3 are durable
out["durable_only"] = list(s.sent)
out["pending_before_ack"] = ob.pending()          # handed out, not acknowledged: unsent
d.pump(12, [])
out["window_full"] = list(s.sent)
s.unacked.discard(1); s.unacked.discard(2)        # PUBACKs for seqs 1 and 2
d.pump(12, [])
out["after_two_acks"] = [ob.pending(), list(s.sent)]
s.drops += 1                                      # the connection dropped
s.unacked.clear()                                 # (a new connection: no old pid is in flight)
s.sent = []
d.pump(12, [{"kind": "fault", "code": "x"}])
out["after_drop"] = list(s.sent)
for _ in range(3):                                # the broker acknowledges all, 11 and 12 too
    s.unacked.clear()
    d.pump(12, [])
out["all_acked_pending"] = ob.pending()
out["waiting"] = d.waiting()
ob.flush()                                        # what the flash holds after a flush
ob2 = Outbox(path, "D1")
out["saved_pending"] = ob2.pending()
print(json.dumps(out))
"""


def test_events_are_marked_sent_on_their_puback_and_resent_after_a_drop(tmp_path):
    out = json.loads(run_mpy(SCRIPT % {"path": str(tmp_path / "outbox")}).splitlines()[-1])
    assert out["durable_only"] == [1, 2, 3]             # seq 4.. is not durable yet
    assert out["pending_before_ack"] == 12              # handed to the socket is not delivered
    assert out["window_full"] == [1, 2, 3, 4, 5, 6, 7, 8]   # WINDOW awaiting PUBACK at most
    assert out["window"] == 8
    # two PUBACKs: two events delivered, two more may go
    assert out["after_two_acks"] == [10, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]
    # after the drop, every event without PUBACK goes again, oldest first,
    # and the live fault event goes once; delivered ones do not go again
    assert out["after_drop"] == ["fault", 3, 4, 5, 6, 7, 8, 9, 10]
    assert out["all_acked_pending"] == 0 and out["waiting"] is False
    assert out["saved_pending"] == 0                    # the sent marks reach the flash
