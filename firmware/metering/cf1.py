# Supply voltage from the CF1 output of a BL0937/HLW8012-class metering IC.
#
# With its SEL input at the voltage level, CF1 is a square wave whose
# frequency is proportional to Vrms. The constant (mHz of CF1 per volt) is
# the board's divider and the IC's gain, found at calibration and given in
# the provisioning config as `cf1_mhz_per_v`; without it the voltage is
# unknown (None), never guessed. The frequency is measured over at least
# _SPAN_MS of meter time between two counter reads.
from micropython import const

_SPAN_MS = const(1000)


class Cf1Voltage:
    def __init__(self, mhz_per_v, count, now_ms, span_ms=_SPAN_MS):
        if int(mhz_per_v) <= 0:
            raise ValueError("cf1_mhz_per_v")
        self.mhz_per_v = int(mhz_per_v)
        self.span_ms = span_ms
        self.voltage_v = None     # unknown until one span has been measured
        self.t0_ms = now_ms
        self.c0 = count

    def update(self, count, now_ms):
        """Feed the cumulative CF1 count at meter time now_ms; returns Vrms in
        whole volts, or None until the first span is complete."""
        span = now_ms - self.t0_ms
        if span < self.span_ms:
            return self.voltage_v
        d = count - self.c0
        self.t0_ms = now_ms
        self.c0 = count
        if d < 0:                 # a counter that went back: measure afresh
            self.voltage_v = None
            return None
        # frequency in mHz: d * 1e6 // span, split so no product leaves the small ints
        q = d * 1000 // span
        mhz = q * 1000 + (d * 1000 - q * span) * 1000 // span
        self.voltage_v = (mhz + self.mhz_per_v // 2) // self.mhz_per_v
        return self.voltage_v
