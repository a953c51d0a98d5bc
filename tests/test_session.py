"""The MQTT session (firmware/link/session.py) against a real mosquitto.

The meter side runs in the unix-port MicroPython (tools/linkrig.METER_SCRIPT);
the head-end side is paho-mqtt in this process.
"""
import itertools
import json
import os
import signal
import threading
import time

import paho.mqtt.client as paho
import pytest

from broker import Broker, _free_port
from linkrig import make_test_ca, meter, secure_conf
from mpy import run_mpy_json
from wait import wait_for

FAST = {"PINGRESP_TIMEOUT_MS": 1500, "CONNECT_TIMEOUT_MS": 2000, "BACKOFF_MIN_MS": 200,
        "BACKOFF_MAX_MS": 1000}


_ids = itertools.count()


class HeadEnd:
    """A paho client that records what it receives."""

    def __init__(self, port, user=None, password=None, tls_ca=None, topics=("meters/#",)):
        self.msgs = []
        self.cond = threading.Condition()
        # one id per client: two clients with one id would take turns on the broker
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2,
                             client_id="headend-%d-%d" % (os.getpid(), next(_ids)))
        if user:
            self.c.username_pw_set(user, password)
        if tls_ca:
            self.c.tls_set(ca_certs=tls_ca)
        self.c.on_message = self._on_message
        self.topics = topics
        self.c.on_connect = lambda c, u, f, rc, p: [c.subscribe(t, 1) for t in self.topics]
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on_message(self, c, u, m):
        with self.cond:
            self.msgs.append((m.topic, m.payload, m.retain))
            self.cond.notify_all()

    def wait(self, topic, payload, timeout=10):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.msgs:
                    if m[0] == topic and m[1] == payload:
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no %s %r; got %r" % (topic, payload, self.msgs[-10:]))
                self.cond.wait(left)

    def publish(self, topic, payload, qos=1, retain=False):
        self.c.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def retained(port, topic, **kw):
    """The retained message on `topic`, read by a fresh client (None if the
    broker sends none within 3 s)."""
    h = HeadEnd(port, topics=(topic,), **kw)
    try:
        with h.cond:
            return h.msgs[-1][1] if h.cond.wait_for(lambda: h.msgs, 3) else None
    finally:
        h.stop()


def retained_becomes(port, topic, payload, timeout, what):
    wait_for(lambda: retained(port, topic) == payload, timeout, what)


def test_meter_receives_commands_and_its_answers_reach_the_head_end(broker):
    head = HeadEnd(broker.port)
    m = meter(broker.port, session_attrs=FAST)
    try:
        up = m.wait("up")
        head.wait("meters/m1/status", b"online")
        head.publish("meters/m1/cmd", b'{"topup": 500}')
        msg = m.wait("msg")
        head.wait("meters/m1/ack", b'ack:{"topup": 500}')
    finally:
        m.stop()
        head.stop()
    assert msg["topic"] == "meters/m1/cmd" and msg["payload"] == '{"topup": 500}'
    assert up["stats"]["connects"] == 1 and up["stats"]["session_present"] == 0


def test_the_session_is_persistent_commands_sent_while_away_arrive_after_reconnect(broker):
    m = meter(broker.port, session_attrs=FAST)
    head = HeadEnd(broker.port)
    try:
        m.wait("up")
        # the subscription is made: a command goes round before the cut
        head.publish("meters/m1/cmd", b"before-the-cut")
        head.wait("meters/m1/ack", b"ack:before-the-cut")
    finally:
        m.stop()             # power cut: no DISCONNECT sent
    try:
        head.publish("meters/m1/cmd", b"sent-while-away")
        m = meter(broker.port, session_attrs=FAST)
        up = m.wait("up")
        msg = m.wait("msg")
        head.wait("meters/m1/ack", b"ack:sent-while-away")
    finally:
        m.stop()
        head.stop()
    assert up["stats"]["session_present"] == 1   # same client id = meter id
    assert msg["payload"] == "sent-while-away"


