# Load power from the CF pulse train, for a meter whose metering IC gives
# only pulses: P = energy of the pulses / the time they took.
#
# The meter reads the pulse counter once a tick, so a pulse is timed to the
# tick that first sees it. The rate is taken over a window of at least
# _WINDOW_MS between two such ticks, which keeps that +-1 tick error small
# against the window at any load. Two anchors ping-pong so the window is
# always between _WINDOW_MS and twice that once pulses are frequent.
#
# Between pulses no pulse for `idle` ms bounds the power by one pulse's
# energy over `idle`: a load that stops brings the figure down at once
# instead of holding the last rate, and after `timeout_ms` without a pulse
# the power is 0 and the window forgotten.
#
# The first pulse after a timeout, after boot or after the relay closed
# only opens a new window: the time before it includes idle time and says
# nothing about the load (the stale-interval bug ESPHome's pulse_meter had).
# Energy is not counted here (metering/pulse.py counts every pulse).
#
# All values stay small ints on the ESP32 (< 2**30) for windows below about
# 20 minutes of pulses, so update() allocates nothing.
from micropython import const

_WINDOW_MS = const(10000)
_TIMEOUT_MS = const(300000)   # below one pulse per 5 min the load reads 0 W


class PulsePower:
    def __init__(self, imp_per_kwh, count, now_ms, timeout_ms=_TIMEOUT_MS, window_ms=_WINDOW_MS):
        # energy of one pulse in mJ: 3.6e9 mJ per kWh (>= 360000 for imp <= 10000)
        self.mj_per_pulse = 3600000000 // int(imp_per_kwh)
        self.timeout_ms = timeout_ms
        self.window_ms = window_ms
        self.power_w = 0
        self.rate_w = 0          # power over the last window
        self.last_count = count
        self.last_ms = -1        # tick that saw the latest pulse; -1: none since idle
        self.a0_ms = -1          # older anchor (tick, count); -1: none
        self.a0_count = 0
        self.a1_ms = -1          # newer anchor
        self.a1_count = 0

    def _watts(self, pulses, span_ms):
        # pulses * mj_per_pulse // span_ms, split so the product stays small
        q = self.mj_per_pulse // span_ms
        r = self.mj_per_pulse - q * span_ms
        return q * pulses + r * pulses // span_ms

    def idle(self):
        """Forget the window: no pulse may be timed against what came before
        (boot, timeout, relay open)."""
        self.power_w = self.rate_w = 0
        self.last_ms = self.a0_ms = self.a1_ms = -1

    def update(self, count, now_ms, flowing=True):
        """Feed the cumulative pulse count as seen at meter time now_ms;
        returns the load power in W. flowing=False (the meter's relay is
        open) means no energy can flow: 0 W, and the window starts afresh."""
        d = count - self.last_count
        self.last_count = count
        if not flowing or d < 0:      # relay open, or a counter that went back
            self.idle()
            return 0
        if d > 0:
            if self.a1_ms < 0:
                self.a1_ms = now_ms   # opens a window; no rate from it yet
                self.a1_count = count
            else:
                if self.a0_ms >= 0:
                    span = now_ms - self.a0_ms
                    pulses = count - self.a0_count
                else:
                    span = now_ms - self.a1_ms
                    pulses = count - self.a1_count
                if span > 0:
                    self.rate_w = self._watts(pulses, span)
                if now_ms - self.a1_ms >= self.window_ms:
                    self.a0_ms, self.a0_count = self.a1_ms, self.a1_count
                    self.a1_ms, self.a1_count = now_ms, count
            self.last_ms = now_ms
        if self.last_ms < 0:
            self.power_w = 0
            return 0
        since = now_ms - self.last_ms
        if since >= self.timeout_ms:
            self.idle()
            return 0
        p = self.rate_w
        if since > 0:
            bound = self.mj_per_pulse // since
            if bound < p:
                p = bound
        self.power_w = p
        return p
