# What the technician's config(key=value) accepts, key by key: the schema of
# firmware/config.py (DEFAULTS, OPTIONAL) with the type and range of each
# value. Loaded by the REPL only. check() returns None or the reason.
from firmware import config

# keys written once by provision(), never by config()
PROVISION_ONLY = ("meter_id", "key_hex", "tech_pin_hash", "tech_pin_salt", "mqtt_user",
                  "mqtt_password", "broker_host", "broker_port", "apn", "ppp_user", "ppp_key",
                  "broker_ca_hex")

# key -> (kind, low, high): kind "int", "str", "dict", "list" or a tuple of allowed strings
RULES = {
    "decimals": ("int", 0, 4),
    "imp_per_kwh": ("int", 1, 100000),
    "price_milli_per_kwh": ("int", 0, 10 ** 9),
    "initial_balance_minor": ("int", -10 ** 9, 10 ** 9),
    "keepalive_s": ("int", 10, 3600),
    "state_every_s": ("int", 10, 86400),
    "utc_offset_s": ("int", -50400, 50400),
    "currency": ("str", 0, 8),
    "mode": (("prepaid", "postpaid"), 0, 0),
    "reconnect": (("press", "auto"), 0, 0),
    "metering_source": (("pulse", "adc", "both"), 0, 0),
    "warn_minor": ("list", 0, 4),
    "repeat_level": ("int", 1, 4),
    "silence_s": ("int", 0, 86400),
    "emergency_minor": ("int", 0, 10 ** 7),
    "emergency_below_minor": ("int", 0, 10 ** 7),
    "unsynced_friendly_s": ("int", 0, 10 ** 7),
    "crosscheck_pct": ("int", 1, 100),
    "cf1_mhz_per_v": ("int", 1, 10 ** 7),
    "pulse_power_timeout_s": ("int", 1, 86400),
    "risk_wh": ("int", 1, 1000),
    "risk_s": ("int", 1, 3600),
    "tick_wh": ("int", 1, 100),
    "tariff": ("dict", 0, 0),
    "friendly": ("dict", 0, 0),
    "protection": ("dict", 0, 0),
}


def check(key, value):
    if not config.known(key):
        return "unknown key (firmware/config.py lists the keys)"
    if key in PROVISION_ONLY:
        return "set once by provision(), not by config()"
    rule = RULES.get(key)
    if rule is None:
        return "not settable from the console"
    kind, low, high = rule
    if isinstance(kind, tuple):
        return None if value in kind else "must be one of " + ", ".join(kind)
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            return "must be an integer"
        if not low <= value <= high:
            return "must be from %d to %d" % (low, high)
    elif kind == "str":
        if not isinstance(value, str) or len(value) > high:
            return "must be a string of at most %d characters" % high
    elif kind == "list":
        if not isinstance(value, (list, tuple)) or len(value) > high or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
            return "must be a list of at most %d integers >= 0" % high
    elif not isinstance(value, dict):
        return "must be a dict"
    return None