def test_a_silent_meter_is_declared_offline_by_its_retained_last_will(broker):
    m = meter(broker.port, keepalive=1, session_attrs=FAST)
    try:
        m.wait("up")
        retained_becomes(broker.port, "meters/m1/status", b"online", 5, "the online status")
        os.kill(m.proc.pid, signal.SIGSTOP)   # hung, socket still open: only keepalive can tell
        # the broker waits 1.5 x keepalive, then publishes the will
        retained_becomes(broker.port, "meters/m1/status", b"offline", 6, "the last will")
        os.kill(m.proc.pid, signal.SIGCONT)
        m.wait("up", timeout=15)               # it notices and comes back
        retained_becomes(broker.port, "meters/m1/status", b"online", 5, "online again")
    finally:
        m.stop()


def test_idle_session_keeps_alive_with_pings_and_measures_round_trip(broker):
    # 8 s of a 1 s keepalive: at least 3 pings even when the connect itself
    # took seconds on a loaded machine (CI saw one ping in a 3.2 s run)
    m = meter(broker.port, keepalive=1, run_ms=8000, session_attrs=FAST)
    try:
        done = m.wait("done", timeout=25)
    finally:
        m.stop()
    st = done["stats"]
    assert st["connects"] == 1 and st["drops"] == 0
    assert st["pings"] >= 3 and st["rtt_ms"] is not None and st["rtt_ms"] < 1000


def test_the_broker_going_away_is_noticed_and_the_session_comes_back_by_itself(broker):
    m = meter(broker.port, session_attrs=FAST)
    try:
        m.wait("up")
        broker.restart()
        down = m.wait("down", timeout=10)
        up = m.wait("up", timeout=15)
    finally:
        m.stop()
    assert down["stats"]["drops"] == 1
    assert up["stats"]["connects"] == 2
    assert up["held_ms"] < 250   # the program's own longest stall (linkrig.LOOP_PROBE)


@pytest.fixture
def secure_broker(tmp_path):
    ca = make_test_ca(str(tmp_path / "ca"))
    tls_port = _free_port()
    d = str(tmp_path / "broker")
    os.makedirs(d, exist_ok=True)
    conf = secure_conf(d, tls_port, {"m1": "pw-m1", "m2": "pw-m2"}, ca)
    b = Broker(d, extra_conf=conf).start()
    b.tls_port = tls_port
    b.ca = ca
    yield b
    b.stop()


def test_tls_with_the_right_ca_and_per_meter_credentials_connects(secure_broker):
    b = secure_broker
    m = meter(b.tls_port, ca=b.ca[1], user="m1", password="pw-m1", session_attrs=FAST)
    head = HeadEnd(b.tls_port, user="m2", password="pw-m2", tls_ca=b.ca[0], topics=("meters/m2/#",))
    own = HeadEnd(b.tls_port, user="m1", password="pw-m1", tls_ca=b.ca[0], topics=("meters/m1/ack",))
    try:
        up = m.wait("up", timeout=15)
        head.publish("meters/m1/cmd", b"not-yours")   # m2 may not write to m1's topics
        # a marker m1's own credentials may send, published after the broker
        # took (PUBACKed) the refused one: it reaches the meter after where
        # the refused one would have
        own.publish("meters/m1/cmd", b"marker")
        marker = m.wait("msg", payload="marker", timeout=10)
    finally:
        m.stop()
        head.stop()
        own.stop()
    assert up["stats"]["connects"] == 1
    assert [e["payload"] for e in m.events if e["ev"] == "msg"] == ["marker"] and marker


def test_tls_refuses_a_broker_certificate_from_another_ca(secure_broker):
    b = secure_broker
    m = meter(b.tls_port, ca=b.ca[4], user="m1", password="pw-m1", run_ms=2500, session_attrs=FAST)
    try:
        done = m.wait("done", timeout=15)
    finally:
        m.stop()
    assert not [e for e in m.events if e["ev"] == "up"]
    assert done["stats"]["connects"] == 0
    assert "VERIFY" in done["stats"]["last_error"].upper() or "CERT" in done["stats"]["last_error"].upper()


def test_a_wrong_password_is_refused_by_the_broker_and_retried_with_backoff(secure_broker):
    b = secure_broker
    m = meter(b.tls_port, ca=b.ca[1], user="m1", password="wrong", run_ms=2500, session_attrs=FAST)
    try:
        done = m.wait("done", timeout=15)
    finally:
        m.stop()
    st = done["stats"]
    assert st["connects"] == 0 and st["last_error"] == "MQTTException(5,)"
    assert st["backoff_ms"] >= FAST["BACKOFF_MIN_MS"] // 2


