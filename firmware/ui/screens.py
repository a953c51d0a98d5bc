# What the LCD shows. Pure: takes a snapshot dict of the meter, returns text lines.
# The customer cycles the screens with short presses; the balance screen is home.
from micropython import const

HOME = const(0)
_COLS = const(16)   # characters per LCD line (ui/render.py's 8x8 font on 128 px)
UNKNOWN = "--"      # a value this meter cannot measure (e.g. voltage on a pulse-only board)


def _money(minor, decimals=2):
    sign = "-" if minor < 0 else ""
    minor = -minor if minor < 0 else minor
    unit = 10 ** decimals
    return "%s%d.%0*d" % (sign, minor // unit, decimals, minor % unit)


def _kwh(wh):
    return "%d.%03d" % (wh // 1000, wh % 1000)


def _value(v):
    return UNKNOWN if v is None else "%d" % v


def _cut(reason):
    """'CUT: <reason>' on one line, or wrapped after an '_' onto a second:
    the reason is shown whole, in the same words the state and events use."""
    text = "CUT: " + reason
    if len(text) <= _COLS:
        return [text]
    i = text.rfind("_", 0, _COLS)
    if i < 0:
        i = _COLS - 1
    return [text[:i + 1], text[i + 1:]]


def balance(s):
    if s.get("fault"):
        # the stored balance cannot be trusted: show no number rather than a wrong one
        return ["METER FAULT", " E%d" % s.get("error_code", 0), "", "SUPPLY OFF",
                "CALL SERVICE"] + _cut(s.get("relay_reason") or "store_fault")
    relay = "ON" if s["relay_closed"] else "OFF"
    lines = ["BALANCE", " " + _money(s["balance_minor"], s.get("decimals", 2)) + " " + s.get("currency", ""),
             "SUPPLY " + relay, "LOAD %s W" % _value(s.get("load_w")),
             "VOLTAGE %s V" % _value(s.get("voltage_v"))]
    if s.get("warning"):
        lines.append("LOW CREDIT L%d" % s["warning"])
    if s.get("relay_reason") and not s["relay_closed"]:
        lines.extend(_cut(s["relay_reason"]))
    if s.get("link_fault"):  # metering goes on; the meter has no link (firmware/config.py)
        lines.append("E%d CALL SERVICE" % s["link_fault"])
    return lines


def energy(s):
    return ["ENERGY 1.8.0", " " + _kwh(s["import_wh"]) + " kWh", "", "TODAY",
            " " + _kwh(s.get("today_wh", 0)) + " kWh"]


def tariff(s):
    # the price of the next kWh now (CreditEngine.price_now: tier and period
    # included), in whole minor units as the customer's currency shows them
    p = s.get("price_milli_per_kwh")
    price = UNKNOWN if p is None else _money(p // 1000, s.get("decimals", 2))
    return ["TARIFF v%s" % s.get("tariff_version", 0),
            " " + price + "/kWh",
            "", "MODE " + s.get("mode", "prepaid").upper()]


def status(s):
    link = "UP" if s.get("link_up") else ("OFF E%d" % s["link_fault"] if s.get("link_fault") else "DOWN")
    return ["METER " + s.get("meter_id", "?"), "LINK " + link,
            "SIG %s dBm" % s.get("signal_dbm", "--"), "SEQ %d" % s.get("seq", 0),
            "CLOCK " + ("OK" if s.get("clock_synced") else "UNSYNC")]


SCREENS = (balance, energy, tariff, status)


def render_lines(index, snapshot):
    return SCREENS[index % len(SCREENS)](snapshot)
