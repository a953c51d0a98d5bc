"""On the running sim meter, the price on the LCD, in the state and on the
console is the one the meter charges (issue 12, item 3), for every kind of
tariff: flat (in the documented table form and as one plain price), tiered,
time-of-use, and tiered time-of-use."""
import pytest

import signed
from lcd import goto
from wait import wait_for

H = 3600


def cmd(m, kind, **fields):
    return m.control({"cmd": "command", "raw": signed.command(m.meter_id, kind, **fields).decode()})["reply"]


def shown(m):
    """The price as the state and the console show it."""
    st = m.control({"cmd": "meter_state"})["state"]
    console = [l for l in m.console("status()") if l.startswith("price ")]
    return st["price_milli_per_kwh"], console[0].split()[1]


def lcd_price(m, text):
    # short presses walk the screens to the price (docs/screens.md): the
    # price in big digits, its unit under them
    goto(m, 5)
    return m.wait_for(lambda s: s["lcd"][0] == "Price" and s["lcd"][1] == text
                      and s["lcd"][4].endswith("/kWh"), timeout=5)


def charged_by_next(m, kwh):
    before = m.control({"cmd": "meter_state"})["state"]
    m.control({"cmd": "pulses", "n": 1000 * kwh})       # at 1000 imp/kWh
    after = m.wait_for(lambda s: s["meter"]["import_wh"] == before["obis_1_8_0"] + 1000 * kwh)
    return before["balance_minor"] - after["meter"]["balance_minor"]


# Sim time starts 2026-01-01 00:00 UTC, a Thursday, and unsynced. Each step:
# what to do first (None; "sync": a server `time` command at the sim's RTC;
# N: move the clock on N hours), then the price the views must show
# (milli-minor per kWh, and as the LCD writes it), then the kWh to charge at
# it. The charges move the month's Wh on, across the tier boundaries.
TARIFFS = {
    "flat_table": ({"prices_milli_per_kwh": [[200000]]},
                   [(None, 200000, "2.00", 1)]),
    # one plain price, with a digit beyond the currency's two decimals
    "flat": ({"price_milli_per_kwh": 187500},
             [(None, 187500, "1.875", 2)]),
    "tiered": ({"tiers_wh": [1000], "prices_milli_per_kwh": [[120000], [300000]]},
               [(None, 120000, "1.20", 1), (None, 300000, "3.00", 1)]),
    # valley until 08:00, then peak; the flat period while the time of day is
    # unknown (docs/credit.md)
    "tou": ({"periods": ["peak", "valley", "flat"], "prices_milli_per_kwh": [[240000, 80000, 150000]],
             "days": {"weekday": [[0, 1], [8 * H, 0]]}},
            [(None, 150000, "1.50", 1), ("sync", 80000, "0.80", 1), (8, 240000, "2.40", 1)]),
    "tiered_tou": ({"periods": ["peak", "valley"], "tiers_wh": [1000],
                    "prices_milli_per_kwh": [[250000, 90000], [400000, 150000]],
                    "days": {"weekday": [[0, 1], [8 * H, 0]]}},
                   [("sync", 90000, "0.90", 1), (None, 150000, "1.50", 1), (8, 400000, "4.00", 1)]),
}


@pytest.mark.parametrize("kind", sorted(TARIFFS))
def test_the_price_shown_is_the_price_the_running_meter_charges(sim_meters, kind):
    tariff, steps = TARIFFS[kind]
    m = sim_meters("p-" + kind, config={"initial_balance_minor": 100000, "key_hex": signed.KEY_HEX}).start()
    ack = cmd(m, "tariff", version=2, activate_utc_s=0, tariff=tariff)
    assert ack["result"] == "ok", ack
    m.wait_for(lambda s: s["meter"]["tariff_version"] == 2)
    for move, price, text, kwh in steps:
        if move == "sync":
            assert cmd(m, "time", utc_s=m.state()["rtc_s"])["result"] == "ok"
            m.wait_for(lambda s: s["meter"]["clock_synced"])
        elif move:
            m.control({"cmd": "advance", "ms": move * H * 1000})
        # the state and the console agree once the meter has ticked at the new position
        wait_for(lambda: shown(m) == (price, str(price)), 10, "%s: price %d shown" % (kind, price))
        lcd_price(m, text)
        assert charged_by_next(m, kwh) * 1000 == price * kwh, (kind, price)
