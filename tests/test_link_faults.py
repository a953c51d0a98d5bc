"""Link faults: the meter keeps metering while the network misbehaves, and
reconnects by itself when it recovers.

Between the meter (unix-port MicroPython, tools/linkrig.METER_SCRIPT) and a
real mosquitto sits tools/faultproxy.py. The meter's 100 ms "metering" task
reports how many ticks it made and the longest the program held its loop
(linkrig.LOOP_PROBE: the gap between ticks less the time the process waited
for a CPU): a link that blocks the loop shows up as a hold far above 100 ms,
a loaded machine does not.
"""
import pytest

from broker import Broker
from fake_modem import FakeModem
from faultproxy import FaultProxy
from linkrig import meter
from wait import event_after, wait_for

# short keepalive and deadlines so each fault is noticed in a couple of seconds
FAST = {"PINGRESP_TIMEOUT_MS": 1000, "CONNECT_TIMEOUT_MS": 1500, "BACKOFF_MIN_MS": 200,
        "BACKOFF_MAX_MS": 1500, "STABLE_MS": 1000}
MAX_HELD_MS = 250    # 100 ms ticks; anything near this means the link held the loop


@pytest.fixture
def proxy(broker):
    p = FaultProxy(broker.port).start()
    yield p
    p.stop()


def metering_kept_pace(ev, since):
    """The metering task ran on since event `since`, and the link never held
    its loop: no stall of the program's own above 2.5 ticks."""
    return ev["ticks"] > since["ticks"] and ev["held_ms"] < MAX_HELD_MS


def test_a_blackholed_link_is_detected_by_keepalive_and_recovered(proxy):
    m = meter(proxy.port, keepalive=1, session_attrs=FAST)
    try:
        first = m.wait("up")
        proxy.set_mode("blackhole")
        down = m.wait("down", timeout=10)
        # still dark: a reconnect gets through to the proxy and times out
        event_after(m, "tick", down, lambda e: e["stats"]["last_error"] in (
            "Drop('no connack',)", "Drop('connect timeout',)"), what="a reconnect timing out")
        proxy.set_mode("pass")
        up = m.wait("up", timeout=15)
    finally:
        m.stop()
    assert down["stats"]["last_error"] in ("Drop('no pingresp',)", "Drop('send stalled',)")
    assert up["stats"]["connects"] >= 2
    assert metering_kept_pace(up, first)


def test_a_reset_connection_is_redialled_at_once(proxy):
    m = meter(proxy.port, session_attrs=FAST)
    try:
        first = m.wait("up")
        for _ in range(3):
            proxy.reset_all()
            m.wait("down", timeout=10)
            up = m.wait("up", timeout=10)
    finally:
        m.stop()
    assert up["stats"]["connects"] == 4 and up["stats"]["drops"] == 3
    assert metering_kept_pace(up, first)


def test_a_slow_link_delays_but_does_not_break_the_session(proxy, broker):
    m = meter(proxy.port, keepalive=1, session_attrs=dict(FAST, PINGRESP_TIMEOUT_MS=3000))
    try:
        first = m.wait("up")
        proxy.set_mode("delay", 400)       # 800 ms round trips
        # two keepalive pings answered through the delay
        last = event_after(m, "tick", first, lambda e: e["stats"]["pings"] >= first["stats"]["pings"] + 2
                           and (e["stats"]["rtt_ms"] or 0) >= 700, timeout=15,
                           what="two pings through the slow link")
    finally:
        m.stop()
    assert last["stats"]["drops"] == 0 and last["stats"]["pings"] >= 2
    assert last["stats"]["rtt_ms"] >= 700
    assert metering_kept_pace(last, first)


def test_refused_connections_back_off_and_recover_when_the_broker_returns(proxy, broker):
    m = meter(proxy.port, session_attrs=FAST)
    try:
        first = m.wait("up")
        broker.stop()
        m.wait("down", timeout=10)
        # several refused attempts: the proxy takes each, finds no broker
        base = proxy.accepted
        wait_for(lambda: proxy.accepted >= base + 3, 15, "three refused connection attempts")
        broker.start()
        up = m.wait("up", timeout=15)
    finally:
        m.stop()
    assert up["stats"]["connects"] == 2 and up["stats"]["backoff_ms"] > 0
    assert metering_kept_pace(up, first)


def test_a_proxy_that_accepts_and_closes_is_survived(proxy):
    m = meter(proxy.port, session_attrs=FAST)
    try:
        first = m.wait("up")
        proxy.set_mode("drop")
        proxy.reset_all()
        m.wait("down", timeout=10)
        # it keeps trying, with backoff: three attempts accepted and closed
        wait_for(lambda: proxy.accepted >= 3, 15, "three connection attempts")
        proxy.set_mode("pass")
        up = m.wait("up", timeout=15)
    finally:
        m.stop()
    assert proxy.accepted >= 3             # it kept trying, with backoff
    assert metering_kept_pace(up, first)


def test_a_modem_carrier_drop_takes_the_session_down_and_both_come_back(broker):
    modem = FakeModem(boot_ms=100, reg_ms=100, powered=False).start()
    attrs = {"BOOT_MS": 1500, "REGISTER_MS": 1500, "REG_POLL_MS": 200, "DIAL_MS": 2000,
             "WATCH_MS": 100, "BACKOFF_MIN_MS": 100, "BACKOFF_MAX_MS": 800, "OFF_MS": 100, "PWRKEY_MS": 100}
    m = meter(broker.port, session_attrs=FAST, modem=[modem.path, modem.pin_port], modem_attrs=attrs)
    try:
        first = m.wait("up", timeout=20)
        modem.drop_carrier()
        down = m.wait("down", timeout=10)
        up = m.wait("up", timeout=20)
    finally:
        m.stop()
        modem.stop()
    assert down["stats"]["last_error"] == "Drop('network down',)"
    assert modem.counts["dials"] == 2
    assert up["stats"]["connects"] == 2
    assert metering_kept_pace(up, first)
