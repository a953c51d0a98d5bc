# Cross-check of the two revenue paths: CF pulses from the metering IC against
# the ESP32's own ADC measurement. They should agree within the sum of their
# accuracy classes; a larger divergence means a fault or tampering (a shunt
# bypassed, a CT reversed, a pulse line cut) and raises a metering-fault event.
#
# Energy is compared over windows of at least `window_wh` on the larger side,
# so the 1 Wh resolution of each path is small against the limit.


class CrossCheck:
    def __init__(self, limit_pct=3, window_wh=200):
        self.limit_pct = limit_pct
        self.window_wh = window_wh
        self.pulse_wh = 0
        self.adc_wh = 0
        self.last_pct_x10 = 0     # divergence of the last closed window, 0.1 %

    def feed(self, pulse_wh, adc_wh):
        """Add both paths' Wh. Returns True when a window closes diverged."""
        self.pulse_wh += pulse_wh
        self.adc_wh += adc_wh
        big = self.pulse_wh if self.pulse_wh > self.adc_wh else self.adc_wh
        if big < self.window_wh:
            return False
        diff = self.pulse_wh - self.adc_wh
        if diff < 0:
            diff = -diff
        self.last_pct_x10 = diff * 1000 // big
        self.pulse_wh = self.adc_wh = 0
        return diff * 100 > self.limit_pct * big
