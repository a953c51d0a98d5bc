"""Mosquitto ACLs from tools/headend/acl.py, against a real mosquitto: a meter
touches only its own topics; the head-end reads all through a shared group."""
import base64
import getpass
import hashlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
import threading

import paho.mqtt.client as mqtt
import pytest

from broker import mosquitto_path
from headend import acl
from wait import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def secured_broker(tmp_path):
    if not mosquitto_path():
        pytest.skip("needs mosquitto")
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


def test_the_acl_the_docs_show_is_what_the_cli_writes_for_a_provisioned_meter(tmp_path):
    """docs/mosquitto-acl.md's command, run as it is given (from tools/, with
    a database), for a meter the head-end provisioned: the ACL file holds the
    page's rules, which give that meter exactly the topics the page lists,
    and the password file lets it in with its own password, as the page says."""
    with open(os.path.join(ROOT, "docs", "mosquitto-acl.md")) as f:
        doc = f.read()
    shown = doc.split("The ACL file:\n\n```text\n", 1)[1].split("```", 1)[0]
    command = re.search(r"`(python -m headend acl OUT_DIR\s+--headend-password PW)`", doc).group(1).split()
    assert command[:3] == ["python", "-m", "headend"]

    def cli(*args):
        proc = subprocess.run([sys.executable, "-m", "headend", "--db", str(tmp_path / "he.sqlite")] + list(args),
                              cwd=os.path.join(ROOT, "tools"), capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout
    meter = json.loads(cli("provision", "MTR-0001"))
    out = str(tmp_path / "mosq")
    conf = cli(*[{"OUT_DIR": out, "PW": "pw-he"}.get(a, a) for a in command[3:]]).strip()
    assert conf == os.path.join(out, "mosquitto.conf")
    with open(os.path.join(out, "acl")) as f:
        written = f.read()
    # the page's rules, as written (the file adds only its comments)
    rules = "".join(line for line in written.splitlines(True) if not line.startswith("#"))
    assert rules == shown
    # for this meter they reach exactly the topics the page's list gives it
    mine = {"read": set(), "write": set()}
    for access, topic in re.findall(r"^pattern (read|write) (\S+)$", rules, re.M):
        mine[access].add(topic.replace("%u", meter["meter_id"]))
    said = re.search(r"only \*\*read\*\* `([^`]+)` and only \*\*write\*\*\s+`([^`]+)`", doc)
    own = "meters/%s/" % meter["meter_id"]

    def topics(listed):   # `meters/<own id>/cmd` or `meters/<own id>/{cmd,ota}`
        leaves = re.match(r"meters/<own id>/(?:([a-z]+)|\{([a-z,]+)\})$", listed)
        return {own + leaf for leaf in (leaves.group(1) or leaves.group(2)).split(",")}
    assert mine["read"] == topics(said.group(1))
    assert mine["write"] == topics(said.group(2))
    # the password file: mosquitto 2's $7$ (PBKDF2-HMAC-SHA512, 101
    # iterations, 12-byte salt) of the meter's own password, mode 0600
    assert "`$7$` format (PBKDF2-HMAC-SHA512, 101\niterations, 12-byte salt)" in doc
    passwd = os.path.join(out, "passwd")
    assert stat.S_IMODE(os.stat(passwd).st_mode) == 0o600 and "written mode 0600" in doc
    with open(passwd) as f:
        users = dict(line.rstrip("\n").split(":", 1) for line in f)
    assert sorted(users) == ["MTR-0001", "headend"]
    for user, password in (("MTR-0001", meter["mqtt_password"]), ("headend", "pw-he")):
        _, seven, n, salt, digest = users[user].split("$")
        assert (seven, n, len(base64.b64decode(salt))) == ("7", "101", 12)
        assert base64.b64decode(digest) == hashlib.pbkdf2_hmac("sha512", password.encode(),
                                                               base64.b64decode(salt), 101, 64)
    with open(conf) as f:
        settings = f.read().splitlines()
    assert {"allow_anonymous false", "password_file " + passwd, "acl_file " + os.path.join(out, "acl")} <= set(settings)
