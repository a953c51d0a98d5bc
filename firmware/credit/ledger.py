# The customer's money. Every change to the balance is an entry with a kind,
# an id and a reason, emitted as an event for the outbox:
#   ("entry", seq, kind, ref, amount_minor, balance_minor, reason, wh)
# amount_minor is a magnitude; the kind gives the direction (charge and repay
# take money, topup and loan give it, adjust is signed).
#
# Conservation, true after every call:
#   initial + topups + loans + adjustments - charges - repayments == balance
#
# Energy is charged at price_milli_per_kwh * Wh, which is in millionths of a
# minor unit; the part below one minor unit is carried in rem_micro, so the
# total charged is always floor(sum(price * Wh) / 1e6): no drift, ever.
from micropython import const

_MICRO = const(1000000)
_IDS_KEPT = const(16)  # recent top-up / adjustment ids remembered against re-sends
_COST_DAYS = const(8)  # today and the 7 days before it (credit/forecast.py's days left)

CHARGE = "charge"
TOPUP = "topup"
ADJUST = "adjust"
LOAN = "loan"
REPAY = "repay"

_STATE = ("initial_minor", "balance_minor", "rem_micro", "topups_minor", "loans_minor",
          "adjust_minor", "charges_minor", "repay_minor", "charged_wh", "seq",
          "open_ver", "open_tier", "open_period", "open_day", "open_wh", "open_minor", "ids",
          "costs")


class Ledger:
    def __init__(self, initial_minor=0):
        self.initial_minor = initial_minor
        self.balance_minor = initial_minor
        self.rem_micro = 0
        self.topups_minor = 0
        self.loans_minor = 0
        self.adjust_minor = 0
        self.charges_minor = 0
        self.repay_minor = 0
        self.charged_wh = 0
        self.seq = 0
        # The open charge entry gathers consecutive charges with the same
        # (tariff version, tier, period, day) so the outbox gets a few entries
        # a day rather than one per second.
        self.open_ver = 0
        self.open_tier = 0
        self.open_period = 0
        self.open_day = 0
        self.open_wh = 0
        self.open_minor = 0
        self.ids = []
        # What energy cost each local day, for the days-left forecast: one
        # list, so it costs one name and travels in the snapshot as is:
        # [newest day number (-1: none yet), days seen (capped at 8),
        #  cost of that day, of the day before, ... 8 days] in minor units.
        self.costs = [-1, 0] + [0] * _COST_DAYS

    def owed_minor(self):
        """Emergency credit taken and not yet repaid."""
        return self.loans_minor - self.repay_minor

    def conserved(self):
        return (self.initial_minor + self.topups_minor + self.loans_minor + self.adjust_minor
                - self.charges_minor - self.repay_minor) == self.balance_minor

    def charge(self, wh, price_milli_per_kwh, ver, tier, period, day, events):
        if self.open_wh and (ver != self.open_ver or tier != self.open_tier
                             or period != self.open_period or day != self.open_day):
            self.close_charge(events)
        if not self.open_wh:
            self.open_ver = ver
            self.open_tier = tier
            self.open_period = period
            self.open_day = day
        acc = self.rem_micro + price_milli_per_kwh * wh
        whole = acc // _MICRO
        self.rem_micro = acc - whole * _MICRO
        self.balance_minor -= whole
        self.charges_minor += whole
        self.charged_wh += wh
        self.open_wh += wh
        self.open_minor += whole
        # the day's cost (costs, above); allocates nothing. A day before the
        # newest (a clock stepped back) counts into the newest: the ring
        # never moves back; days skipped cost 0.
        c = self.costs
        k = day - c[0]
        if c[0] < 0:            # the first charge this ledger ever took
            c[0] = day
            c[1] = 1
        elif k > 0:
            c[0] = day
            c[1] = c[1] + k if c[1] + k < _COST_DAYS else _COST_DAYS
            j = _COST_DAYS + 1
            while j >= 2:
                c[j] = c[j - k] if j - k >= 2 else 0
                j -= 1
        c[2] += whole

    def close_charge(self, events):
        if not self.open_wh:
            return
        self.seq += 1
        events.append(("entry", self.seq, CHARGE, self.open_ver, self.open_minor, self.balance_minor,
                       "t%d/p%d" % (self.open_tier, self.open_period), self.open_wh))
        self.open_wh = 0
        self.open_minor = 0

    def post(self, kind, ref, amount_minor, reason, events):
        """Record a non-charge entry; closes the open charge entry first so the
        entries' running balances read in order."""
        self.close_charge(events)
        if kind == TOPUP:
            self.topups_minor += amount_minor
            self.balance_minor += amount_minor
        elif kind == LOAN:
            self.loans_minor += amount_minor
            self.balance_minor += amount_minor
        elif kind == REPAY:
            self.repay_minor += amount_minor
            self.balance_minor -= amount_minor
        elif kind == ADJUST:
            self.adjust_minor += amount_minor
            self.balance_minor += amount_minor
        else:
            raise ValueError(kind)
        self.seq += 1
        events.append(("entry", self.seq, kind, ref, amount_minor, self.balance_minor, reason, 0))

    def apply_hot(self, balance_minor, rem_micro, wh):
        """Take the charging a hot checkpoint recorded after the snapshot this
        ledger was loaded from: `wh` charged, the balance and remainder as
        the checkpoint had them. It all joins the open charge entry, which
        was open for it (a closed entry forces a snapshot, not a checkpoint)."""
        minor = self.balance_minor - balance_minor
        self.balance_minor = balance_minor
        self.rem_micro = rem_micro
        self.charges_minor += minor
        self.open_minor += minor
        self.charged_wh += wh
        self.open_wh += wh
        # The snapshot was committed when this entry opened, after its first
        # charge moved the day ring on: the newest day is the entry's, or a
        # later one the clock stepped back from (charged into, as charge()
        # does). A ring from before the forecast starts at the entry's day.
        c = self.costs
        if c[0] < 0:
            c[0] = self.open_day
            c[1] = 1
        c[2] += minor

    def open_key(self):
        """Identity of the open charge entry and the entry count: when it
        changes, an entry closed or a new one opened (a snapshot is due)."""
        return (self.open_ver, self.open_tier, self.open_period, self.open_day, self.seq)

    def seen(self, ref):
        return ref in self.ids

    def remember(self, ref):
        self.ids.append(ref)
        if len(self.ids) > _IDS_KEPT:
            self.ids.pop(0)

    def to_dict(self):
        d = {}
        for k in _STATE:
            d[k] = getattr(self, k)
        d["ids"] = list(self.ids)
        d["costs"] = list(self.costs)
        return d

    def load(self, d):
        for k in _STATE:
            if k in d:
                setattr(self, k, d[k])
        self.ids = list(d.get("ids", ()))
        if len(self.costs) != 2 + _COST_DAYS:   # a flash from before the forecast has none
            self.costs = [-1, 0] + [0] * _COST_DAYS
