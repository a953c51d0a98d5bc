"""The reference head-end against a MicroPython meter over a real mosquitto.
The meter here is a small loop of umqtt.simple + the firmware dispatcher and
outbox with a fake ledger; the integrated meter (firmware/app.py) replaces it
in the fault campaign and the latency bench."""
import os
import subprocess

import pytest

from broker import mosquitto_path
from headend.server import HeadEnd
from mpy import HEAP, MICROPYTHON, ROOT, mpy_path
from mqttc import Watcher
from wait import wait_for

pytestmark = pytest.mark.skipif(not mosquitto_path(), reason="needs mosquitto")
KEY_HEX = "11" * 32

METER = r"""
import time, json
from umqtt.simple import MQTTClient
from firmware.link import protocol as P
from firmware.link.commands import Dispatcher
from firmware.link.outbox import Outbox
from firmware.link.commlog import CommLog

MID = %(mid)r
KEY = bytes.fromhex(%(key)r)
signer = P.Signer(KEY)
ob = Outbox(%(outbox)r, MID)

class Ledger:
    def __init__(self):
        self.balance = 1000
    def topup(self, order, amount):
        self.balance += amount
        return ("credited", self.balance, ob.add("topup", {"order": order, "amount_minor": amount, "balance_minor": self.balance}, self.utc_now()))
    def tariff(self, v, at, t): return None
    def relay(self, a):
        ob.add("relay", {"closed": 1 if a == "connect" else 0, "reason": "remote"}, self.utc_now())
    def set_mode(self, m): return None
    def configure(self, s):
        if "warn1_minor" in s and self.balance < s["warn1_minor"]:
            ob.add("warning", {"level": 1, "balance_minor": self.balance}, self.utc_now())
    def set_time(self, t): return None
    def utc_now(self): return 1767225600
    def state(self): return {"balance_minor": self.balance, "seq": ob.next_seq - 1}
    def billing(self, since): return []
    def billing_monthly(self, since): return []
    def commit(self): pass

led = Ledger()
disp = Dispatcher(MID, KEY, led, commlog=CommLog(led.utc_now), outbox=ob)
c = MQTTClient(MID, "127.0.0.1", %(port)d, keepalive=30)
inbox = []
c.set_callback(lambda t, m: inbox.append(m))
c.connect(clean_session=False)
c.subscribe(b"meters/" + MID.encode() + b"/cmd", 1)   # returns at the SUBACK
# as a real meter does once subscribed: the test's cue that commands reach it
c.publish(b"meters/" + MID.encode() + b"/status", b"online", True, 1)
end = time.ticks_add(time.ticks_ms(), %(run_ms)d)
def publish_state():
    st = led.state(); st.update({"v": 1, "meter": MID, "t": led.utc_now(), "evt_dropped": ob.dropped})
    c.publish(b"meters/" + MID.encode() + b"/state", P.sign(signer, st), True, 1)
while time.ticks_diff(end, time.ticks_ms()) > 0:
    c.check_msg()
    while inbox:
        ack = disp.handle(inbox.pop(0))
        c.publish(b"meters/" + MID.encode() + b"/ack", ack, False, 1)
        publish_state()
    e = ob.peek()
    if e:
        c.publish(b"meters/" + MID.encode() + b"/evt", P.seal(signer, e[1]), False, 1)
        ob.mark_sent(e[0])
    else:
        time.sleep_ms(2)   # idle: this stand-in meter polls its socket
c.disconnect()
"""


def start_meter(tmp_path, port, mid="M1", run_ms=8000):
    script = METER % {"mid": mid, "key": KEY_HEX, "outbox": str(tmp_path / ("outbox-" + mid)),
                      "port": port, "run_ms": run_ms}
    env = dict(os.environ, MICROPYPATH=mpy_path())
    return subprocess.Popen([MICROPYTHON, "-X", "heapsize=" + HEAP, "-c", script], cwd=ROOT, env=env)


def subscribed(port, mid):
    """Wait for the stand-in meter's retained "online", sent once subscribed."""
    w = Watcher(port, topics=("meters/%s/status" % mid,))
    try:
        w.wait(lambda t, b: b == b"online")
    finally:
        w.close()


def test_topups_are_credited_once_and_the_server_reconciles_with_the_meter(broker, tmp_path):
    he = HeadEnd(str(tmp_path / "he.sqlite"), port=broker.port, reissue_after_s=3600)
    he.provision("M1", KEY_HEX)
    he.start(tick_s=0)
    meter = start_meter(tmp_path, broker.port)
    try:
        subscribed(broker.port, "M1")
        orders = [he.topup("M1", 100 * (i + 1)) for i in range(5)]
        done = [he.wait_order(o, 10) for o in orders]
        assert [o["state"] for o in done] == ["credited"] * 5
        assert done[-1]["balance_after_minor"] == 1000 + 100 * 15
        # reissue every order (as after a timeout): answered duplicate, nothing credited twice
        for o in orders:
            he.con.execute("UPDATE orders SET state='issued', result=NULL WHERE order_id=?", (o,))
            he.issue(o)
        again = [he.wait_order(o, 10) for o in orders]
        assert [o["result"] for o in again] == ["duplicate"] * 5
        assert [o["balance_after_minor"] for o in again] == [o["balance_after_minor"] for o in done]
        # a warning event becomes a notice quoting the meter's figure and time
        ctr = he.send("M1", "config", settings={"warn1_minor": 5000})
        assert he.wait_ack("M1", ctr)["result"] == "ok"
        n = wait_for(lambda: he.notices("M1"), 10, "the warning's notice")[0]
        assert (n["balance_minor"], n["meter_t"]) == (2500, 1767225600)
        assert "25.00" in n["text"] and "2026-01-01 00:00 UTC" in n["text"]
        # once the state published after the config command is in
        rec = wait_for(lambda: (lambda r: r if r["meter_seq"] == 6 else None)(he.reconcile("M1")), 10,
                       "the meter's state at seq 6")
        assert rec["ok"], rec
        assert rec["meter_seq"] == 6 and rec["server_balance_minor"] == rec["meter_balance_minor"] == 2500
        assert rec["orders"]["credited"] == 5
    finally:
        meter.kill()
        meter.wait()
        he.stop()


def test_an_unacknowledged_order_is_reissued_after_the_timeout(broker, tmp_path):
    he = HeadEnd(str(tmp_path / "he.sqlite"), port=broker.port, reissue_after_s=0.5)
    he.provision("M2", KEY_HEX)
    he.start(tick_s=0.1)
    try:
        oid = he.topup("M2", 700)          # no meter connected yet: the command waits
        wait_for(lambda: he.order(oid)["attempts"] >= 2, 10, "a reissue after the 0.5 s timeout")
        assert he.order(oid)["state"] == "issued"
        meter = start_meter(tmp_path, broker.port, "M2", run_ms=5000)
        try:
            o = he.wait_order(oid, 10)
            assert o["state"] == "credited" and o["balance_after_minor"] == 1700
        finally:
            meter.kill()
            meter.wait()
    finally:
        he.stop()
