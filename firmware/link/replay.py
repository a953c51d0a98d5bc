# Replay protection for command counters: a floor plus the last few accepted
# counters, the way the order record keeps order numbers (and IPsec/DTLS keep
# sequence numbers).
#
# A counter is fresh when it is above the floor and not among the kept ones.
# Accepting it keeps it; once more than WINDOW are kept, the smallest leaves
# and becomes the floor. So a command overtaken on its way by up to WINDOW-1
# newer ones (two head-end workers, a retry racing a query) is still carried
# out, while every counter is accepted at most once: a replay is either still
# kept or at or below the floor. `exp` bounds how late a held-back command can
# arrive.
#
# Counters may be up to 2**48: plain ints, a short list, no bit tricks.
from micropython import const

WINDOW = const(8)


class CounterWindow:
    def __init__(self, window=WINDOW):
        self.window = window
        self.floor = 0
        self.kept = []

    @property
    def last(self):
        """The highest accepted counter (0 before any)."""
        return max(self.kept) if self.kept else self.floor

    def fresh(self, ctr):
        return ctr > self.floor and ctr not in self.kept

    def accept(self, ctr):
        """Record ctr as used. Only for a fresh counter; an old one is a no-op."""
        if not self.fresh(ctr):
            return
        kept = self.kept
        kept.append(ctr)
        if len(kept) > self.window:
            low = min(kept)
            kept.remove(low)
            self.floor = low

    # -- persistence (rows in the dispatcher's part of the meter snapshot)
    def rows(self):
        return [self.floor] + self.kept

    def load_rows(self, rows):
        self.floor = int(rows[0])
        self.kept = []
        for c in rows[1:]:
            self.accept(int(c))
