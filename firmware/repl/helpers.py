# The technician's helpers: the globals of the serial REPL
# (firmware/repl/session.py), documented with an example each in
# docs/tech-console.md. Views return a Report (printed as lines); what
# changes the meter is privileged: it needs login() with the meter's PIN
# (firmware/repl/auth.py), goes through the object that owns the change (the
# credit engine, the durable store, the board's provisioning file), and is
# logged and sent to the server as a "tech" event naming the action.
#
# Work that waits (the modem, the self-test) is a coroutine handed to the
# session's later(): it runs with the meter's loop running, after the
# statement, and Ctrl-C cancels it.
#
# This is not a sandbox: the serial port gives Python, and Python on the
# board reaches everything. The PIN keeps the helpers that change money,
# the relay and the config out of casual hands; the port itself is behind
# the sealed terminal cover.
import asyncio
import gc

_SECRET = ("key_hex", "mqtt_password", "ppp_key", "token_key_hex", "tech_pin_hash",
           "tech_pin_salt")
_ALL = 1000


class Report:
    """Lines of text; printed one per line (repr in the REPL, str in print)."""

    def __init__(self, lines):
        self.lines = lines

    def __repr__(self):
        return "\n".join(self.lines)

    def __str__(self):
        return "\n".join(self.lines)


def _known(v):
    return "--" if v is None else str(v)


def _text(v):
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


def _last(items, n):
    return items[-n:] if n < len(items) else items


