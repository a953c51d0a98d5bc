# The technician's views and the helpers that wait (docs/tech-console.md):
# status(), screens(), events(n), comms(n), topups(n), billing(), link(),
# modem(), at(), selftest(), login(), logout(), token(). Each returns a
# Report (printed as lines). This module is loaded for each call and dropped
# after it (firmware/repl/session.py): a session holds none of its code.
#
# Work that waits (the modem, the self-test) is a coroutine handed to the
# session's later(): it runs with the meter's loop running, after the
# statement, and Ctrl-C cancels it.
import gc

from firmware.repl.session import Report
from firmware.transient import once


def _known(v):
    return "--" if v is None else str(v)


def _text(v):
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


def _last(items, n):
    return items[-n:] if n < len(items) else items


class Tools:
    def __init__(self, repl):
        self.app = repl.app
        self.repl = repl

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
            gc.mem_free(), r["held_max_ms"], "yes" if self.repl.auth and self.repl.auth.ok() else "no"))
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
        """The last n events, oldest first: the outbox's (sent or waiting),
        then the fault state's live ones the link has not taken (never stored)."""
        import json
        out = []
        ev = self.app.core.events
        for e in _last(ev.outbox.entries, n):
            out.append("%s %s" % ("sent" if e[1] else "wait", _text(e[3])))
        for e in _last(ev.link_events, n):
            out.append("live " + json.dumps(e))
        return Report(_last(out, n) or ["no events"])

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
            final, lines = await m.at.cmd(command, b"", timeout_ms)   # every line it answers
            for line in lines:
                print(_text(line))
            print(_text(final))
        self.repl.later(job())

    # --- the self-test
    def selftest(self, click=False):
        """Pass/fail: LCD, buzzer, relay (click=True after login), storage,
        modem, clock, watchdog. Runs beside the meter; takes about 2 s."""
        adm = _admin(self.repl) if click else None
        if click and not adm.allowed("selftest click"):
            return None
        self.repl.later(once("firmware.repl.selftest").run(self.app, adm, click))

    # --- the PIN (firmware/repl/auth.py); what it opens is in admin.py
    def login(self, pin):
        r, text = self.repl.get_auth().login(pin)
        if r != "no_pin":
            _admin(self.repl).login_event(r, text)
        return Report([text])

    def logout(self):
        if self.repl.auth:
            self.repl.auth.logout()
        return Report(["logged out"])

    def token(self, code):
        """An offline token (firmware/tokens/, docs/tokens.md): the one result
        line "<code> <amount_minor> <balance_minor>[ #<count>]", code one of
        add set used invalid locked disable sync."""
        app = self.app
        f = app.core.facade
        if not hasattr(f, "token"):
            return Report(["unavailable: this firmware has no offline tokens"])
        gc.collect()   # the commit needs a few KB in one piece (as the keypad does)
        try:
            line = f.token(str(code))
        except Exception as e:
            # halfway: part of the change may be in RAM, none on the flash;
            # restart from the flash state (as the keypad does): type it again
            app.log("token", "internal error", repr(e))
            app.board.reset()
            raise
        app.state_dirty = app.lcd_due = True
        return Report([line])

    def help(self):
        return Report(["status() screens() events(n) comms(n) topups(n) billing() link()",
                       "modem() at(\"AT+CSQ\") selftest(click=False) token(\"123 456 789\")",
                       "login(pin) logout(), then: relay(\"open\"|\"close\"|\"auto\") "
                       "adjust(minor, reason) config(key=value) calibrate(v_mv, i_ma, pf_milli) "
                       "provision(...)",
                       "Ctrl-C stops your statement, never the meter; docs/tech-console.md"])


_N_SCREENS = 12   # the front panel's screens (ui/panel.py _N_SCREENS)
_ICONS = " .:|#!+-^@*&"   # render.py's icon codes 1-11 as ASCII


def _screen_texts(app):
    """Every LCD screen's rows, as the front panel writes them (ui/screens.py
    fill and draw), into a renderer of its own: the shown frame is not
    touched. One function, so that a change of the screens has one place here."""
    from firmware.ui import render, screens, texts
    t = texts.get(app.cfg.get("language") or b"en") or texts.get(b"en")
    r = render.Renderer(t)
    v = screens.view(app.meter_id, app.cfg["currency"])
    screens.fill(v, app, app.ui.fault)
    out = []
    for k in range(_N_SCREENS):
        screens.draw(r, v, k)
        rows = r.rows
        out.append(["".join(_ICONS[c] if c < 12 else chr(c) for c in rows[y:y + 16]).rstrip()
                    for y in range(0, len(rows), 16)])
    return out


def _admin(repl):
    # the privileged helpers' code, for this call (firmware/repl/admin.py)
    return once("firmware.repl.admin").Admin(repl)
