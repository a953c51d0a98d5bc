# Record of applied top-up orders: a floor plus a window, as STS meters keep
# token identifiers. The meter remembers the last WINDOW credited order numbers
# with their original result. An order in the window is a duplicate and gets the
# original result; an order at or below the floor (the highest order number ever
# forgotten) is refused, never forgotten and credited again.
#
# Invariant: every credited order is in the window or at or below the floor
# (an order leaves the window only by raising the floor to at least itself).
# So of an order not in the window the meter knows (docs/protocol.md, "Orders
# outside the record"):
# - at or below the floor: credited and forgotten, or never credited; it
#   cannot tell which (only the floor itself was surely credited);
# - above the floor but below a full window: never credited, and too old to
#   credit now (it would leave the window at once).
#
# Order numbers are integers the head-end assigns per meter, increasing in the
# order it creates them (docs/protocol.md). They may arrive out of order.
# Pure: the owner persists rows() in the same atomic record as the ledger.
from array import array

from micropython import const

WINDOW = const(32)
MAX_ORDER = 0x7FFFFFFF   # beyond a 31-bit small int: not const()


class OrderBook:
    def __init__(self, window=WINDOW):
        self.window = window
        self.floor = 0
        self.n = 0
        self._order = array("q", bytes(8 * window))
        self._balance = array("q", bytes(8 * window))
        self._seq = array("q", bytes(8 * window))

    def find(self, order):
        """(balance_after_minor, seq) of a credited order, or None."""
        o = self._order
        for i in range(self.n):
            if o[i] == order:
                return self._balance[i], self._seq[i]
        return None

    def _min_index(self):
        o = self._order
        m = 0
        for i in range(1, self.n):
            if o[i] < o[m]:
                m = i
        return m

    def forgotten(self, order):
        """True for an order at or below the floor (and so not in the
        window): credited long ago, or never; refused either way."""
        return order <= self.floor

    def too_old(self, order):
        """True for an order above the floor, below the whole of a full
        window: never credited, and refused, since crediting it would
        push it out of the window (and under the floor) at once."""
        if order <= self.floor:
            return False
        return self.n == self.window and order < self._order[self._min_index()]

    def add(self, order, balance_after_minor, seq):
        """Remember a credited order; the oldest (smallest) leaves the window
        and raises the floor when the window is full."""
        if self.n < self.window:
            i = self.n
            self.n += 1
        else:
            i = self._min_index()
            if self._order[i] > self.floor:
                self.floor = self._order[i]
        self._order[i] = order
        self._balance[i] = balance_after_minor
        self._seq[i] = seq

    def rows(self):
        """[floor, [[order, balance_after_minor, seq], ...]] for the JSON state
        record: small pieces, never one block as big as the whole window."""
        return [self.floor, [[self._order[i], self._balance[i], self._seq[i]] for i in range(self.n)]]

    def load_rows(self, r):
        """Restore from rows(); raises ValueError on a damaged record."""
        floor, rows = r
        if len(rows) > self.window:
            raise ValueError("orders: bad record")
        self.floor = int(floor)
        self.n = len(rows)
        for i in range(self.n):
            self._order[i], self._balance[i], self._seq[i] = rows[i]
