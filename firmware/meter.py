# The meter core: sequences the pure layers once per tick and keeps them
# durable. Pulses/ADC -> revenue Wh -> registers and the credit engine ->
# relay, buzzer, events. It is also the facade the command dispatcher, the UI
# and the technician talk to. The maths lives in metering/ and credit/; the
# persistence scheme in store/ (docs/storage.md); this file only wires them.
#
# Durability rules (docs/storage.md, "The meter's records"):
# - A full snapshot is committed after anything that is not plain charging:
#   a command, a press, any engine or metering event, a closed charge entry,
#   a day change. Top-ups are acknowledged only after that commit.
# - Between snapshots, plain charging is saved in small hot checkpoints
#   (CheckpointPolicy: at most 10 Wh or 60 s at risk). A hot checkpoint holds
#   the exact money (balance, sub-unit remainder) and energy totals, so a cut
#   never changes the balance the customer saw at the last checkpoint.
# - Events get their seq from the outbox; the committed state records the
#   highest seq, and after a cut the outbox forgets anything above it, so
#   no event is published that the state does not also contain.
import array
import time

from firmware.clock import Clock
from firmware.credit.engine import CreditEngine
from firmware.link.commlog import CommLog
from firmware.link.outbox import CRITICAL, Outbox
from firmware.metering.instruments import Instruments
from firmware.metering.registers import Registers
from firmware.metering.revenue import Revenue
from firmware.store.policy import CheckpointPolicy
from firmware.store.store import Store, StoreFault
from firmware.ui import buzzer

ADC_SAMPLES = 640
BILLING_PAGE = 31  # frozen records per billing reply (31 daily ones: ~1 KB)
STORE_FAULT = "store_fault"  # the relay's reason while the store has failed

# config keys the credit engine takes from the provisioning config
_CREDIT_KEYS = ("initial_balance_minor", "mode", "tariff", "warn_minor", "repeat_level",
                "silence_s", "reconnect", "emergency_minor", "emergency_below_minor",
                "friendly", "unsynced_friendly_s", "protection")


def _credit_cfg(cfg):
    c = {}
    for k in _CREDIT_KEYS:
        if k in cfg:
            c[k] = cfg[k]
    if "tariff" not in c:
        c["tariff"] = {"version": 1, "price_milli_per_kwh": cfg["price_milli_per_kwh"]}
    return c


