"""The whole sim meter through link faults: while the fault proxy blackholes
and resets its MQTT connection and the broker restarts, the meter keeps
metering, keeps charging the customer's credit and keeps answering its
control socket; and it reconnects by itself."""
import time

import pytest

from faultproxy import FaultProxy


@pytest.fixture
def proxy(broker):
    p = FaultProxy(broker.port).start()
    yield p
    p.stop()


def sample(m, seconds):
    """States every 0.2 s for `seconds`, and the slowest control reply."""
    out, slowest = [], 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        out.append(m.state())
        slowest = max(slowest, time.monotonic() - t0)
        time.sleep(0.2)
    return out, slowest


def test_the_meter_keeps_metering_and_charging_through_link_faults(sim_meters, proxy, broker):
    m = sim_meters("m1", broker_port=proxy.port, scale=60,
                   config={"initial_balance_minor": 100000, "keepalive_s": 2}).start()
    m.control({"cmd": "load", "w": 3000})
    first = m.wait_for(lambda s: s["meter"]["link_up"], timeout=20)
    accepted0 = proxy.accepted               # connections the meter has opened

    proxy.set_mode("blackhole")              # the cell goes dark
    dark, slow_dark = sample(m, 3)
    proxy.set_mode("pass")
    proxy.reset_all()                        # ... and the NAT forgot the flow
    m.wait_for(lambda s: s["meter"]["link_up"] and proxy.accepted > accepted0, timeout=30)
    accepted1 = proxy.accepted
    broker.restart()
    restarted, slow_restart = sample(m, 1.5)
    back = m.wait_for(lambda s: s["meter"]["link_up"] and proxy.accepted > accepted1, timeout=30)

    # metering advanced and credit was charged during the dark period
    assert dark[-1]["meter"]["import_wh"] > dark[0]["meter"]["import_wh"]
    assert dark[-1]["meter"]["balance_minor"] < dark[0]["meter"]["balance_minor"]
    assert back["meter"]["import_wh"] > restarted[0]["meter"]["import_wh"]
    assert back["meter"]["balance_minor"] < first["meter"]["balance_minor"]
    # the meter's loop answered its control socket promptly all along
    assert slow_dark < 0.5 and slow_restart < 0.5
    assert back["relay_closed"]
