# A fresh board's provisioning from the technician's REPL: meter id, keys,
# broker, APN and the technician PIN, written once into the board's
# provisioning file (board.provisioning_save). Afterwards it is refused,
# except in maintenance mode (boot.py: the query button held at power-up,
# the app not started), where the plain REPL runs it as
#     from firmware.repl.provision import provision
#     provision(_board, True, meter_id="m-0042", key_hex="...", tech_pin="2468")
import binascii
import os

from firmware import config

KEYS = ("meter_id", "key_hex", "broker_host", "broker_port", "mqtt_user", "mqtt_password",
        "broker_ca_hex", "apn", "ppp_user", "ppp_key")


def provisioned(prov):
    """A board counts as provisioned once its file has a meter id and a key."""
    return bool(prov.get("meter_id") and prov.get("key_hex"))


def provision(board, maintenance, **keys):
    """Returns (ok, text). `tech_pin` is stored as its salted hash."""
    try:
        prov = board.provisioning()
    except (OSError, ValueError):
        prov = {}
    if provisioned(prov) and not maintenance:
        return False, "refused: already provisioned as %s (maintenance mode can re-provision)" % (
            prov.get("meter_id"))
    pin = keys.pop("tech_pin", None)
    for k in keys:
        if k not in KEYS:
            return False, "refused: %s is not a provisioning key (%s, tech_pin)" % (k, " ".join(KEYS))
    if "key_hex" in keys:
        _, fault = config.link_key({"key_hex": keys["key_hex"]})
        if fault:
            return False, "refused: " + fault[1]
    if "broker_port" in keys and not (isinstance(keys["broker_port"], int)
                                      and 0 < keys["broker_port"] < 65536):
        return False, "refused: broker_port must be an integer from 1 to 65535"
    for k in keys:
        if k != "broker_port" and not isinstance(keys[k], str):
            return False, "refused: %s must be a string" % k
    if pin is not None:
        pin = str(pin)
        if not (4 <= len(pin) <= 12 and pin.isdigit()):
            return False, "refused: tech_pin must be 4 to 12 digits"
        from firmware.repl.auth import pin_hash
        salt = os.urandom(16)
        keys["tech_pin_salt"] = binascii.hexlify(salt).decode()
        keys["tech_pin_hash"] = pin_hash(pin, salt)
    prov.update(keys)
    if not provisioned(prov):
        return False, "refused: a provisioning needs at least meter_id and key_hex"
    board.provisioning_save(prov)
    return True, "provisioned %s (%s); restart the meter to use it" % (
        prov["meter_id"], " ".join(sorted(k for k in keys if k != "tech_pin_hash")))
