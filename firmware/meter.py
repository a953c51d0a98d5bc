# The meter core: sequences the pure layers once per tick. Pulses/ADC ->
# revenue Wh -> registers and the credit engine -> relay, events, flash.
# Each step is owned by the object whose fields it changes; this file only
# calls them in order:
#   metering/  revenue.py (Wh and what waits to be taken), instruments.py, registers.py
#   credit/    engine.py (charging, commands' effects), policy.py (the relay, warnings)
#   core/      boot.py (the parts from the flash, or the fault state),
#              events.py (outcomes -> outbox events), durable.py (snapshot, hot
#              checkpoints, docs/storage.md), facade.py (what commands call)
#   ui/        buzzer.py (tones)
#
# Why did the relay open? relay_now() below is the one answer; the reasons and
# their priority are in firmware/credit/policy.py (its header, line by line),
# including STORE_FAULT, which relay_now() reports while the store has failed.
from firmware.clock import Clock
from firmware.credit.policy import STORE_FAULT
from firmware.link.commlog import CommLog
from firmware.metering.instruments import Instruments
from firmware.store.policy import CheckpointPolicy
from firmware.store.store import Store
from firmware.core.durable import Durable
from firmware.core.events import Events
from firmware.ui.buzzer import Tones
from firmware.credit.forecast import fill
from firmware.transient import once


