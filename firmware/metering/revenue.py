# The revenue source the customer pays by, chosen by board config:
#   "pulse": CF pulses from the metering IC (exact counting);
#   "adc":   the ESP32's own ADC measurement (waveform.Analyzer);
#   "both":  pulses bill, the ADC cross-checks them.
# It also turns what it sees into events for the app's log: reverse energy
# (possible tamper; it is registered as export and never adds credit), a
# pulse/ADC divergence beyond the configured limit (metering fault), and the
# terminal cover opening or closing.
#
# Events go to on_event(kind, utc_s, value) with kind one of EV_*; value is an
# int (real power in mW, divergence in 0.1 %, or 0).
from firmware.metering.pulse import PulseEnergy

EV_REVERSE = "reverse_energy"
EV_FAULT = "metering_fault"
EV_COVER_OPEN = "cover_open"
EV_COVER_CLOSED = "cover_closed"


class Revenue:
    def __init__(self, source, imp_per_kwh=1000, rate_hz=3200, cal=None, limit_pct=3,
                 window_wh=200, creep_mw=4000, on_event=None, pulse_base=0):
        if source not in ("pulse", "adc", "both"):
            raise ValueError("source")
        self.source = source
        self.pulse = PulseEnergy(imp_per_kwh) if source != "adc" else None
        self.adc = self.cross = None
        # the waveform maths is loaded only where the ADC is used: a pulse-only
        # meter keeps those 7 KB of heap
        if source != "pulse":
            from firmware.metering.waveform import Analyzer, FLAG_REVERSE
            self.adc = Analyzer(rate_hz, cal, creep_mw)
            self._flag_reverse = FLAG_REVERSE
        if source == "both":
            from firmware.metering.crosscheck import CrossCheck
            self.cross = CrossCheck(limit_pct, window_wh)
        self.on_event = on_event
        self.last_count = pulse_base     # board.pulse_count() when metering started
        self.reverse = False
        self.cover_open = False
        self.export_wh = 0               # export Wh added by the last tick()
        # Wh metered and not yet taken, one count per taker: the bill and the
        # registers. tick() adds to them in the statement after the energy
        # leaves the pulse counter or the ADC integrator, with nothing that
        # allocates in between, so a MemoryError (or an event handler
        # failing) later in the tick cannot lose it. The caller subtracts
        # what each taker actually took; what a failed tick left arrives
        # with the next one, exactly once.
        self.unbilled_wh = 0
        self.unregistered_wh = 0
        self.unregistered_export_wh = 0
        self._adc_bills = source == "adc"

    def _event(self, kind, utc_s, value):
        if self.on_event:
            self.on_event(kind, utc_s, value)

    def tick(self, pulse_count, vbuf, ibuf, n, dt_ms, utc_s, cover_open=False):
        """Meter one tick; returns the import Wh to bill. Export Wh of the same
        tick is left in self.export_wh. Both are also added to the counts
        not yet taken (unbilled_wh, unregistered_wh, unregistered_export_wh),
        which is what the meter core bills and registers from."""
        pulse_wh = adc_wh = 0
        self.export_wh = 0
        if self.pulse:
            pulse_wh = self.pulse.feed(pulse_count - self.last_count)
            self.last_count = pulse_count
            self.unbilled_wh += pulse_wh
            self.unregistered_wh += pulse_wh
        an = self.adc
        if an and n:
            flags = an.analyze(vbuf, ibuf, n)
            before = an.export_wh
            adc_wh = an.accumulate(dt_ms)
            exp = an.export_wh - before
            self.unregistered_export_wh += exp
            if self._adc_bills:
                self.unbilled_wh += adc_wh
                self.unregistered_wh += adc_wh
            self.export_wh = exp
            reverse = bool(flags & self._flag_reverse)
            if reverse and not self.reverse:   # once per episode, not every second
                self._event(EV_REVERSE, utc_s, an.p_mw)
            self.reverse = reverse
        if self.cross and self.cross.feed(pulse_wh, adc_wh):
            self._event(EV_FAULT, utc_s, self.cross.last_pct_x10)
        if cover_open != self.cover_open:
            self.cover_open = cover_open
            self._event(EV_COVER_OPEN if cover_open else EV_COVER_CLOSED, utc_s, 0)
        return adc_wh if self.source == "adc" else pulse_wh

    def untaken(self):
        """True while metered energy waits for the bill or the registers."""
        return bool(self.unbilled_wh or self.unregistered_wh or self.unregistered_export_wh)

    def billed(self, wh):
        """The bill took `wh` of unbilled_wh."""
        self.unbilled_wh -= wh

    def registered(self, import_wh, export_wh):
        """The registers took these of the unregistered counts."""
        self.unregistered_wh -= import_wh
        self.unregistered_export_wh -= export_wh

    def apply_hot(self, pulse_rem):
        """State as a hot checkpoint newer than the snapshot left it. A hot
        record is written only after a tick took everything it read, so Wh
        left untaken in the snapshot are in it already."""
        if self.pulse:
            self.pulse.rem = pulse_rem
        self.unbilled_wh = self.unregistered_wh = self.unregistered_export_wh = 0

    def pulse_rem(self):
        """The pulse remainder a hot checkpoint keeps (0 without pulses)."""
        return self.pulse.rem if self.pulse else 0

    def state(self):
        d = {"source": self.source}
        if self.pulse:
            d["pulse"] = self.pulse.state()
        if self.adc:
            d["adc"] = self.adc.state()
        if self.untaken():
            # a snapshot taken between a failed tick and the next one: the
            # pulse remainder it holds no longer includes these Wh
            d["untaken"] = [self.unbilled_wh, self.unregistered_wh, self.unregistered_export_wh]
        return d

    def restore(self, d):
        if self.pulse and "pulse" in d:
            self.pulse.restore(d["pulse"])
        if self.adc and "adc" in d:
            self.adc.restore(d["adc"])
        u = d.get("untaken")
        if u:
            self.unbilled_wh, self.unregistered_wh, self.unregistered_export_wh = (
                int(u[0]), int(u[1]), int(u[2]))
