"""Mosquitto ACLs from tools/headend/acl.py, against a real mosquitto: a meter
touches only its own topics; the head-end reads all through a shared group."""
import getpass
import socket
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from broker import mosquitto_path
from headend import acl

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
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    p.terminate()
    p.wait(5)


class Client:
    def __init__(self, port, user, password, subs=()):
        self.got = []
        self.rc = None
        self.ready = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user + "-test")
        self.c.username_pw_set(user, password)
        self.c.on_connect = self._conn
        self.c.on_message = lambda c, u, m: self.got.append((m.topic, m.payload))
        self.subs = subs
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.ready.wait(5)

    def _conn(self, c, u, flags, rc, props):
        self.rc = rc
        if not rc.is_failure:
            for s in self.subs:
                r, mid = c.subscribe(s, 1)
        self.ready.set()

    def pub(self, topic, payload):
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_meter_a_cannot_read_b_commands_nor_publish_as_b(secured_broker):
    port = secured_broker
    he = Client(port, "headend", "pw-he", ["$share/headend/meters/+/evt", "$share/headend/meters/+/ack"])
    a = Client(port, "MA", "pw-a", ["meters/MA/cmd", "meters/MB/cmd", "meters/+/cmd", "meters/#"])
    time.sleep(0.3)
    he.pub("meters/MA/cmd", b"for A")
    he.pub("meters/MB/cmd", b"for B")
    a.pub("meters/MB/evt", b"A posing as B")
    a.pub("meters/MB/ack", b"A posing as B")
    a.pub("meters/MA/evt", b"A's own event")
    time.sleep(0.5)
    assert sorted(set(a.got)) == [("meters/MA/cmd", b"for A")]
    assert he.got == [("meters/MA/evt", b"A's own event")]
    for c in (he, a):
        c.close()


def test_a_meter_cannot_publish_commands_even_to_itself(secured_broker):
    port = secured_broker
    b = Client(port, "MB", "pw-b", ["meters/MB/cmd"])
    a = Client(port, "MA", "pw-a")
    time.sleep(0.2)
    a.pub("meters/MB/cmd", b"forged by A")
    b.pub("meters/MB/cmd", b"self-made")
    time.sleep(0.4)
    assert b.got == []
    a.close()
    b.close()


def test_wrong_password_and_anonymous_clients_are_refused(secured_broker):
    bad = Client(secured_broker, "MA", "wrong")
    assert bad.rc is not None and bad.rc.is_failure
    bad.close()
    anon = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    res = {}
    anon.on_connect = lambda c, u, f, rc, p: res.setdefault("rc", rc)
    anon.connect("127.0.0.1", secured_broker)
    anon.loop_start()
    for _ in range(100):
        if "rc" in res:
            break
        time.sleep(0.05)
    anon.loop_stop()
    assert res["rc"].is_failure
