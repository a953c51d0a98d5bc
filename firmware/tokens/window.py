# Which token counts may still be credited (docs/tokens.md, "The replay
# window"): the reference decoder's window, kept so that a token is credited
# at most once.
#
# - `top`: the highest count ever accepted. It only rises: an older token
#   never lowers it (the reference package's device flow stores the count of
#   whatever token was entered last, and after an older token the newest is
#   accepted a second time).
# - `used`: a bit per count from top down to top - 15 (bit i: count top - i
#   was used). Counts further behind are all treated as used.
# - A count above top is fresh (the decoder looks at most 64 ahead, 100 for
#   COUNTER_SYNC). An ADD count up to 15 behind top is fresh while its bit is
#   clear; any other count at or below top is used.
# - Accepting an ADD marks its own count; accepting any other kind (SET,
#   DISABLE_PAYG, COUNTER_SYNC) marks every older count used.
# The state is two ints from the first token on, in the meter's snapshot
# (firmware/tokens/entry.py).
from micropython import const

_BEHIND = const(16)           # counts kept in `used`: top .. top - 15
_ALL = const(0xFFFF)


class Window:
    def __init__(self, top=0, used=1):
        # count 0 is the starting code itself: no encoder issues it, so it
        # starts used
        self.top = top
        self.used = used

    def fresh(self, count, kind):
        back = self.top - count
        if back < 0:
            return True
        return kind == "add" and back < _BEHIND and not (self.used >> back) & 1

    def take(self, count, kind):
        """Mark `count` used (a fresh count: fresh() said so)."""
        back = self.top - count
        if back < 0:
            self.used = (self.used << -back) & _ALL if -back < _BEHIND else 0
            self.top = count
            back = 0
        self.used |= 1 << back
        if kind != "add":
            self.used = _ALL
