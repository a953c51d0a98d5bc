"""The whole sim meter over TLS with CA verification and per-meter credentials."""
import os
import socket

import pytest

from broker import Broker
from linkrig import make_test_ca, secure_conf
import signed
from wait import wait_for


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def tls_broker(tmp_path):
    ca = make_test_ca(str(tmp_path / "ca"))
    port = _free_port()
    d = str(tmp_path / "broker")
    os.makedirs(d, exist_ok=True)
    b = Broker(d, extra_conf=secure_conf(d, port, {"t1": "pw-t1"}, ca))
    b.start()
    b.tls_port, b.ca = port, ca
    yield b
    b.stop()


def _der_hex(path):
    with open(path, "rb") as f:
        return f.read().hex()


def test_the_meter_connects_over_tls_with_its_own_credentials(sim_meters, tls_broker):
    b = tls_broker
    m = sim_meters("t1", b.tls_port, config={"initial_balance_minor": 500, "mqtt_user": "t1",
                                             "mqtt_password": "pw-t1",
                                             "broker_ca_hex": _der_hex(b.ca[1])}).start()
    st = m.wait_for(lambda s: s["meter"]["link_up"], timeout=20)
    assert st["meter"]["balance_minor"] == 500


def test_a_broker_certificate_from_another_ca_is_refused_and_metering_goes_on(sim_meters, tls_broker):
    b = tls_broker
    m = sim_meters("t1", b.tls_port, config={"initial_balance_minor": 500, "mqtt_user": "t1",
                                             "mqtt_password": "pw-t1",
                                             "broker_ca_hex": _der_hex(b.ca[4])}).start()
    m.control({"cmd": "pulses", "n": 100})
    # the refusal, as an explicit signal: a connect attempt failed (the
    # communication log's "fail"), and the link is still not up after it
    log = wait_for(lambda: _fails(m), 20, "a refused connect in the communication log")
    assert any("cert" in d.lower() or "verify" in d.lower() or "ssl" in d.lower() for _, _, d in log), log
    st = m.wait_for(lambda s: s["meter"]["import_wh"] == 100)
    assert not st["meter"]["link_up"]


def _fails(m):
    raw = signed.command(m.meter_id, "query", what="commlog").decode()
    log = m.control({"cmd": "command", "raw": raw})["reply"]["data"]
    return [e for e in log if e[1] == "fail"]
