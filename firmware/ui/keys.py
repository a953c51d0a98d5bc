# Turns the raw level of the query button into gestures: a short press
# (cycle screens, silence the buzzer) and a long press (take emergency credit,
# confirm reconnection). Polled in real time, debounced by requiring two equal
# consecutive samples.
import time
from micropython import const

SHORT = const(1)
LONG = const(2)
LONG_MS = const(1500)  # a held press this long is a long press
MIN_MS = const(30)     # shorter than this is contact bounce


class Key:
    def __init__(self, read_level):
        self.read = read_level
        self.down_at = None
        self.last = False
        self.fired_long = False

    def poll(self):
        """Return SHORT, LONG or 0. LONG fires while still held, once."""
        now = time.ticks_ms()
        level = self.read()
        stable = level == self.last
        self.last = level
        if not stable:
            return 0
        if level:
            if self.down_at is None:
                self.down_at = now
                self.fired_long = False
            elif not self.fired_long and time.ticks_diff(now, self.down_at) >= LONG_MS:
                self.fired_long = True
                return LONG
            return 0
        if self.down_at is None:
            return 0
        held = time.ticks_diff(now, self.down_at)
        self.down_at = None
        if self.fired_long or held < MIN_MS:
            return 0
        return SHORT
