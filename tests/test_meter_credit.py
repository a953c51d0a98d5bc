"""The credit engine as the customer meets it on the sim meter: buttons,
emergency credit, remote relay commands, protection trips, postpaid mode and
a tariff command. The rules themselves are specified in test_credit_*.py."""
import signed
from lcd import lcd_cut_reason


def cmd(m, kind, **fields):
    return m.control({"cmd": "command", "raw": signed.command(m.meter_id, kind, **fields).decode()})["reply"]


def meter(sim_meters, name, **cfg):
    base = {"initial_balance_minor": 500, "key_hex": signed.KEY_HEX, "reconnect": "auto"}
    base.update(cfg)
    return sim_meters(name, config=base).start()


def test_a_long_press_at_low_credit_lends_emergency_credit_and_the_next_topup_repays_it(sim_meters):
    m = meter(sim_meters, "c1", initial_balance_minor=150, emergency_minor=1000,
              emergency_below_minor=2000)
    m.control({"cmd": "pulses", "n": 1000})           # 1 kWh at 1.50: credit used up
    m.wait_for(lambda s: not s["relay_closed"])
    m.control({"cmd": "press", "ms": 1800})            # long press: the LCD asks first
    m.wait_for(lambda s: s["lcd"][:3] == ["Take emergency", "credit of", " 10.00"], timeout=5)
    assert m.state()["meter"]["owed_minor"] == 0
    m.control({"cmd": "press", "ms": 1800})            # a second long press takes it
    st = m.wait_for(lambda s: s["relay_closed"], timeout=5)
    assert "Credit given" in m.wait_for(lambda s: "Credit given" in s["lcd"], timeout=5)["lcd"]
    assert st["meter"]["balance_minor"] == 1000 and st["meter"]["owed_minor"] == 1000
    ack = cmd(m, "topup", order=1, amount_minor=600)   # smaller than the loan
    # all 600 repays the loan: the balance stays 1000, of which 400 is still lent
    assert ack["result"] == "credited" and ack["balance_minor"] == 1000
    st = m.state()["meter"]
    assert st["owed_minor"] == 400 and st["balance_minor"] == 1000


def test_remote_disconnect_and_connect_override_with_their_own_reason(sim_meters):
    m = meter(sim_meters, "c2", initial_balance_minor=100000)
    assert m.state()["relay_closed"]
    assert cmd(m, "relay", action="disconnect")["result"] == "ok"
    st = m.wait_for(lambda s: not s["relay_closed"], timeout=5)
    assert "remote" in st["meter"]["relay_reason"]
    assert cmd(m, "relay", action="connect")["result"] == "ok"
    m.wait_for(lambda s: s["relay_closed"], timeout=5)


def test_over_power_trips_the_relay_and_the_lcd_says_why(sim_meters):
    m = meter(sim_meters, "c3", initial_balance_minor=100000,
              protection={"over_power": {"limit": 5000, "hold_s": 2, "retry_s": 600, "tries": 3}})
    m.control({"cmd": "load", "w": 8000})
    st = m.wait_for(lambda s: not s["relay_closed"], timeout=10)
    assert "over_power" in st["meter"]["relay_reason"]
    m.wait_for(lambda s: lcd_cut_reason(s["lcd"]) in ("over_power", "over_power_lockout"), timeout=5)


def test_postpaid_mode_never_disconnects_for_balance_but_keeps_charging(sim_meters):
    m = meter(sim_meters, "c4", initial_balance_minor=100)
    assert cmd(m, "mode", mode="postpaid")["result"] == "ok"
    m.control({"cmd": "pulses", "n": 2000})
    m.wait_for(lambda s: s["meter"]["balance_minor"] == 100 - 300)
    # the balance is below zero and a later tick came: the relay stayed closed
    assert m.control({"cmd": "step", "ms": 1000})["ticked"]
    st = m.state()
    assert st["relay_closed"] and st["meter"]["balance_minor"] == 100 - 300
    assert st["meter"]["import_wh"] == 2000
    assert st["meter"]["mode"] == "postpaid"


def test_a_new_tariff_takes_over_and_its_version_is_reported(sim_meters):
    m = meter(sim_meters, "c5", initial_balance_minor=100000)
    ack = cmd(m, "tariff", version=2, activate_utc_s=0, tariff={"price_milli_per_kwh": 300000})
    assert ack["result"] == "ok", ack
    m.control({"cmd": "pulses", "n": 1000})
    st = m.wait_for(lambda s: s["meter"]["import_wh"] == 1000)
    assert st["meter"]["tariff_version"] == 2 and st["meter"]["balance_minor"] == 100000 - 300


def test_bad_commands_change_nothing_on_the_running_meter(sim_meters):
    m = meter(sim_meters, "c6", initial_balance_minor=500)
    before = m.control({"cmd": "meter_state"})["state"]
    forged = signed.command("c6", "topup", key=b"\x22" * 32, order=9, amount_minor=100000).decode()
    r = m.control({"cmd": "command", "raw": forged})["reply"]
    assert r["result"] == "rejected" and r["reason"] == "bad_mac"
    r = m.control({"cmd": "command", "raw": "{" * 5000})["reply"]
    assert r["result"] == "rejected" and r["reason"] == "oversized"
    good = signed.command("c6", "topup", ctr=10**9, order=9, amount_minor=100).decode()
    assert m.control({"cmd": "command", "raw": good})["reply"]["result"] == "credited"
    replay = signed.command("c6", "topup", ctr=10**9, order=10, amount_minor=100).decode()
    r = m.control({"cmd": "command", "raw": replay})["reply"]
    assert r["result"] == "rejected" and r["reason"] == "replayed"
    after = m.control({"cmd": "meter_state"})["state"]
    assert after["balance_minor"] == before["balance_minor"] + 100
