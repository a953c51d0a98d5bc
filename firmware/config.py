# Provisioning config: factory defaults, overridden by the board's provisioning
# file (meter id, keys, broker, tariff). Later changes from the server are kept
# with the meter's state, not here.
#
# This file is the schema: DEFAULTS and OPTIONAL together are every key the
# firmware reads (tests/test_config.py checks the firmware against them). A
# key in neither is reported at boot (log, commlog, console), not ignored.
import binascii
from micropython import const

_KEY_BYTES = const(32)   # HMAC-SHA256 key shared with the head-end (docs/protocol.md)

DEFAULTS = {
    "meter_id": "sim-0001",
    "currency": "",
    "decimals": 2,
    "imp_per_kwh": 1000,
    "price_milli_per_kwh": 150000,   # 150 minor units (1.50) per kWh, in thousandths
    "initial_balance_minor": 0,
    "broker_host": "127.0.0.1",
    "broker_port": 1883,
    "mqtt_user": None,
    "mqtt_password": None,
    "keepalive_s": 120,
    "state_every_s": 300,            # periodic retained state: brings charging to the server
    "utc_offset_s": 0,
}

# Known keys without a default here: the module that reads them has its own,
# or their absence means "not used" (no TLS, no PAP login). One string, not a
# tuple of strings: it stays in the code image, where each word of a tuple
# would be interned in the heap (the heap is the ESP32's scarcest resource).
OPTIONAL = (" key_hex"              # the meter's key, 64 hex digits; none = no link (E61)
            " ota_key_hex"          # update bundles' signing key (ota/offer.py); none = no updates
            " broker_ca_hex"        # broker CA (DER, hex): TLS with verification
            " apn ppp_user ppp_key"                            # link/modem.py, boards/esp32.py
            " tariff mode warn_minor repeat_level silence_s"   # credit/ (meter._CREDIT_KEYS)
            " warn_days"                                       # credit/forecast.py, policy.py
            " quiet_hours"                                     # ui/buzzer.py
            " reconnect emergency_minor emergency_below_minor"
            " friendly unsynced_friendly_s protection"
            " metering_source crosscheck_pct"                  # metering/revenue.py
            " cf1_mhz_per_v pulse_power_timeout_s"             # metering/instruments.py
            " risk_wh risk_s tick_wh"                          # store/policy.py
            " tech_pin_hash tech_pin_salt"                     # repl/auth.py
            " token_key_hex token_starting_code token_value_divider "   # tokens/entry.py
            " language ")                                      # ui/panel.py: "en", "fr"

# Provisioning faults: code -> number shown on the LCD as "E<n>". The store's
# are E51-E55 (store/store.py FAULT_LCD); these are the E6x family.
FAULT_LCD = {
    "key_missing": 61,     # no key_hex: the link is not started
    "key_bad": 62,         # key_hex not 64 hex digits, or all zeros
    "config_missing": 63,  # the provisioning file is not there
    "config_bad": 64,      # the provisioning file is not a JSON object
}


def read(path):
    """The provisioning file at `path` as a dict. Raises OSError (no file) or
    ValueError (not a JSON object) with a message that names the file
    (MicroPython's json gives no position; its message is kept)."""
    import json
    try:
        f = open(path)
    except OSError as e:
        raise OSError("config %s: cannot open (%s)" % (path, e))
    try:
        with f:
            obj = json.load(f)
    except (ValueError, OSError) as e:
        raise ValueError("config %s: not valid JSON (%s)" % (path, e))
    if not isinstance(obj, dict):
        raise ValueError("config %s: not a JSON object" % path)
    return obj


def read_fault(err):
    """The fault code of an exception from read()."""
    return "config_missing" if isinstance(err, OSError) else "config_bad"


def load(provisioning):
    cfg = dict(DEFAULTS)
    cfg.update(provisioning or {})
    return cfg


def unknown_keys(provisioning):
    """Keys of the provisioning file the firmware does not read (a typo, or a
    setting from another firmware), sorted."""
    return sorted(k for k in (provisioning or {}) if not known(k))


def known(key):
    return key in DEFAULTS or (" " + key + " ") in OPTIONAL


def link_key(cfg):
    """(key bytes, None) for a usable key, else (None, (fault code, why)).
    A meter never signs with a made-up key: without a real one it has no link."""
    k = cfg.get("key_hex")
    if k is None or k == "":
        return None, ("key_missing", "no key_hex")
    if not isinstance(k, str):
        return None, ("key_bad", "key_hex is not a string")
    if len(k) != 2 * _KEY_BYTES:
        return None, ("key_bad", "key_hex has %d digits, needs %d" % (len(k), 2 * _KEY_BYTES))
    try:
        key = binascii.unhexlify(k)
    except ValueError:
        return None, ("key_bad", "key_hex is not hex")
    if not any(key):
        return None, ("key_bad", "key_hex is all zeros")
    return key, None