def test_plain_tcp_is_not_accepted_where_only_tls_listens(secure_broker):
    b = secure_broker
    m = meter(b.tls_port, user="m1", password="pw-m1", run_ms=2500, session_attrs=FAST)
    try:
        done = m.wait("done", timeout=15)
    finally:
        m.stop()
    assert done["stats"]["connects"] == 0 and done["stats"]["last_error"]


# --- pure parts, batched into one MicroPython process
UNIT_SCRIPT = r"""
import sys, json
from firmware.link.session import Session, KEEPALIVE_MAX_S
from firmware.link.mqttwire import packet_len
d = json.loads(sys.stdin.readline())
out = {"len": [], "backoff": []}
import gc
for header, size, cut in d["frames"]:
    gc.collect()
    b = bytes.fromhex(header) + bytes(min(size, 64))
    out["len"].append([packet_len(bytearray(b[:cut])), packet_len(bytearray(b))])
try:
    packet_len(bytearray(b"\x30\xff\xff\xff\xff\x01"))
except Exception as e:
    out["bad"] = repr(e)
s = Session("m1", "127.0.0.1", 1, keepalive_s=600)
out["keepalive_clamped"] = s.keepalive_s
Session.BACKOFF_MIN_MS = 1000
Session.BACKOFF_MAX_MS = 60000
for a in range(1, 12):
    out["backoff"].append([s.backoff_ms(a) for _ in range(40)])
print(json.dumps(out))
"""


