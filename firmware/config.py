# Provisioning config: factory defaults, overridden by the board's provisioning
# file (meter id, keys, broker, tariff). Later changes from the server are kept
# with the meter's state, not here.
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


def load(provisioning):
    cfg = dict(DEFAULTS)
    cfg.update(provisioning or {})
    return cfg