class MeterCore:
    def __init__(self, board, cfg, fault=None):
        # fault: (code, LCD number) of a provisioning the app cannot use
        # (firmware/config.py): the store's safe state under that code
        self.board = board
        self.cfg = cfg
        self.meter_id = cfg["meter_id"]
        self._busy = 0             # depth of work in progress (see begin())
        self._pf_pending = False   # the power failed during that work
        self._facade = None
        # the last offline token's result, (code, amount_minor, count,
        # balance_minor), for the LCD's last top-up screen; None before any
        # (firmware/tokens/entry.py sets it)
        self.last_token = None
        self.keypad_digits = ""    # digits typed on the keypad so far (firmware/tokens/keypad.py)
        self.clock = Clock(board, cfg.get("utc_offset_s", 0))
        root = board.flash_root()
        self.commlog = CommLog(self.clock.utc_s)
        self.durable = Durable(self, Store(root), CheckpointPolicy(
            cfg.get("risk_wh", 10), cfg.get("risk_s", 60), cfg.get("tick_wh", 4)))
        self.events = Events(self.clock, self.durable)
        self.fault = None
        self.vbuf = self.ibuf = None
        self.engine = self.regs = self.revenue = None   # firmware/core/boot.py builds them
        status, seq = once("firmware.core.boot").start(self, fault)
        self.events.open(root + "/outbox", self.meter_id, seq, self.fault)
        self.events.watch(self.regs)
        # Events above this seq are not durable yet: the app never publishes
        # them, so a seq the server has seen is never reused after a cut.
        self.durable.saved(seq)
        self.last_ms = self.clock.mono_ms()
        self.carry_ms = 0
        self.exported_wh = 0       # export Wh the last tick registered
        # power and voltage, from what this board can measure (metering/instruments.py)
        self.meas = Instruments(cfg["imp_per_kwh"], board.pulse_count(), board.cf1_count(),
                                self.last_ms, cfg.get("cf1_mhz_per_v"),
                                cfg.get("pulse_power_timeout_s", 300))
        self.tones = Tones(cfg)
        if status == "factory":
            self.durable.commit()
        elif status == "recovered":
            self.events.add("fault", {"code": "store_recovered"})
            self.durable.commit()
        self.engine.tick(0, self.clock.local_s(), 0, self.clock.synced)
        self.drive_relay()
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
                self.durable.checkpoint()
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
            rev = self.revenue
            rev.tick(count, self.vbuf, self.ibuf, n, dt, utc, b.tamper_open())
            self.meas.update(now, count, b.cf1_count(), rev.adc, self.relay_now()[0])
            if self.fault:
                rev.billed(rev.unbilled_wh)   # the fault state bills nothing (RAM only)
                return self._register(0, local) > 0
            ms = self.carry_ms + dt
            span_s = ms // 1000
            self.carry_ms = ms - span_s * 1000
            led = self.engine.ledger
            entry_key = led.open_key()
            events = self._bill(local, span_s)
            self._register(led.open_period, local)
            if events:
                self.events.from_engine(self.engine)
            self.events.frozen(self.regs)
            # Charging alone is not news: the periodic state (state_every_s)
            # carries it. A state per metered second cost 22 MB a day of
            # cellular data; relay moves and events are published at once.
            changed = self.drive_relay() or bool(events)
            d = self.durable
            if d.dirty or entry_key != led.open_key() or self.exported_wh:
                d.commit()
            elif d.due(now, rev.pulse is not None):
                d.checkpoint()
            d.tidy()
            return changed
        finally:
            self.end()

    # Energy read from the pulse counter (or the ADC) waits in the revenue's
    # untaken counts until the engine has charged it and the registers hold
    # it. A MemoryError anywhere after the read leaves it there for the next
    # tick, and what a taker did take before failing is read back from its
    # own total, so each Wh is billed and registered exactly once.
    def _bill(self, local, span_s):
        led = self.engine.ledger
        before = led.charged_wh
        try:
            return self.engine.tick(self.revenue.unbilled_wh, local, span_s, self.clock.synced,
                                    self.meas.voltage_v, self.meas.power_w)
        finally:
            self.revenue.billed(led.charged_wh - before)

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
            self.exported_wh = r.export_wh - exp0
            rev.registered(imp, self.exported_wh)
            self.durable.registered(imp)
        return imp

    def relay_now(self):
        """(closed, reason): the one answer to "is the supply on, and why".
        The board's relay is driven from it (drive_relay) and the state, the
        LCD and the console all read it; the relay events carry the same
        reasons (the engine's, credit/policy.py, and STORE_FAULT from the
        fault state, core/boot.py)."""
        if self.fault:
            return False, STORE_FAULT
        e = self.engine
        return bool(e.relay_closed), e.relay_reason

    def drive_relay(self):
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
        self.events.from_engine(self.engine)
        self.drive_relay()
        if self.durable.dirty:
            self.durable.commit()

    def buzzer_on(self, now_ms):
        """The buzzer's pitch in Hz at real time now_ms, 0 for silence
        (ui/buzzer.py: warnings, relay changes, the fault alarm, quiet hours
        in the local time of the last tick); board.buzzer() takes it as is."""
        e = self.engine
        return self.tones.on(now_ms, e.now_s, e.policy, self.fault)

    def forecast(self):
        """What the balance buys, how long it lasts, the price now and next
        (credit/forecast.py's OUT list, by index; the same list each call)."""
        return fill(self.engine)

    # --- what the command dispatcher calls (firmware/core/facade.py),
    # made at the first command
    @property
    def facade(self):
        f = self._facade
        if f is None:
            from firmware.core.facade import Facade
            f = self._facade = Facade(self)
        return f

    # --- views: read-only, nothing here changes the meter
    def state(self):
        """The state snapshot the head-end keeps (retained on .../state)."""
        e = self.engine
        closed, reason = self.relay_now()
        s = {}
        t = self.regs.telemetry()
        for k in t:
            # OBIS codes in wire keys: "1.8.0" travels as "obis_1_8_0"
            s["obis_" + k.replace(".", "_") if k[0] in "0123456789" else k] = t[k]
        ob = self.events.outbox
        s.update({"balance_minor": e.balance_minor(), "relay_closed": closed,
                  "relay_reason": reason, "mode": e.policy.mode,
                  "tariff_version": e.tariff.version, "level": e.level,
                  "price_milli_per_kwh": e.price_now()[0],
                  "seq": self.events.seq, "t": self.clock.utc_s(), "synced": self.clock.synced,
                  "owed_minor": e.ledger.owed_minor(),
                  "evt_dropped": list(ob.dropped),
                  "evt_dropped_total": ob.dropped_total})
        if self.fault:
            s["fault"] = self.fault
            s["lcd_error"] = self.durable.store.lcd_code()
        return s

    def snapshot(self):
        """What the LCD screens show (None: not known on this meter)."""
        e = self.engine
        closed, reason = self.relay_now()
        return {"balance_minor": e.balance_minor(), "import_wh": self.regs.import_wh,
                "today_wh": self.regs.today_wh, "relay_closed": closed,
                "relay_reason": reason, "warning": e.level, "load_w": self.meas.power_w,
                "voltage_v": self.meas.voltage_v,
                "seq": self.events.seq, "decimals": self.cfg["decimals"], "currency": self.cfg["currency"],
                "tariff_version": e.tariff.version, "mode": e.policy.mode,
                "price_milli_per_kwh": e.price_now()[0],
                "clock_synced": self.clock.synced, "fault": self.fault,
                "error_code": self.durable.store.lcd_code() if self.fault else 0,
                "owed_minor": e.ledger.owed_minor(),
                "last_token": self.last_token, "keypad_digits": self.keypad_digits}