def encode_len(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_packet_framing_backoff_and_keepalive_limits():
    import random
    rng = random.Random(7)
    frames = []
    for _ in range(200):
        size = rng.choice([0, 2, 50, 127, 128, 300, 4000, 5000, 16384])
        header = bytes([0x30]) + encode_len(size)
        frames.append([header.hex(), size, rng.randrange(len(header))])
    out = run_mpy_json(UNIT_SCRIPT, {"frames": frames})
    for (header, size, cut), got in zip(frames, out["len"]):
        # the whole packet's length and its fixed header's, once the header is in
        assert got == [[0, 0], [len(header) // 2 + size, len(header) // 2]]
    assert out["bad"] == "Drop('bad length',)"
    assert out["keepalive_clamped"] == 240
    for attempt, delays in enumerate(out["backoff"], 1):
        base = min(60000, 1000 << (attempt - 1))
        assert all(base // 2 <= d <= base for d in delays)
        assert len(set(delays)) > 5        # jittered, not lock-step


def test_a_1_mb_command_over_tls_is_read_through_and_acked_without_a_drop_while_metering_keeps_its_pace(secure_broker):
    """The session alone (the rig's 100 ms metering task beside it), TLS and
    per-meter credentials: a 1 MB QoS 1 PUBLISH, then a 64 KB one, on the
    meter's command topic. Each is read through, never held (the rig runs in
    the board's heap), PUBACKed, and the link stays up; the next command is
    answered."""
    b = secure_broker
    m = meter(b.tls_port, ca=b.ca[1], user="m1", password="pw-m1", session_attrs=FAST)
    head = HeadEnd(b.tls_port, user="m1", password="pw-m1", tls_ca=b.ca[0],
                   topics=("meters/m1/ack", "meters/m1/status"))
    try:
        m.wait("up", timeout=15)
        head.wait("meters/m1/status", b"online")   # published after the meter's SUBSCRIBE
        head.publish("meters/m1/cmd", b"B" * (1024 * 1024), qos=1)
        head.publish("meters/m1/cmd", b"C" * (64 * 1024), qos=1)
        head.publish("meters/m1/cmd", b"after")
        head.wait("meters/m1/ack", b"ack:after", timeout=30)
        while True:
            tick = m.wait("tick", timeout=10)
            if tick["stats"]["oversized"] == 2:
                break
    finally:
        m.stop()
        head.stop()
    st = tick["stats"]
    assert st["connects"] == 1 and st["drops"] == 0 and st["last_error"] is None
    assert st["bytes_in"] > 1024 * 1024 + 64 * 1024
    assert [e["payload"] for e in m.events if e["ev"] == "msg"] == ["after"]   # the big ones never reached the app
    print("longest metering gap over the session's life: %d ms" % tick["max_gap_ms"])


FRAMING_SCRIPT = r"""
import sys, json, gc
from firmware.link import session as S
d = json.loads(sys.stdin.readline())

class Sock:
    # the broker's bytes, `step` at a time (TCP may split them anywhere),
    # made as they are read: [bytes, times] segments, never all in the heap
    def __init__(self, segs, step):
        self.segs = [[bytes.fromhex(h), n] for h, n in segs]
        self.step = step
        self.i = self.k = self.pos = 0
    def readinto(self, buf):
        n = 0
        while n < min(len(buf), self.step) and self.i < len(self.segs):
            b, times = self.segs[self.i]
            buf[n] = b[self.k % len(b)]
            n += 1
            self.k += 1
            if self.k == len(b) * times:
                self.i += 1
                self.k = 0
        self.pos += n
        return n or None

total = sum(len(h) // 2 * n for h, n in d["segs"])
out = []
for step in d["steps"]:
    got = []
    s = S.Session("m1", "127.0.0.1", 1)
    s._on_message = lambda t, p: got.append(["msg", bytes(t).decode(), len(p), bytes(p[:8]).decode()])
    s._on_oversized = lambda t, h, n: got.append(["big", t and t.decode(), h.decode(), n])
    s._reset_io()
    s._sock = Sock(d["segs"], step)
    gc.collect()
    free = gc.mem_free()
    low = free
    passes = 0
    while s._sock.pos < total or s._have or s._big is not None:
        p = s._read_packet()
        if p is not None:
            s._dispatch(p)
        passes += 1
        if passes % 20 == 0:    # what is still held, garbage collected
            gc.collect()
            low = min(low, gc.mem_free())
    out.append({"got": got, "tx": bytes(s.pipe.tx).hex(), "passes": passes, "held": free - low,
                "oversized": s.stats()["oversized"]})
print(json.dumps(out))
"""


def publish_packet(topic, payload, qos, pid=0, retain=False):
    body = len(topic).to_bytes(2, "big") + topic + (pid.to_bytes(2, "big") if qos else b"") + payload
    return bytes([0x30 | qos << 1 | int(retain)]) + encode_len(len(body)) + body


def test_oversized_publishes_are_framed_through_whatever_the_split_keeping_only_their_head():
    big = b'{"ctr":77,"exp":5,"kind":"config","mac":"' + b"a" * 200000 + b'"}'
    data = (publish_packet(b"meters/m1/cmd", big, 1, pid=0x1234)
            + publish_packet(b"meters/m1/cmd", b'{"x":1}', 1, pid=9)
            + publish_packet(b"t" * 100, b"z" * 5000, 1, pid=0x0506)        # a topic too long to keep
            + publish_packet(b"meters/m1/cmd", b"q" * 2049, 0, retain=True)  # just over, QoS 0
            + publish_packet(b"meters/m1/cmd", b"last", 0))
    segs, run = [], bytearray()      # runs of one byte as [byte, times], the rest literally
    i = 0
    while i < len(data):
        j = i
        while j < len(data) and data[j] == data[i]:
            j += 1
        if j - i > 64:
            if run:
                segs.append([bytes(run).hex(), 1])
                run = bytearray()
            segs.append([data[i:i + 1].hex(), j - i])
        else:
            run += data[i:j]
        i = j
    if run:
        segs.append([bytes(run).hex(), 1])
    # the board's heap, scaled to this host's word size as the sim meters run
    outs = run_mpy_json(FRAMING_SCRIPT, {"segs": segs, "steps": [256, 7, 1]}, heap="108wk")
    for out in outs:
        assert out["got"] == [
            ["big", "meters/m1/cmd", big[:128].decode(), len(big)],
            ["msg", "meters/m1/cmd", 7, '{"x":1}'],
            ["big", None, "z" * 94, 5000],
            ["msg", "meters/m1/cmd", 2049, "q" * 8],   # within what is held: the dispatcher refuses it
            ["msg", "meters/m1/cmd", 4, "last"],
        ]
        # a PUBACK for each QoS 1 one, the dropped ones included, in order
        assert out["tx"] == "40021234" + "40020009" + "40020506"
        assert out["oversized"] == 2
        # never held: far less heap than the 200 KB payload went by (the
        # chunk, the head and a few packets' worth)
        assert out["held"] < 20000, out["held"]
        print("heap held while reading a 200 KB command through: %d bytes" % out["held"])
    # at most DISCARD_PER_PASS (4 KB) per pass: a 200 KB payload takes many passes
    assert outs[0]["passes"] >= len(big) // 4096
