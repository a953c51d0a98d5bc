"""The whole sim meter behind a simulated LTE modem on a pty: the modem link
brings the data call up before MQTT, the cell's time syncs the clock, and a
dead modem never stops metering, credit enforcement or the display."""
import pytest

from fake_modem import FakeModem
from simmeter import ConsoleError
from wait import own_latency, wait_for


@pytest.fixture
def modem():
    m = FakeModem(boot_ms=150, reg_ms=200, powered=False,
                  clock_utc=lambda: 1790000000).start()
    yield m
    m.stop()


def test_the_meter_comes_online_through_the_modem_and_takes_the_network_time(sim_meters, broker, modem):
    m = sim_meters("mm1", broker.port, config={"initial_balance_minor": 5000},
                   extra_args=["--modem", modem.path, "--modem-pins", str(modem.pin_port)]).start()
    st = m.wait_for(lambda s: s["meter"]["link_up"], timeout=30)
    assert modem.counts["dials"] >= 1
    assert st["meter"]["clock_synced"] and abs(st["rtc_s"] - 1790000000) < 60
    assert st["meter"]["signal_dbm"] != "--"


def test_a_modem_that_hangs_never_stops_metering_and_the_link_recovers(sim_meters, broker, modem):
    m = sim_meters("mm2", broker.port, config={"initial_balance_minor": 5000}, scale=60,
                   extra_args=["--modem", modem.path, "--modem-pins", str(modem.pin_port)]).start()
    m.wait_for(lambda s: s["meter"]["link_up"], timeout=30)
    m.control({"cmd": "load", "w": 2000})
    before = m.state()["meter"]
    modem.hang()                      # firmware hang: silent until reset or power cycle
    modem.drop_carrier()
    samples = []

    def sample():
        # the control socket (and the loop) stay responsive: each reply
        # within 1 s of the meter's own time (wait.own_latency)
        st, took = own_latency(m.state, m.proc.pid)
        assert took < 1.0, took
        samples.append(st)
        a, b = before, st["meter"]
        return (b["import_wh"] > a["import_wh"] and b["balance_minor"] < a["balance_minor"]
                and len({tuple(s["lcd"]) for s in samples}) > 1)
    # with the modem hung: metering, charging and the display go on
    wait_for(sample, 30, "metering, charging and a refreshed display with the modem hung")
    after = samples[-1]["meter"]
    assert after["import_wh"] > before["import_wh"]            # still metering
    assert after["balance_minor"] < before["balance_minor"]    # still charging
    assert len({tuple(s["lcd"]) for s in samples}) > 1         # the display keeps refreshing
    # link_up can still read True here if the meter has not yet noticed the
    # hang (CI saw exactly that): wait for the recovery itself, then the link
    wait_for(lambda: modem.counts["resets"] + modem.counts["power_cycles"] >= 1, 60,
             "the meter resets or power-cycles the hung modem")
    m.wait_for(lambda s: s["meter"]["link_up"], timeout=60)    # and the link is back


def test_the_technician_repl_shows_modem_health_link_and_balance(sim_meters, broker, modem):
    m = sim_meters("mm3", broker.port, config={"initial_balance_minor": 5000},
                   extra_args=["--modem", modem.path, "--modem-pins", str(modem.pin_port)]).start()
    m.wait_for(lambda s: s["meter"]["link_up"], timeout=30)
    health = dict(line.split(" ", 1) for line in m.console("modem()"))
    assert health["imei"] == "867962041234567" and health["up"] == "True"
    assert int(health["rssi_dbm"]) < 0 and health["dials"] != "0"
    link = dict(line.split(" ", 1) for line in m.console("link()"))
    assert link["state"] and int(link["connects"]) >= 1
    status = m.console("status()")
    assert status[1].startswith("balance 5000 minor")
    assert any(" conn " in line for line in m.console("comms(1000)"))
    with pytest.raises(ConsoleError, match="NameError"):
        m.console("frobnicate")   # a real REPL: an unknown name is Python's NameError
    assert m.state()["meter"]["balance_minor"] == 5000  # looking changes nothing


# The production meter runs its code from a ROMFS image (docs/deploy.md),
# as the sim does by default. Deployed as .mpy files instead, the code took
# the heap: with the modem's code loaded, the board heap (108wk) had about
# 33 KB free once the link was up and no free block over ~2 KB, so the
# command dispatcher could not load at the first command (MemoryError) and
# no top-up was ever credited. tests/test_foundation.py checks how much heap
# ROMFS saves.
def test_top_ups_are_credited_on_a_meter_with_the_modem(sim_meters, broker, modem):
    import signed
    from simmeter import HEAP, heap_bytes
    m = sim_meters("mm4", broker.port, config={"initial_balance_minor": 5000, "key_hex": signed.KEY_HEX},
                   extra_args=["--modem", modem.path, "--modem-pins", str(modem.pin_port)]).start()
    assert m.romfs
    m.wait_for(lambda s: s["meter"]["link_up"], timeout=30)
    for order in (1, 2, 3):
        raw = signed.command("mm4", "topup", order=order, amount_minor=10).decode()
        r = m.control({"cmd": "command", "raw": raw})
        assert r.get("reply", {}).get("result") == "credited", r
    assert m.state()["meter"]["balance_minor"] == 5030
    mem = m.mem()
    print("heap after 3 top-ups:", mem)
    assert mem["total"] <= heap_bytes(HEAP), mem    # the board's heap, the image not in it
    # The product's bar (issue 15): at least 40 KB free on the modem meter at
    # the board's heap with a REPL session open and a token entered; this
    # meter has neither, so it must keep 10 % above that. Measured: 72.6 KB
    # at stop 11; 55.4 KB once the 12-screen panel, the forecast and the
    # tokens' hooks came in (docs/benchmarks.md, "Memory").
    assert mem["free"] >= 44000, mem
