"""The head-end CLI (`python -m headend`, run from tools/) as a person uses it:
one line, not a traceback, for what they can fix; a non-zero exit when the
meter does not answer; quiet about meters it does not manage; and no
accidental re-keying of a meter that is out there."""
import json
import os
import subprocess
import sys

import paho.mqtt.client as mqtt

from headend import codec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, timeout=30):
    return subprocess.run([sys.executable, "-m", "headend"] + [str(a) for a in args], cwd=os.path.join(ROOT, "tools"),
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(proc):
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("headend: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def provision(db, meter="M1", *extra):
    proc = cli("--db", db, "provision", meter, *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_an_unknown_meter_is_one_line_and_exit_2_without_touching_the_broker(tmp_path):
    db = tmp_path / "he.sqlite"
    provision(db)
    # port 1: nothing listens; the meter check comes first, so the broker is never tried
    for args in (["topup", "NOPE", 500], ["query", "NOPE", "state"], ["relay", "NOPE", "connect"],
                 ["watch", "NOPE"], ["reconcile", "NOPE"]):
        proc = cli("--db", db, "--broker", "127.0.0.1:1", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        line = one_line_error(proc)
        assert "unknown meter NOPE" in line and "provision NOPE" in line


def test_a_broker_that_is_down_is_one_line_and_exit_2(tmp_path):
    db = tmp_path / "he.sqlite"
    provision(db)
    proc = cli("--db", db, "--broker", "127.0.0.1:1", "topup", "M1", 500)
    assert proc.returncode == 2
    assert "cannot reach the broker at 127.0.0.1:1" in one_line_error(proc)


def test_a_file_or_value_the_cli_cannot_use_is_one_line_and_nothing_is_sent(tmp_path):
    db = tmp_path / "he.sqlite"
    provision(db)
    bad = tmp_path / "tariff.json"
    bad.write_text("{not json")
    cases = [(["tariff", "M1", 2, str(tmp_path / "missing.json")], "missing.json"),
             (["tariff", "M1", 2, str(bad)], "is not JSON"),
             (["config", "M1", "warn1_minor"], "KEY=VALUE"),
             (["config", "M1", "warn1_minor=lots"], "not a JSON value")]
    for args, words in cases:
        proc = cli("--db", db, "--broker", "127.0.0.1:1", *args)
        assert proc.returncode == 2, args
        assert words in one_line_error(proc), args


def test_no_ack_in_time_exits_3_with_a_one_line_reason(tmp_path, broker):
    db = tmp_path / "he.sqlite"
    provision(db)
    proc = cli("--db", db, "--broker", "127.0.0.1:%d" % broker.port, "--wait", 0.5, "query", "M1", "state")
    assert proc.returncode == 3, proc.stderr
    assert "no ack from M1 within 0.5 s" in one_line_error(proc)
    proc = cli("--db", db, "--broker", "127.0.0.1:%d" % broker.port, "--wait", 0.5, "topup", "M1", 500)
    assert proc.returncode == 3, proc.stderr
    assert "order 1 is issued" in one_line_error(proc)
    assert json.loads(proc.stdout)["state"] == "issued"


def _retain(port, topic, payload):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect("127.0.0.1", port)
    c.loop_start()
    c.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


def test_retained_states_of_meters_it_does_not_manage_make_no_noise(tmp_path, broker):
    db = tmp_path / "he.sqlite"
    provision(db)
    other = codec.sign(b"\x07" * 32, {"v": 1, "meter": "OTHER", "kind": "state", "seq": 4, "balance_minor": 1})
    _retain(broker.port, "meters/OTHER/state", other)
    _retain(broker.port, "meters/OTHER2/status", b"online")
    proc = cli("--db", db, "--broker", "127.0.0.1:%d" % broker.port, "--wait", 0.5, "query", "M1", "state")
    assert proc.returncode == 3
    assert "bad message" not in proc.stderr
    one_line_error(proc)   # the timeout, and nothing else

    # the worker counts them apart from bad messages, which it still reports
    from headend.server import HeadEnd
    logged = []
    he = HeadEnd(str(db), port=broker.port, log=lambda *a: logged.append(a))
    seen = []
    he.listeners.append(lambda *a: seen.append(a))
    _retain(broker.port, "meters/M1/state", b"{}")   # ours, unsigned: a real bad message
    he.start(tick_s=0)
    try:
        from wait import wait_for
        wait_for(lambda: he.foreign_messages >= 2 and he.bad_messages >= 1, 5,
                 "two foreign messages and one bad one")
    finally:
        he.stop()
    assert he.foreign_messages == 2 and he.bad_messages == 1
    assert [a[1] for a in logged] == ["meters/M1/state"]


def test_provisioning_a_meter_again_needs_force_because_it_changes_the_key(tmp_path):
    db = tmp_path / "he.sqlite"
    first = provision(db)
    proc = cli("--db", db, "provision", "M1")
    assert proc.returncode == 2
    assert "already provisioned" in one_line_error(proc) and "--force" in proc.stderr
    assert proc.stdout == ""
    # the key is untouched: the same meter still verifies
    from headend import db as hdb
    assert hdb.meter(hdb.connect(str(db)), "M1")["key_hex"] == first["key_hex"]
    again = provision(db, "M1", "--force")
    assert again["key_hex"] != first["key_hex"] and again["mqtt_password"] != first["mqtt_password"]
    assert hdb.meter(hdb.connect(str(db)), "M1")["key_hex"] == again["key_hex"]
    proc = cli("--db", db, "provision", "M2", "--key-hex", "abcd")
    assert proc.returncode == 2 and "64 hex digits" in one_line_error(proc)
