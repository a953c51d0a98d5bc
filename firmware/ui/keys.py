# Turns the query button into gestures: a short press and a long press (held
# LONG_MS, fired while still held). Polled in real time, from two inputs of
# the board: its level (debounced here: two equal samples in a row) and its
# latched count of press edges (board.button_presses; the ESP32 counts them
# in an interrupt, debounced there), so that a press made and released while
# the loop was busy (a flash erase stalls it for tens of ms) still counts.
import time
from micropython import const

SHORT = const(1)
LONG = const(2)
_LONG_MS = const(1500)   # a press held this long is a long press


class Key:
    def __init__(self, board):
        self.board = board
        self.down_at = None
        self.last = False
        self.fired_long = False
        self.pending = False     # an edge came and went unseen (see poll)
        self.seen = board.button_presses("query")

    def poll(self):
        """SHORT, LONG or 0. LONG fires while still held, once."""
        now = time.ticks_ms()
        b = self.board
        level = b.button_down("query")
        count = b.button_presses("query")
        new = count != self.seen
        self.seen = count
        stable = level == self.last
        self.last = level
        if self.down_at is None:
            if level:
                if stable or new:
                    self.down_at = now
                    self.fired_long = False
                    self.pending = False
                return 0
            if new:
                # an edge, and the button up: pressed and let go between two
                # polls, or a bounce; the next sample tells which
                self.pending = True
                return 0
            if self.pending and stable:
                self.pending = False
                return SHORT
            return 0
        if new and level:
            # let go and pressed again between two polls (the board latched
            # the new edge): the last press ended, a new one starts now
            short = not self.fired_long
            self.down_at = now
            self.fired_long = False
            return SHORT if short else 0
        if not stable:
            return 0
        if level:
            if not self.fired_long and time.ticks_diff(now, self.down_at) >= _LONG_MS:
                self.fired_long = True
                return LONG
            return 0
        self.down_at = None
        return 0 if self.fired_long else SHORT
