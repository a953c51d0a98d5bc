# The technician's privileged helpers (docs/tech-console.md, "Privileged
# actions"): relay override, credit adjustment, config change, calibration,
# provisioning. Each needs a live login (firmware/repl/auth.py), changes the
# meter through the object that owns the change (the credit engine, the
# durable store, the board's provisioning file), and is logged and sent to
# the server as a "tech" event naming the action. Loaded for each call and
# dropped after it (firmware/repl/session.py): a session holds none of it.
from firmware.repl.session import Report

_SECRET = ("key_hex", "mqtt_password", "ppp_key", "token_key_hex", "tech_pin_hash",
           "tech_pin_salt")

# config keys the credit engine takes while running (engine.configure)
_LIVE = ("warn_minor", "repeat_level", "silence_s", "reconnect", "emergency_minor",
         "emergency_below_minor", "friendly", "unsynced_friendly_s", "protection")



class Admin:
    def __init__(self, repl):
        self.app = repl.app
        self.auth = repl.get_auth()

    def login_event(self, r, text):
        """A login's outcome to the event log: every wrong PIN and lockout too."""
        if r == "lockout":
            self._event("lockout", text)
        elif r == "locked":
            self._event("login_locked", "")
        elif r == "wrong":
            self._event("login_failed", "")
        elif r == "ok":
            self._event("login", "")

    def allowed(self, action):
        if self.auth.ok():
            return True
        left = self.auth.locked_ms()
        print("refused: %s needs login(pin)%s" % (action, " (locked %d s)" % (
            (left + 999) // 1000) if left else ""))
        return False

    def _event(self, action, detail):
        """A technician's action: to the event log, and to the server (kind "tech")."""
        core = self.app.core
        core.commlog.add("tech", (action + " " + detail).strip())
        core.begin()
        try:
            core.events.add("tech", {"action": action, "detail": str(detail)})
            if not core.fault:
                core.durable.commit()
        finally:
            core.end()
        self.app.state_dirty = self.app.lcd_due = True

    def _engine(self, action, detail, fn):
        """Run an engine change as the commands do: events, relay, one commit."""
        core = self.app.core
        if core.fault:
            return "store_failed"
        core.begin()
        try:
            r = fn(core.engine)
            if r == "ok":
                core.events.from_engine(core.engine)
                core.drive_relay()
                core.durable.dirty = True
        finally:
            core.end()
        if r == "ok":
            self._event(action, detail)
        return r

    def relay(self, action):
        """relay("open"|"close"|"auto"): the technician's override; the reason
        (technician_open/technician_close) shows on the LCD and in the state."""
        if not self.allowed("relay"):
            return None
        r = self._engine("relay", action, lambda e: e.manual(action))
        closed, reason = self.app.core.relay_now()
        return Report(["%s: relay %s  reason %s" % (r, "closed" if closed else "open", reason)])

    def adjust(self, minor, reason):
        """A credit adjustment (+ or - minor units), as a ledger entry."""
        if not self.allowed("adjust"):
            return None
        if not isinstance(reason, str) or not reason.strip():
            return Report(["refused: say why (adjust(minor, \"reason\"))"])
        core = self.app.core
        ref = "tech-%d-%d" % (core.clock.utc_s(), core.engine.ledger.seq)
        r = self._engine("adjust", "%d %s" % (minor, reason),
                         lambda e: e.adjust(ref, minor, "tech: " + reason))
        return Report(["%s: balance %d minor" % (r, core.engine.balance_minor())])

    def config(self, **changes):
        """config(): every key; config(key=value, ...): set (after login)."""
        cfg = self.app.cfg
        if not changes:   # reading needs no login
            return Report(["%s %r" % (k, "***" if k in _SECRET and cfg[k] else cfg[k])
                           for k in sorted(cfg)])
        if not self.allowed("config"):
            return None
        from firmware.repl import configkeys
        bad = []
        for k in changes:
            why = configkeys.check(k, changes[k])
            if why:
                bad.append("refused: %s: %s" % (k, why))
        if bad:
            return Report(bad)
        board = self.app.board
        try:
            prov = board.provisioning()
        except (OSError, ValueError):
            prov = {}
        prov.update(changes)
        board.provisioning_save(prov)
        cfg.update(changes)
        live = {}
        for k in changes:
            if k in _LIVE:
                live[k] = changes[k]
        if live:
            self._engine("config", " ".join(sorted(changes)), lambda e: e.configure(live))
        else:
            self._event("config", " ".join(sorted(changes)))
        return Report(["saved: %s (%s)" % (" ".join(sorted(changes)),
                                           "in force now" if live else "in force after a restart")])

    def calibrate(self, ref_v_mv, ref_i_ma, ref_pf_milli, lagging=True):
        """From a reference load on the terminals (ADC meters): gains and
        phase from one capture (firmware/metering/calibration.py), kept
        with the meter's state."""
        if not self.allowed("calibrate"):
            return None
        core = self.app.core
        adc = core.revenue.adc if core.revenue else None
        if adc is None or core.vbuf is None:
            return Report(["refused: this meter meters by pulses (imp_per_kwh is its constant); "
                           "calibrate() is for ADC metering"])
        from firmware.metering.calibration import calibrate as cal_fn
        n = self.app.board.adc_capture(core.vbuf, core.ibuf)
        try:
            cal = cal_fn(core.vbuf, core.ibuf, n, self.app.board.ADC_RATE_HZ, ref_v_mv, ref_i_ma,
                         ref_pf_milli, lagging, base=core.durable.cal)
        except ValueError as e:
            return Report(["refused: %s" % e])
        adc.configure(cal)
        core.begin()
        try:
            core.durable.cal = cal
            core.durable.dirty = True
        finally:
            core.end()
        self._event("calibrate", "%d mV %d mA pf %d" % (ref_v_mv, ref_i_ma, ref_pf_milli))
        return Report(["calibrated: v_uv_per_count %d  i_ua_per_count %d  delay_q8 %d" % (
            cal["v_uv_per_count"], cal["i_ua_per_count"], cal["delay_q8"])])

    def provision(self, **keys):
        """A fresh board's meter id, keys, broker, APN and tech_pin: once."""
        if self.auth.has_pin() and not self.allowed("provision"):
            return None
        from firmware.repl.provision import provision
        ok, text = provision(self.app.board, False, **keys)
        if ok:
            self._event("provision", " ".join(sorted(keys)))
        return Report([text])