class Tools:
    def __init__(self, app, repl):
        self.app = app
        self.repl = repl
        self.auth = repl.auth

    # --- views
    def status(self):
        """One screen of health."""
        app = self.app
        core = app.core
        s = core.state()
        sess = app.session
        out = ["meter %s" % app.meter_id,
               "balance %d minor  owed %d  mode %s" % (s["balance_minor"], s["owed_minor"], s["mode"]),
               "relay %s  reason %s" % ("closed" if s["relay_closed"] else "open", s["relay_reason"]),
               "1.8.0 %d Wh  2.8.0 %d Wh  tariff v%d  warn L%d" % (
                   s["obis_1_8_0"], s["obis_2_8_0"], s["tariff_version"], s["level"]),
               "price %d milli/kWh  load %s W  voltage %s V" % (
                   s["price_milli_per_kwh"], _known(core.meas.power_w), _known(core.meas.voltage_v)),
               "seq %d  clock %s %d" % (s["seq"], "synced" if s["synced"] else "UNSYNCED", s["t"]),
               "link %s" % ("not started" if sess is None else "%s  connects %d" % (
                   "up" if sess.up else sess.stats()["state"], sess.connects)),
               "fault %s" % s.get("fault", "none")]
        if app.modem:
            h = app.modem.health()
            out.append("modem %s  signal %s dBm" % (_text(h["state"]), _known(h.get("rssi_dbm"))))
        gc.collect()
        r = self.repl.stats()
        out.append("heap free %d  repl hold max %d ms  login %s" % (
            gc.mem_free(), r["held_max_ms"], "yes" if self.auth.ok() else "no"))
        return Report(out + self._config_lines())

    def _config_lines(self):
        app = self.app
        out = []
        f = app.config_fault
        if f:
            out.append("config fault E%d %s: %s; link not started" % (app.fault_lcd(), f[0], f[1]))
        if app.cfg_unknown:
            out.append("config unknown keys (ignored): " + " ".join(app.cfg_unknown))
        return out

    def link(self):
        """The MQTT session's figures."""
        sess = self.app.session
        if sess is None:
            return Report(["link not started"] + self._config_lines())
        st = sess.stats()
        return Report(["%s %s" % (k, _text(st[k])) for k in sorted(st)])

    def screens(self):
        """Every LCD screen, rendered as text."""
        out = []
        for i, lines in enumerate(_screen_texts(self.app)):
            out.append("-- screen %d" % i)
            out.extend(lines)
        return Report(out)

    def events(self, n=10):
        """The last n events in the outbox (sent or waiting), oldest first."""
        out = []
        for e in _last(self.app.core.events.outbox.entries, n):
            out.append("%s %s" % ("sent" if e[1] else "wait", _text(e[3])))
        return Report(out or ["no events"])

    def comms(self, n=20):
        """The last n lines of the communication log."""
        return Report(["%s %s %s" % tuple(e) for e in _last(self.app.core.commlog.entries(), n)]
                      or ["no entries"])

    def topups(self, n=10):
        """Top-ups: the ledger's totals, and the last n top-up events still in the outbox."""
        import json
        led = self.app.core.engine.ledger
        out = ["topups %d minor  adjustments %d  loans %d  repaid %d  balance %d" % (
            led.topups_minor, led.adjust_minor, led.loans_minor, led.repay_minor, led.balance_minor)]
        rows = []
        for e in self.app.core.events.outbox.entries:
            if b'"topup"' in e[3]:
                d = json.loads(e[3])
                if d.get("kind") == "topup":
                    rows.append("seq %d order %s %+d minor -> %d  t %d" % (
                        d["seq"], d.get("order"), d["amount_minor"], d["balance_minor"], d["t"]))
        return Report(out + (_last(rows, n) or ["(no top-up events in the outbox)"]))

    def billing(self):
        """Registers, and the daily (last 7) and monthly frozen records."""
        r = self.app.core.regs
        t = r.telemetry()
        out = ["1.8.0 %d Wh  1.8.1-4 %d %d %d %d  2.8.0 %d Wh  1.6.0 %d W" % (
            t["1.8.0"], t["1.8.1"], t["1.8.2"], t["1.8.3"], t["1.8.4"], t["2.8.0"], t["1.6.0"]),
            "today %d Wh  yesterday %d  month %d  last month %d" % (
                t["today_wh"], t["yesterday_wh"], t["month_wh"], t["last_month_wh"])]
        for rec in _last(r.daily_records(), 7):
            out.append("day %d  1.8.0 %d  2.8.0 %d  day %d Wh" % tuple(rec))
        for rec in r.monthly_records():
            out.append("month %d  1.8.0 %d  2.8.0 %d  %d Wh  md %d W" % (
                rec[0], rec[1], rec[6], rec[7], rec[8]))
        return Report(out)

    def modem(self):
        """Signal, registration, IMEI and ICCID (as the modem task last read them)."""
        m = self.app.modem
        if m is None:
            return Report(["no modem on this board (host network)"])
        h = m.health()
        return Report(["%s %s" % (k, _text(h[k])) for k in sorted(h)])

    def at(self, command, timeout_ms=2000):
        """One AT command to the modem, between the modem task's own; its
        lines come when it is answered (timeout_ms at most, 10 s cap)."""
        m = self.app.modem
        if m is None:
            return Report(["no modem on this board (host network)"])
        if m.state == "data":
            return Report(["refused: the data call holds the modem's UART (state data); "
                           "at() works while the modem is in command mode"])
        timeout_ms = min(int(timeout_ms), 10000)

        async def job():
            final, lines = await m.at.cmd(command, timeout_ms=timeout_ms, raw_lines=True)
            for line in lines:
                print(_text(line))
            print(_text(final))
        self.repl.later(job())

    def mem(self):
        gc.collect()
        return Report(["heap free %d  used %d" % (gc.mem_free(), gc.mem_alloc())])

    # --- the self-test
    def selftest(self, click=False):
        """Pass/fail: LCD, buzzer, relay (click=True after login), storage,
        modem, clock, watchdog. Runs beside the meter; takes about 2 s."""
        if click and not self._allowed("selftest click"):
            return None
        self.repl.later(_selftest(self, click))

    # --- privileged
    def login(self, pin):
        r, text = self.auth.login(pin)
        if r == "lockout":
            self._event("lockout", text)
        elif r == "locked":
            self._event("login_locked", "")
        elif r == "wrong":
            self._event("login_failed", "")
        elif r == "ok":
            self._event("login", "")
        return Report([text])

    def logout(self):
        self.auth.logout()
        return Report(["logged out"])

    def _allowed(self, action):
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
        if not self._allowed("relay"):
            return None
        r = self._engine("relay", action, lambda e: e.manual(action))
        closed, reason = self.app.core.relay_now()
        return Report(["%s: relay %s  reason %s" % (r, "closed" if closed else "open", reason)])

    def adjust(self, minor, reason):
        """A credit adjustment (+ or - minor units), as a ledger entry."""
        if not self._allowed("adjust"):
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
        if not changes:
            return Report(["%s %r" % (k, "***" if k in _SECRET and cfg[k] else cfg[k])
                           for k in sorted(cfg)])
        if not self._allowed("config"):
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
        if not self._allowed("calibrate"):
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

    def token(self, code):
        """An offline token: prints one result line (add/set/used/invalid/...)."""
        entry = getattr(self.app.core, "token", None)
        if entry is None:
            return Report(["unavailable: this firmware has no offline tokens"])
        return Report([entry(str(code))])

    def provision(self, **keys):
        """A fresh board's meter id, keys, broker, APN and tech_pin: once."""
        if self.auth.has_pin() and not self._allowed("provision"):
            return None
        from firmware.repl.provision import provision
        ok, text = provision(self.app.board, False, **keys)
        if ok:
            self._event("provision", " ".join(sorted(keys)))
        return Report([text])

    def help(self):
        return Report(["status() screens() events(n) comms(n) topups(n) billing() link() mem()",
                       "modem() at(\"AT+CSQ\") selftest(click=False) token(\"123 456 789\")",
                       "login(pin) logout(), then: relay(\"open\"|\"close\"|\"auto\") "
                       "adjust(minor, reason) config(key=value) calibrate(v_mv, i_ma, pf_milli) "
                       "provision(...)",
                       "Ctrl-C stops your statement, never the meter; docs/tech-console.md"])