class MeterCore:
    def __init__(self, board, cfg, fault=None):
        # fault: (code, LCD number) of a provisioning the app cannot use
        # (firmware/config.py): the store's safe state under that code
        self.board = board
        self.cfg = cfg
        self.meter_id = cfg["meter_id"]
        self._busy = 0             # depth of work in progress (see begin())
        self._pf_pending = False   # the power failed during that work
        self.clock = Clock(board, cfg.get("utc_offset_s", 0))
        root = board.flash_root()
        self.store = Store(root)
        self.commlog = CommLog(self.clock.utc_s)
        self.policy = CheckpointPolicy(cfg.get("risk_wh", 10), cfg.get("risk_s", 60),
                                       cfg.get("tick_wh", 4))
        self.fault = None
        self.link_events = []      # events that could not be queued durably (fault state)
        self.vbuf = self.ibuf = None
        self.dispatcher = None
        state, status = self.store.load()
        self.boot_status = status
        if fault and not status.startswith("fault:"):
            self.store.hold(fault[0], fault[1])
            status = "fault:" + fault[0]
        if status.startswith("fault:"):
            self._enter_fault(status[6:], state)
        else:
            self._build(state)
        self.outbox = Outbox(root + "/outbox", self.meter_id, seq_floor=self.seq)
        self._forget_uncommitted_events()
        # Events above this seq are not durable yet: the app never publishes
        # them, so a seq the server has seen is never reused after a cut.
        self.durable_seq = self.seq
        self.last_ms = self.clock.mono_ms()
        self.carry_ms = 0
        self.unsaved_wh = 0
        self.unsaved_since_ms = self.last_ms
        self.exported_wh = 0       # export Wh the last tick registered
        self.dirty = False
        # power and voltage, from what this board can measure (metering/instruments.py)
        self.meas = Instruments(cfg["imp_per_kwh"], board.pulse_count(), board.cf1_count(),
                                self.last_ms, cfg.get("cf1_mhz_per_v"),
                                cfg.get("pulse_power_timeout_s", 300))
        self.beeps_seen = self.engine.policy.beeps
        self.chirp_until = 0
        self.last_days_n = self.regs.days_n
        self.last_months_n = self.regs.months_n
        if status == "factory":
            self.commit()
        elif status == "recovered":
            self._event("fault", {"code": "store_recovered"})
            self.commit()
        self.engine.tick(0, self.clock.local_s(), 0, self.clock.synced)
        self._after_change()
        board.on_power_fail(self._power_failing)

    def _power_failing(self, _):
        # The supervisor saw the supply collapse: the hold-up capacitor gives
        # a few milliseconds, enough for one small hot record. Nothing since
        # the last checkpoint is lost. (Runs via micropython.schedule.)
        if self._busy:
            self._pf_pending = True   # end() writes it once the work is whole
            return
        if not self.fault:
            self._busy = 1
            try:
                self.tick()
                self.checkpoint()
            finally:
                self._busy = 0

    # --- work in progress vs the power-fail callback
    # On the ESP32, micropython.schedule runs the power-fail callback between
    # any two bytecodes of the main code: inside a tick, inside a commit,
    # or inside a command between its credit and its commit. A checkpoint
    # there would make half a change durable (a top-up in the balance but
    # not yet in the order record: credited again when the head-end re-sends
    # it) or name a snapshot that is still being written. So while such work
    # runs the callback only takes note, and the end of the work writes the
    # checkpoint: the same few milliseconds later, with everything whole.
    # Bracketed: a tick (and the commits it makes), a press, a whole command
    # (firmware/app.py); a commit made outside these must bracket itself.
    def begin(self):
        self._busy += 1

    def end(self):
        self._busy -= 1
        if not self._busy and self._pf_pending:
            self._pf_pending = False
            self._power_failing(None)

    # --- boot
    def _build(self, state):
        cfg = self.cfg
        state = state or {}
        clock_lost = self.clock.restore(state.get("clock"))
        if "eng" in state:
            self.engine = CreditEngine.from_dict(state["eng"])
        else:
            self.engine = CreditEngine(_credit_cfg(cfg))
        self.regs = Registers.from_dict(state["regs"]) if "regs" in state else Registers()
        self.revenue = Revenue(cfg.get("metering_source", "pulse"), cfg["imp_per_kwh"],
                               self.board.ADC_RATE_HZ, state.get("cal"),
                               cfg.get("crosscheck_pct", 3), on_event=self._metering_event,
                               pulse_base=self.board.pulse_count())
        if "rev" in state:
            self.revenue.restore(state["rev"])
        if self.revenue.adc:
            self.vbuf = array.array("h", bytes(2 * ADC_SAMPLES))
            self.ibuf = array.array("h", bytes(2 * ADC_SAMPLES))
        self.seq = state.get("seq", 0)
        self.disp_state = state.get("disp")
        self.cal = state.get("cal")
        hot = state.get("h")
        if hot and "snap_h" in state and hot != state["snap_h"]:
            self._apply_hot(state["snap_h"], hot)
        if clock_lost:
            self.commlog.add("clk", "rtc lost")

    def _enter_fault(self, code, evidence):
        # Safe state (docs/storage.md): relay open, E5x on the LCD, a live
        # fault event, energy counted in RAM only, nothing written.
        self.fault = code
        self.engine = CreditEngine(_credit_cfg(self.cfg))
        self.regs = Registers()
        self.revenue = Revenue("pulse", self.cfg["imp_per_kwh"], pulse_base=self.board.pulse_count())
        self.seq = (evidence or {}).get("seq", 0)
        self.disp_state = (evidence or {}).get("disp")
        self.cal = None
        self.board.relay_set(False)
        self.link_events.append({"kind": "fault", "code": code, "lcd": self.store.lcd_code()})
        # the opening has its reason, as every other opening does (no balance:
        # the stored one cannot be trusted)
        self.link_events.append({"kind": "relay", "closed": 0, "reason": STORE_FAULT})

    def attach_dispatcher(self, dispatcher):
        self.dispatcher = dispatcher
        if self.disp_state:
            dispatcher.load(self.disp_state)

    def _forget_uncommitted_events(self):
        ob = self.outbox
        if ob.next_seq - 1 > self.seq and not self.fault:
            ob.entries = [e for e in ob.entries if e[2] <= self.seq]
            ob.next_seq = self.seq + 1
            ob.save()

    # --- the hot checkpoint: exact money and energy since the last snapshot
    def _hot(self):
        led = self.engine.ledger
        return [self.regs.import_wh, led.balance_minor, led.rem_micro,
                self.revenue.pulse.rem if self.revenue.pulse else 0, self.seq,
                self.clock.local_s()]

    def _apply_hot(self, snap, hot):
        wh = hot[0] - snap[0]
        minor = snap[1] - hot[1]
        led = self.engine.ledger
        led.balance_minor = hot[1]
        led.rem_micro = hot[2]
        led.charges_minor += minor
        led.open_minor += minor
        led.charged_wh += wh
        led.open_wh += wh
        self.engine.month_wh += wh
        self.engine.now_s = max(self.engine.now_s, hot[5])
        if self.revenue.pulse:
            self.revenue.pulse.rem = hot[3]
        self.regs.add(wh, 0, led.open_period, hot[5])
        self.seq = hot[4]
        # a hot record is written only after a tick took everything it read,
        # so Wh left untaken in the snapshot are in it already
        self.revenue.forget_untaken()

    # --- persistence
    def state_dict(self):
        h = self._hot()
        d = {"eng": self.engine.to_dict(), "regs": self.regs.to_dict(),
             "rev": self.revenue.state(), "seq": self.seq, "clock": self.clock.to_dict(),
             "snap_h": h, "h": h, "cal": self.cal}
        if self.dispatcher:
            d["disp"] = self.dispatcher.dump()
        elif self.disp_state:
            d["disp"] = self.disp_state
        return d

    def commit(self):
        """Make everything durable now (full snapshot). Raises StoreFault."""
        if self.fault:
            raise StoreFault(self.fault)
        self.outbox.flush()
        self.store.commit(self.state_dict())
        self.durable_seq = self.seq
        self.unsaved_wh = 0
        self.unsaved_since_ms = self.clock.mono_ms()
        self.dirty = False

    def checkpoint(self):
        try:
            self.store.checkpoint({"h": self._hot()})
        except ValueError:  # patch too large for a hot record: take a full snapshot
            self.commit()
            return
        self.durable_seq = self.seq  # the hot record carries the seq
        self.unsaved_wh = 0
        self.unsaved_since_ms = self.clock.mono_ms()

    # --- events
    def _event(self, kind, fields):
        if self.fault:
            fields["kind"] = kind
            self.link_events.append(fields)
            return None
        seq = self.outbox.add(kind, fields, self.clock.utc_s())
        if seq:
            self.seq = seq
        self.dirty = True
        return seq

    def _metering_event(self, kind, utc_s, value):
        if kind == "metering_fault":
            self._event("fault", {"code": kind, "value": value})
        else:
            self._event("tamper", {"code": kind, "value": value})

    def _engine_events(self):
        topup_seq = None
        for e in self.engine.pop_events():
            k = e[0]
            if k == "entry":
                f = {"entry": e[2], "amount_minor": e[4], "balance_minor": e[5],
                     "reason": e[6], "wh": e[7]}
                if e[2] == "topup":  # the head-end matches it to its order
                    f["order"] = e[3]
                    topup_seq = self._event("topup", f)
                else:
                    f["ref"] = str(e[3])
                    self._event("ledger", f)
            elif k == "relay":
                self._event("relay", {"closed": e[1], "reason": e[2], "balance_minor": e[3]})
            elif k == "warn":
                self._event("warning", {"from": e[1], "level": e[2], "balance_minor": e[3]})
            elif k in ("tariff", "tariff_pending"):
                self._event("tariff", {"event": k, "a": e[1], "b": e[2]})
            elif k == "mode":
                self._event("mode", {"mode": e[1]})
            elif k in ("trip", "retry", "lockout", "prot_reset"):
                self._event("protection", {"event": k, "what": str(e[1])})
            elif k == "remote":
                self._event("remote", {"action": e[1]})
        return topup_seq

    def _frozen_events(self):
        r = self.regs
        if r.days_n != self.last_days_n or r.days_head != getattr(self, "_dh", r.days_head):
            recs = r.daily_records()
            if recs:
                rec = recs[-1]
                self._event("frozen_daily", {"day": rec[0], "obis_1_8_0": rec[1],
                                             "obis_2_8_0": rec[2], "wh": rec[3]})
        if r.months_n != self.last_months_n or r.months_head != getattr(self, "_mh", r.months_head):
            recs = r.monthly_records()
            if recs:
                rec = recs[-1]
                self._event("frozen_monthly", {"month": rec[0], "obis_1_8_0": rec[1],
                                               "obis_2_8_0": rec[6], "wh": rec[7], "md_w": rec[8]})
        self.last_days_n, self.last_months_n = r.days_n, r.months_n
        self._dh, self._mh = r.days_head, r.months_head

    # --- the metering tick
    def tick(self):
        """Meter what arrived since the last tick. Returns True if state changed."""
        self.begin()
        try:
            b = self.board
            now = self.clock.mono_ms()
            dt = now - self.last_ms
            self.last_ms = now
            if dt < 0:
                dt = 0
            utc = self.clock.utc_s()
            local = self.clock.local_s()
            n = 0
            if self.vbuf is not None:
                n = b.adc_capture(self.vbuf, self.ibuf)
            count = b.pulse_count()
            self.revenue.tick(count, self.vbuf, self.ibuf, n, dt, utc, b.tamper_open())
            self.meas.update(now, count, b.cf1_count(), self.revenue.adc, self.relay_now()[0])
            if self.fault:
                self.revenue.unbilled_wh = 0   # the fault state bills nothing (RAM only)
                return self._register(0, local) > 0
            ms = self.carry_ms + dt
            span_s = ms // 1000
            self.carry_ms = ms - span_s * 1000
            entry_key = self._entry_key()
            events = self._bill(local, span_s)
            self._register(self.engine.ledger.open_period, local)
            if events:
                self._engine_events()
            self._frozen_events()
            # Charging alone is not news: the periodic state (state_every_s)
            # carries it. A state per metered second cost 22 MB a day of
            # cellular data; relay moves and events are published at once.
            changed = self._after_change() or bool(events)
            if self.dirty or entry_key != self._entry_key() or self.exported_wh:
                self.commit()
            elif self.policy.due(self.unsaved_wh, now - self.unsaved_since_ms,
                                 self.unsaved_wh > 0 or self.revenue.pulse is None):
                self.checkpoint()
            return changed
        finally:
            self.end()

    # Energy read from the pulse counter (or the ADC) waits in the revenue's
    # untaken counts until the engine has charged it and the registers hold
    # it. A MemoryError anywhere after the read leaves it there for the next
    # tick, and what a taker did take before failing is read back from its
    # own total, so each Wh is billed and registered exactly once.
    def _bill(self, local, span_s):
        rev = self.revenue
        led = self.engine.ledger
        before = led.charged_wh
        try:
            return self.engine.tick(rev.unbilled_wh, local, span_s, self.clock.synced,
                                    self.meas.voltage_v, self.meas.power_w)
        finally:
            rev.unbilled_wh -= led.charged_wh - before

    def _register(self, period, local):
        """Register the untaken Wh; returns the import Wh registered."""
        rev = self.revenue
        r = self.regs
        imp0 = r.import_wh
        exp0 = r.export_wh
        try:
            r.add(rev.unregistered_wh, rev.unregistered_export_wh, period, local)
        finally:
            imp = r.import_wh - imp0
            rev.unregistered_wh -= imp
            rev.unregistered_export_wh -= r.export_wh - exp0
            self.exported_wh = r.export_wh - exp0
            self.unsaved_wh += imp
        return imp

    def _entry_key(self):
        led = self.engine.ledger
        return (led.open_ver, led.open_tier, led.open_period, led.open_day, led.seq)

    def relay_now(self):
        """(closed, reason): the one answer to "is the supply on, and why".
        The board's relay is driven from it (_after_change) and the state, the
        LCD and the console all read it; the relay events carry the same
        reasons (the engine's, and STORE_FAULT from _enter_fault)."""
        if self.fault:
            return False, STORE_FAULT
        e = self.engine
        return bool(e.relay_closed), e.relay_reason

    def _after_change(self):
        """Drive the relay from relay_now(). True if it moved."""
        want = self.relay_now()[0]
        if self.board.relay_closed() == want:
            return False
        self.board.relay_set(want)
        return True

    # --- the customer at the meter
    def short_press(self):
        if self.fault:
            return False
        self.begin()
        try:
            self.engine.press()
            self._settle_local()
        finally:
            self.end()
        return True

    def long_press(self):
        if self.fault:
            return False
        self.begin()
        try:
            r = self.engine.long_press()
            self._settle_local()
        finally:
            self.end()
        return r == "ok"

    def _settle_local(self):
        self._engine_events()
        self._after_change()
        if self.dirty:
            self.commit()

    def buzzer_on(self, now_ms):
        """Warning tones: the engine's alarm pattern, plus a chirp per one-off beep."""
        p = self.engine.policy
        if p.beeps != self.beeps_seen:
            self.beeps_seen = p.beeps
            self.chirp_until = time.ticks_add(now_ms, 200)
        if time.ticks_diff(self.chirp_until, now_ms) > 0:
            return True
        if self.fault:
            return buzzer.should_sound(buzzer.REPEAT, now_ms % 2000)
        return buzzer.should_sound(buzzer.REPEAT, now_ms % 2000) if p.alarm == buzzer.REPEAT else False

    # --- facade for firmware/link/commands.py (see its header for the contract)
    def topup(self, order_id, amount_minor):
        if self.fault:
            return "store_failed", None, None
        if not self.outbox.can_add(CRITICAL):  # full of undelivered credit events
            return "busy", self.engine.balance_minor(), None
        r = self.engine.topup(order_id, amount_minor)
        if r != "ok":
            return r, self.engine.balance_minor(), None
        seq = self._engine_events()
        self._after_change()
        return "credited", self.engine.balance_minor(), seq

    def tariff(self, version, activate_utc_s, tariff_dict):
        if self.fault:
            return "store_failed"
        d = dict(tariff_dict)
        d["version"] = version
        at = activate_utc_s + self.clock.utc_offset_s if activate_utc_s else None
        r = self.engine.set_tariff(d, at)
        return self._done(r)

    def relay(self, action):
        return self._done(self.engine.remote(action)) if not self.fault else "store_failed"

    def set_mode(self, mode):
        return self._done(self.engine.set_mode(mode)) if not self.fault else "store_failed"

    def configure(self, s):
        if self.fault:
            return "store_failed"
        c = {}
        pol = self.engine.policy
        w1 = s.get("warn1_minor", pol.warn_minor[0])
        w2 = s.get("warn2_minor", pol.warn_minor[1] if len(pol.warn_minor) > 1 else 0)
        if "warn1_minor" in s or "warn2_minor" in s:
            c["warn_minor"] = (w1, w2)
        if "emergency_credit_minor" in s:
            c["emergency_minor"] = s["emergency_credit_minor"]
        if "reconnect_needs_press" in s:
            c["reconnect"] = "press" if s["reconnect_needs_press"] else "auto"
        f = dict(self.engine.cfg.get("friendly") or {})
        if "friendly_start_min" in s or "friendly_end_min" in s:
            w0 = (f.get("windows") or [[0, 0]])[0]
            start = s.get("friendly_start_min", w0[0] // 60) * 60
            end = s.get("friendly_end_min", w0[1] // 60) * 60
            f["windows"] = [[start, end]]
        if "friendly_weekends" in s:
            f["weekend"] = bool(s["friendly_weekends"])
        if "holidays" in s:
            f["holidays"] = ["%04d-%02d-%02d" % (h // 10000, h // 100 % 100, h % 100)
                             for h in s["holidays"]]
        if f:
            c["friendly"] = f
        if "utc_offset_min" in s:
            self.clock.set_offset(s["utc_offset_min"] * 60)
        if "report_interval_s" in s:
            self.cfg["report_interval_s"] = s["report_interval_s"]
        if "state_interval_s" in s:  # the app's name for it
            self.cfg["state_every_s"] = s["state_interval_s"]
        return self._done(self.engine.configure(c))

    def set_time(self, utc_s):
        if self.fault:
            return "store_failed"
        step = self.clock.set_utc(utc_s, "server")
        self.commlog.add("clk", "step %d" % step)
        self.dirty = True
        return None

    def utc_now(self):
        return self.clock.utc_s() if self.clock.synced else None

    def _done(self, r):
        if r != "ok":
            return r
        self._engine_events()
        self._after_change()
        self.dirty = True
        return None

    def billing(self, since):
        """Daily frozen records of local days after `since` (a day number,
        days since 1970-01-01), oldest first, at most BILLING_PAGE: a reply
        must stay within the protocol's message size. Each is
        [day, obis_1_8_0, obis_2_8_0, day_wh]."""
        out = []
        for rec in self.regs.daily_records():
            if rec[0] > since and len(out) < BILLING_PAGE:
                out.append(rec)
        return out

    def billing_monthly(self, since):
        """Monthly frozen records of months after `since` (year*12 + month-1),
        oldest first, at most BILLING_PAGE. Each is [month, obis_1_8_0,
        obis_1_8_1 .. obis_1_8_4, obis_2_8_0, month_wh, max_demand_w]."""
        out = []
        for rec in self.regs.monthly_records():
            if rec[0] > since and len(out) < BILLING_PAGE:
                out.append(rec)
        return out

    # --- views
    def state(self):
        """The state snapshot the head-end keeps (retained on .../state)."""
        e = self.engine
        closed, reason = self.relay_now()
        s = {}
        t = self.regs.telemetry()
        for k in t:
            # OBIS codes in wire keys: "1.8.0" travels as "obis_1_8_0"
            s["obis_" + k.replace(".", "_") if k[0] in "0123456789" else k] = t[k]
        s.update({"balance_minor": e.balance_minor(), "relay_closed": closed,
                  "relay_reason": reason, "mode": e.policy.mode,
                  "tariff_version": e.tariff.version, "level": e.level,
                  "price_milli_per_kwh": e.price_now()[0],
                  "seq": self.seq, "t": self.clock.utc_s(), "synced": self.clock.synced,
                  "owed_minor": e.ledger.owed_minor(),
                  "evt_dropped": list(self.outbox.dropped),
                  "evt_dropped_total": self.outbox.dropped_total})
        if self.fault:
            s["fault"] = self.fault
            s["lcd_error"] = self.store.lcd_code()
        return s

    def snapshot(self):
        """What the LCD screens show (None: not known on this meter)."""
        e = self.engine
        closed, reason = self.relay_now()
        return {"balance_minor": e.balance_minor(), "import_wh": self.regs.import_wh,
                "today_wh": self.regs.today_wh, "relay_closed": closed,
                "relay_reason": reason, "warning": e.level, "load_w": self.meas.power_w,
                "voltage_v": self.meas.voltage_v,
                "seq": self.seq, "decimals": self.cfg["decimals"], "currency": self.cfg["currency"],
                "tariff_version": e.tariff.version, "mode": e.policy.mode,
                "price_milli_per_kwh": e.price_now()[0],
                "clock_synced": self.clock.synced, "fault": self.fault,
                "error_code": self.store.lcd_code() if self.fault else 0,
                "owed_minor": e.ledger.owed_minor()}
