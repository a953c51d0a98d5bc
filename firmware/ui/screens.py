# What the LCD shows. Pure: takes a snapshot dict of the meter, returns text lines.
# The customer cycles the screens with short presses; the balance screen is home.
from micropython import const

HOME = const(0)


def _money(minor, decimals=2):
    sign = "-" if minor < 0 else ""
    minor = -minor if minor < 0 else minor
    unit = 10 ** decimals
    return "%s%d.%0*d" % (sign, minor // unit, decimals, minor % unit)


def _kwh(wh):
    return "%d.%03d" % (wh // 1000, wh % 1000)


def balance(s):
    if s.get("fault"):
        # the stored balance cannot be trusted: show no number rather than a wrong one
        return ["METER FAULT", " E%d" % s.get("error_code", 0), "", "SUPPLY OFF",
                "CALL SERVICE"]
    relay = "ON" if s["relay_closed"] else "OFF"
    lines = ["BALANCE", " " + _money(s["balance_minor"], s.get("decimals", 2)) + " " + s.get("currency", ""),
             "", "SUPPLY " + relay, "LOAD %d W" % s.get("load_w", 0)]
    if s.get("warning"):
        lines.append("LOW CREDIT L%d" % s["warning"])
    if s.get("relay_reason") and not s["relay_closed"]:
        lines.append("CUT: " + s["relay_reason"])
    if s.get("link_fault"):  # metering goes on; the meter has no link (firmware/config.py)
        lines.append("E%d CALL SERVICE" % s["link_fault"])
    return lines


def energy(s):
    return ["ENERGY 1.8.0", " " + _kwh(s["import_wh"]) + " kWh", "", "TODAY",
            " " + _kwh(s.get("today_wh", 0)) + " kWh"]


def tariff(s):
    return ["TARIFF v%s" % s.get("tariff_version", 0),
            " " + _money(s.get("price_minor_per_kwh_x1000", 0) // 1000) + "/kWh",
            "", "MODE " + s.get("mode", "prepaid").upper()]


def status(s):
    link = "UP" if s.get("link_up") else ("OFF E%d" % s["link_fault"] if s.get("link_fault") else "DOWN")
    return ["METER " + s.get("meter_id", "?"), "LINK " + link,
            "SIG %s dBm" % s.get("signal_dbm", "--"), "SEQ %d" % s.get("seq", 0),
            "CLOCK " + ("OK" if s.get("clock_synced") else "UNSYNC")]


SCREENS = (balance, energy, tariff, status)


def render_lines(index, snapshot):
    return SCREENS[index % len(SCREENS)](snapshot)
