"""On the running sim meter, the price on the LCD, in the state and on the
console is the one the meter charges (issue 12, item 3), for a tariff sent
in the documented table form and for a tiered time-of-use one."""
import signed
from lcd import goto


def cmd(m, kind, **fields):
    return m.control({"cmd": "command", "raw": signed.command(m.meter_id, kind, **fields).decode()})["reply"]


def shown(m):
    """The price as the LCD's tariff screen, the state and the console show it."""
    st = m.control({"cmd": "meter_state"})["state"]
    console = [l for l in m.console("status()") if l.startswith("price ")]
    return st["price_milli_per_kwh"], console[0].split()[1]


def lcd_price(m, text):
    # short presses walk the screens to the price (docs/screens.md): the
    # price in big digits, its unit under them
    goto(m, 5)
    return m.wait_for(lambda s: s["lcd"][0] == "Price" and s["lcd"][1] == text
                      and s["lcd"][4].endswith("/kWh"), timeout=5)


def charged_by_next_kwh(m):
    before = m.control({"cmd": "meter_state"})["state"]
    m.control({"cmd": "pulses", "n": 1000})             # 1 kWh at 1000 imp/kWh
    after = m.wait_for(lambda s: s["meter"]["import_wh"] == before["obis_1_8_0"] + 1000)
    return before["balance_minor"] - after["meter"]["balance_minor"]


def test_a_table_form_tariff_shows_the_price_it_charges(sim_meters):
    m = sim_meters("p1", config={"initial_balance_minor": 100000, "key_hex": signed.KEY_HEX}).start()
    ack = cmd(m, "tariff", version=2, activate_utc_s=0, tariff={"prices_milli_per_kwh": [[200000]]})
    assert ack["result"] == "ok", ack
    m.wait_for(lambda s: s["meter"]["tariff_version"] == 2)
    assert shown(m) == (200000, "200000")
    lcd_price(m, "2.00")
    assert charged_by_next_kwh(m) == 200


def test_a_tiered_time_of_use_tariff_shows_the_price_of_the_next_kwh(sim_meters):
    # sim time starts 2026-01-01 00:00 UTC: valley until 08:00
    m = sim_meters("p2", config={"initial_balance_minor": 100000, "key_hex": signed.KEY_HEX}).start()
    tariff = {"periods": ["peak", "valley"], "tiers_wh": [1000],
              "prices_milli_per_kwh": [[250000, 90000], [400000, 150000]],
              "days": {"weekday": [[0, 1], [8 * 3600, 0]]}}
    ack = cmd(m, "tariff", version=3, activate_utc_s=0, tariff=tariff)
    assert ack["result"] == "ok", ack
    m.wait_for(lambda s: s["meter"]["tariff_version"] == 3)
    assert shown(m) == (90000, "90000")                 # tier 0, valley
    lcd_price(m, "0.90")
    assert charged_by_next_kwh(m) == 90
    # the month's first 1000 Wh are used up: tier 1 from the next Wh
    m.wait_for(lambda s: s["meter"]["import_wh"] == 1000)
    assert shown(m) == (150000, "150000")
    lcd_price(m, "1.50")
    assert charged_by_next_kwh(m) == 150
