"""Mosquitto ACLs from tools/headend/acl.py, against a real mosquitto: a meter
touches only its own topics; the head-end reads all through a shared group."""
import getpass
import socket
import subprocess
import threading

import paho.mqtt.client as mqtt
import pytest

from broker import mosquitto_path
from headend import acl
from wait import wait_for

pytestmark = pytest.mark.skipif(not mosquitto_path(), reason="needs mosquitto")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def secured_broker(tmp_path):
    port = free_port()
    conf = acl.write_config(str(tmp_path), [("MA", "pw-a"), ("MB", "pw-b")], "pw-he", port=port,
                            run_as=getpass.getuser())
    log = open(tmp_path / "mosquitto.log", "w")
    p = subprocess.Popen([mosquitto_path(), "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    wait_for(lambda: _listening(port), 10, "mosquitto listening on %d" % port)
    yield port
    p.terminate()
    p.wait(5)


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


class Client:
    def __init__(self, port, user, password, subs=()):
        self.got = []
        self.rc = None
        self.ready = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user + "-test")
        self.c.username_pw_set(user, password)
        self.c.on_connect = self._conn
        self.c.on_subscribe = self._subscribed
        self.c.on_message = lambda c, u, m: self.got.append((m.topic, m.payload))
        self.acked = 0
        self.subs = subs
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.ready.wait(5)

    def _conn(self, c, u, flags, rc, props):
        self.rc = rc
        if not rc.is_failure and self.subs:
            for s in self.subs:
                r, mid = c.subscribe(s, 1)
        else:
            self.ready.set()

    def _subscribed(self, c, u, mid, codes, props):
        # ready once the broker has answered every SUBSCRIBE (granted or not)
        self.acked += 1
        if self.acked == len(self.subs):
            self.ready.set()

    def has(self, msg):
        return msg in self.got

    def pub(self, topic, payload):
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_meter_a_cannot_read_b_commands_nor_publish_as_b(secured_broker):
    port = secured_broker
    he = Client(port, "headend", "pw-he", ["$share/headend/meters/+/evt", "$share/headend/meters/+/ack"])
    a = Client(port, "MA", "pw-a", ["meters/MA/cmd", "meters/MB/cmd", "meters/+/cmd", "meters/#"])
    assert he.ready.is_set() and a.ready.is_set()     # subscriptions answered
    he.pub("meters/MA/cmd", b"for A")
    he.pub("meters/MB/cmd", b"for B")
    a.pub("meters/MB/evt", b"A posing as B")
    a.pub("meters/MB/ack", b"A posing as B")
    a.pub("meters/MA/evt", b"A's own event")
    # markers sent after the refused ones (each publish above was PUBACKed,
    # so the broker had routed it): what was refused would have come first
    he.pub("meters/MA/cmd", b"marker")
    wait_for(lambda: a.has(("meters/MA/cmd", b"marker")), 5, "the marker at A")
    wait_for(lambda: he.has(("meters/MA/evt", b"A's own event")), 5, "A's own event at the head-end")
    assert sorted(set(a.got)) == [("meters/MA/cmd", b"for A"), ("meters/MA/cmd", b"marker")]
    assert he.got == [("meters/MA/evt", b"A's own event")]
    for c in (he, a):
        c.close()


def test_a_meter_cannot_publish_commands_even_to_itself(secured_broker):
    port = secured_broker
    b = Client(port, "MB", "pw-b", ["meters/MB/cmd"])
    a = Client(port, "MA", "pw-a")
    he = Client(port, "headend", "pw-he")
    assert b.ready.is_set()
    a.pub("meters/MB/cmd", b"forged by A")
    b.pub("meters/MB/cmd", b"self-made")
    he.pub("meters/MB/cmd", b"marker")   # after both were taken and dropped
    wait_for(lambda: b.has(("meters/MB/cmd", b"marker")), 5, "the head-end's marker at B")
    assert b.got == [("meters/MB/cmd", b"marker")]
    for c in (a, b, he):
        c.close()


def test_wrong_password_and_anonymous_clients_are_refused(secured_broker):
    bad = Client(secured_broker, "MA", "wrong")
    assert bad.rc is not None and bad.rc.is_failure
    bad.close()
    anon = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    res = {}
    anon.on_connect = lambda c, u, f, rc, p: res.setdefault("rc", rc)
    anon.connect("127.0.0.1", secured_broker)
    anon.loop_start()
    wait_for(lambda: "rc" in res, 5, "the anonymous client's CONNACK")
    anon.loop_stop()
    assert res["rc"].is_failure


def test_update_frames_reach_only_their_meter_and_requests_come_only_from_it(secured_broker):
    """docs/ota.md: the head-end's frames on meters/<id>/ota, the meter's
    requests on meters/<id>/otareq. A meter reads only its own frames, asks
    only as itself, and cannot feed frames to itself or to another meter."""
    port = secured_broker
    he = Client(port, "headend", "pw-he", ["$share/headend/meters/+/otareq"])
    a = Client(port, "MA", "pw-a", ["meters/MA/ota", "meters/MB/ota"])
    b = Client(port, "MB", "pw-b", ["meters/MB/ota"])
    assert he.ready.is_set() and a.ready.is_set() and b.ready.is_set()
    he.pub("meters/MA/ota", b"frame for A")
    he.pub("meters/MB/ota", b"frame for B")
    a.pub("meters/MB/ota", b"frame forged by A")
    a.pub("meters/MA/ota", b"frame A made itself")
    a.pub("meters/MB/otareq", b"A asking as B")
    a.pub("meters/MA/otareq", b"A asking")
    he.pub("meters/MA/ota", b"marker")
    he.pub("meters/MB/ota", b"marker")
    wait_for(lambda: a.has(("meters/MA/ota", b"marker")) and b.has(("meters/MB/ota", b"marker")), 5, "markers")
    wait_for(lambda: he.has(("meters/MA/otareq", b"A asking")), 5, "A's request at the head-end")
    assert a.got == [("meters/MA/ota", b"frame for A"), ("meters/MA/ota", b"marker")]
    assert b.got == [("meters/MB/ota", b"frame for B"), ("meters/MB/ota", b"marker")]
    assert he.got == [("meters/MA/otareq", b"A asking")]
    for c in (he, a, b):
        c.close()
