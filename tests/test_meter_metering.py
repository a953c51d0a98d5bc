"""Metering on the running sim meter: the ADC revenue path, the pulse/ADC
cross-check, reverse energy and the terminal cover."""
import signed
from mqttc import Watcher
from wait import wait_for


def _exported(m, above=0):
    st = m.control({"cmd": "meter_state"})["state"]
    return st if st["obis_2_8_0"] > above else None


def test_the_adc_path_bills_the_load_and_agrees_with_the_pulses(sim_meters):
    m = sim_meters("a1", config={"initial_balance_minor": 100000, "metering_source": "both",
                                 "reconnect": "auto"}, scale=360).start()
    m.control({"cmd": "load", "w": 2000})
    st = m.wait_for(lambda s: s["meter"]["import_wh"] >= 1000, timeout=20)
    # 2 kW for a simulated 0.5 h+ ; ADC (revenue) and pulses agree within a tick's worth
    assert abs(st["meter"]["import_wh"] - st["pulses"]) <= 2000 * 360 / 3600 + 5
    ms = m.control({"cmd": "meter_state"})["state"]
    assert ms["obis_1_8_0"] == st["meter"]["import_wh"]


def test_reverse_energy_is_registered_as_export_raises_tamper_and_never_adds_credit(sim_meters, broker):
    m = sim_meters("a2", broker.port, config={"initial_balance_minor": 5000, "metering_source": "adc",
                                              "key_hex": signed.KEY_HEX}, scale=360).start()
    w = Watcher(broker.port, ["meters/a2/evt"])
    try:
        m.wait_for(lambda s: s["meter"]["link_up"], timeout=10)
        m.control({"cmd": "load", "w": -1500})
        ev = w.wait(lambda t, b: b.get("kind") == "tamper" and b.get("code") == "reverse_energy")
        assert ev["seq"] >= 1
        first = wait_for(lambda: _exported(m), 10, "export registered")
        # and later ticks export more: none of it ever adds credit
        ms = wait_for(lambda: _exported(m, first["obis_2_8_0"]), 10, "more export registered")
        assert ms["obis_1_8_0"] == 0 and ms["balance_minor"] == 5000
    finally:
        w.close()


def test_opening_the_terminal_cover_raises_a_time_stamped_tamper_event(sim_meters, broker):
    m = sim_meters("a3", broker.port, config={"initial_balance_minor": 5000}).start()
    w = Watcher(broker.port, ["meters/a3/evt"])
    try:
        m.wait_for(lambda s: s["meter"]["link_up"], timeout=10)
        m.control({"cmd": "tamper", "open": True})
        ev = w.wait(lambda t, b: b.get("kind") == "tamper" and b.get("code") == "cover_open")
        assert abs(ev["t"] - m.state()["rtc_s"]) < 5
    finally:
        w.close()
