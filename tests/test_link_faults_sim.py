"""The whole sim meter through link faults: while the fault proxy blackholes
and resets its MQTT connection and the broker restarts, the meter keeps
metering, keeps charging the customer's credit and keeps answering its
control socket; and it reconnects by itself."""
import pytest

from faultproxy import FaultProxy
from wait import own_latency, wait_for


@pytest.fixture
def proxy(broker):
    p = FaultProxy(broker.port).start()
    yield p
    p.stop()


def sample_until(m, done, timeout=30, what="the condition"):
    """States, one control request after the other, until done(states) holds;
    returns them and the slowest reply, net of the machine's load
    (wait.own_latency)."""
    out, slowest = [], 0.0

    def one():
        nonlocal slowest
        st, took = own_latency(m.state, m.proc.pid)
        out.append(st)
        slowest = max(slowest, took)
        return done(out)
    wait_for(one, timeout, what)
    return out, slowest


def metered_and_charged(states):
    a, b = states[0]["meter"], states[-1]["meter"]
    return b["import_wh"] > a["import_wh"] and b["balance_minor"] < a["balance_minor"]


def test_the_meter_keeps_metering_and_charging_through_link_faults(sim_meters, proxy, broker):
    m = sim_meters("m1", broker_port=proxy.port, scale=60,
                   config={"initial_balance_minor": 100000, "keepalive_s": 2}).start()
    m.control({"cmd": "load", "w": 3000})
    first = m.wait_for(lambda s: s["meter"]["link_up"], timeout=20)
    accepted0 = proxy.accepted               # connections the meter has opened

    proxy.set_mode("blackhole")              # the cell goes dark
    # until the meter has seen the link go down, and metered and charged on
    # after that, answering every control request meanwhile
    m.wait_for(lambda s: not s["meter"]["link_up"], timeout=20)
    dark, slow_dark = sample_until(m, metered_and_charged, what="metering while dark")
    assert not any(s["meter"]["link_up"] for s in dark)
    proxy.set_mode("pass")
    proxy.reset_all()                        # ... and the NAT forgot the flow
    m.wait_for(lambda s: s["meter"]["link_up"] and proxy.accepted > accepted0, timeout=30)
    accepted1 = proxy.accepted
    broker.restart()
    restarted, slow_restart = sample_until(m, lambda ss: not ss[-1]["meter"]["link_up"] or
                                           proxy.accepted > accepted1, what="the restart noticed")
    back = m.wait_for(lambda s: s["meter"]["link_up"] and proxy.accepted > accepted1, timeout=30)

    # metering advanced and credit was charged during the dark period
    assert dark[-1]["meter"]["import_wh"] > dark[0]["meter"]["import_wh"]
    assert dark[-1]["meter"]["balance_minor"] < dark[0]["meter"]["balance_minor"]
    assert back["meter"]["import_wh"] > restarted[0]["meter"]["import_wh"]
    assert back["meter"]["balance_minor"] < first["meter"]["balance_minor"]
    # the meter's loop answered its control socket promptly all along (its
    # own time: a loaded machine running it late does not count)
    assert slow_dark < 0.5 and slow_restart < 0.5
    assert back["relay_closed"]