# config keys the credit engine takes while running (engine.configure)
_LIVE = ("warn_minor", "repeat_level", "silence_s", "reconnect", "emergency_minor",
         "emergency_below_minor", "friendly", "unsynced_friendly_s", "protection")


def _screen_texts(app):
    """Every LCD screen's lines, as the screens module renders them. One
    function, so that a change of the screens module has one place here."""
    from firmware.ui import screens
    snap = app.snapshot()
    return [screens.render_lines(i, snap) for i in range(len(screens.SCREENS))]


async def _selftest(t, click):
    app = t.app
    b = app.board
    core = app.core
    res = []
    # LCD: a checkerboard for a second, then the UI task draws the screen again
    b.lcd_show(bytes((0xAA, 0x55)) * 512, ["SELFTEST"])
    await asyncio.sleep_ms(1000)
    app.lcd_due = True
    res.append(("lcd", "pass", "checkerboard shown 1 s: look at it"))
    b.buzzer(True)
    await asyncio.sleep_ms(150)
    b.buzzer(False)
    res.append(("buzzer", "pass", "150 ms tone: listen for it"))
    if click:
        want = core.relay_now()[0]
        b.relay_set(not want)
        await asyncio.sleep_ms(300)
        moved = b.relay_closed() == (not want)
        core.drive_relay()
        await asyncio.sleep_ms(50)
        back = b.relay_closed() == core.relay_now()[0]
        res.append(("relay", "pass" if moved and back else "FAIL",
                    "clicked %s and back; read back %s/%s" % (
                        "open" if want else "closed", moved, back)))
        t._event("selftest", "relay click")
    else:
        res.append(("relay", "skip", "selftest(click=True) after login: cuts the supply 0.3 s"))
    try:
        import os
        path = b.flash_root() + "/selftest.tmp"
        data = bytes(range(64))
        with open(path, "wb") as f:
            f.write(data)
        with open(path, "rb") as f:
            same = f.read() == data
        os.remove(path)
        st = os.statvfs(b.flash_root())
        ok = same and not core.fault
        res.append(("storage", "pass" if ok else "FAIL", "write/read %s, %d of %d blocks free%s" % (
            "ok" if same else "MISMATCH", st[3], st[2], ", store fault " + core.fault if core.fault else "")))
    except OSError as e:
        res.append(("storage", "FAIL", repr(e)))
    m = app.modem
    if m is None:
        res.append(("modem", "skip", "no modem on this board (host network)"))
    else:
        h = m.health()
        ok = h["up"] or h["state"] in ("register", "dial")
        res.append(("modem", "pass" if ok else "FAIL", "state %s sim %s signal %s dBm %s" % (
            _text(h["state"]), _text(h.get("sim")), _known(h.get("rssi_dbm")),
            _text(h.get("fail_reason") or ""))))
    c = core.clock
    drift = b.rtc_get() - c.utc_s()
    ok = c.synced and -5 <= drift <= 5
    res.append(("clock", "pass" if ok else "FAIL", "%s, rtc %+d s from the meter's UTC" % (
        "synced" if c.synced else "NOT synced", drift)))
    stale = app.sup.stale()
    res.append(("watchdog", "pass" if stale is None else "FAIL",
                "every task checking in" if stale is None else "task %s silent" % stale))
    for name, r, why in res:
        print("%-9s %-4s %s" % (name, r, why))


def make(app, repl):
    """The REPL's globals: the helpers, and `app` for a look inside."""
    t = Tools(app, repl)
    g = {"__name__": "__main__", "app": app, "Report": Report}
    for name in ("status", "link", "screens", "events", "comms", "topups", "billing", "modem",
                 "at", "mem", "selftest", "login", "logout", "relay", "adjust", "config",
                 "calibrate", "token", "provision", "help"):
        g[name] = getattr(t, name)
    g["later"] = repl.later
    g["session"] = repl    # session.stats(): how long the REPL has held the loop
    return g
