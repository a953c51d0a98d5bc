# What the meter core shows: the state snapshot the head-end keeps and the
# figures the LCD screens draw. Read-only: nothing here changes the meter.


def state(c):
    """The state snapshot the head-end keeps (retained on .../state)."""
    e = c.engine
    closed, reason = c.relay_now()
    s = {}
    t = c.regs.telemetry()
    for k in t:
        # OBIS codes in wire keys: "1.8.0" travels as "obis_1_8_0"
        s["obis_" + k.replace(".", "_") if k[0] in "0123456789" else k] = t[k]
    ob = c.events.outbox
    s.update({"balance_minor": e.balance_minor(), "relay_closed": closed,
              "relay_reason": reason, "mode": e.policy.mode,
              "tariff_version": e.tariff.version, "level": e.level,
              "price_milli_per_kwh": e.price_now()[0],
              "seq": c.events.seq, "t": c.clock.utc_s(), "synced": c.clock.synced,
              "owed_minor": e.ledger.owed_minor(),
              "evt_dropped": list(ob.dropped),
              "evt_dropped_total": ob.dropped_total})
    if c.fault:
        s["fault"] = c.fault
        s["lcd_error"] = c.durable.store.lcd_code()
    return s


def snapshot(c):
    """What the LCD screens show (None: not known on this meter)."""
    e = c.engine
    closed, reason = c.relay_now()
    return {"balance_minor": e.balance_minor(), "import_wh": c.regs.import_wh,
            "today_wh": c.regs.today_wh, "relay_closed": closed,
            "relay_reason": reason, "warning": e.level, "load_w": c.meas.power_w,
            "voltage_v": c.meas.voltage_v,
            "seq": c.events.seq, "decimals": c.cfg["decimals"], "currency": c.cfg["currency"],
            "tariff_version": e.tariff.version, "mode": e.policy.mode,
            "price_milli_per_kwh": e.price_now()[0],
            "clock_synced": c.clock.synced, "fault": c.fault,
            "error_code": c.durable.store.lcd_code() if c.fault else 0,
            "owed_minor": e.ledger.owed_minor()}
