# An offline token entered at the meter (keypad), relayed by the server
# (the "token" command) or typed by a technician: decoded, checked against
# the replay window, credited through the credit engine into the one
# ledger, reported as a "token" event and made durable in the meter's
# snapshot with the ledger it changed (docs/tokens.md).
#
# Loaded for each token and dropped after it (core/facade.py), never kept
# in the heap: nothing here outlives the token but the snapshot. Its durable
# state is one list in the snapshot ("tok", kept by core/durable.py):
#   [highest accepted count, used-count bits (window.py), invalid tokens in
#    a row, UTC second the lockout ends (0: none)]
# The list is changed in place, so every commit of the meter carries it.
# Credit and window move in RAM together and reach the flash in the same
# snapshot: after a cut either both are there or neither, so a token is
# credited at most once, and once its result was given, never lost.
#
# Lockout: _FREE invalid tokens in a row are free; each further one locks
# entry for a delay that doubles (60 s, 120 s, ... up to about 17 hours).
# It counts in the meter's clock (the RTC, which the sim steps) and is
# stored as the time it ends, so a reboot does not lift it. A token that
# decodes (even a used one) ends the run of invalid ones.
import binascii

from micropython import const

from firmware.credit.policy import PREPAID, POSTPAID
from firmware.link.outbox import CRITICAL
from firmware.tokens.opaygo import Decoder
from firmware.tokens.window import Window

_FREE = const(3)
_LOCK_S = const(60)
_LOCK_DOUBLINGS = const(10)
_TOP = const(0)
_USED = const(1)
_FAILS = const(2)
_UNTIL = const(3)


class TokenEntry:
    def __init__(self, core):
        self.core = core
        cfg = core.cfg
        self.decoder = None     # None: no usable token key, every token is invalid
        self.scale = 0          # minor units per token value unit x divider (see credit)
        self.divider = 1
        try:
            key = binascii.unhexlify(cfg.get("token_key_hex") or "")
            start = cfg.get("token_starting_code")
            div = cfg.get("token_value_divider", 1)
            unit = 10 ** cfg["decimals"]
            if (len(key) == 16 and type(div) is int and 0 < div and unit % div == 0
                    and (start is None or (type(start) is int and 0 <= start <= 999999999))):
                self.decoder = Decoder(key, start)
                self.divider = div
                self.scale = unit
        except (ValueError, TypeError):
            pass
        st = core.durable.tok
        if type(st) is not list or len(st) < 4:
            # no token yet (a later firmware may add fields: they are kept)
            st = core.durable.tok = [0, 1, 0, 0]
        self.st = st

    def minor(self, value):
        """A token value in minor units: value / divider currency units,
        exact because the divider divides 10**decimals."""
        return value * self.scale // self.divider

    def enter(self, text, commit=True):
        """Enter one token (digits; spaces and dashes are ignored). Returns
        the result line: "<code> <amount credited, minor> <balance after>",
        code one of add set used invalid locked disable sync, then " #<count>"
        when the token decoded to a count (add set used disable sync). With
        `commit` False the caller commits (the command dispatcher, which
        commits its counters in the same snapshot)."""
        c = self.core
        c.begin()   # a power cut now waits for the commit
        try:
            code, amount, count = self._enter(text)
            bal = c.engine.balance_minor()
            c.last_token = (code, amount, count, bal)
            if not c.fault:
                c.events.add("token", {"result": code, "count": count, "amount_minor": amount,
                                       "balance_minor": bal})
                if commit and code != "locked":
                    c.durable.commit()
        finally:
            c.end()
        if count < 0:
            return "%s %d %d" % (code, amount, bal)
        return "%s %d %d #%d" % (code, amount, bal, count)

    def _enter(self, text):
        c = self.core
        st = self.st
        now = c.clock.utc_s()
        if st[_UNTIL] > now + (_LOCK_S << _LOCK_DOUBLINGS):
            st[_UNTIL] = now + (_LOCK_S << _LOCK_DOUBLINGS)   # the RTC was set back
        if c.fault or now < st[_UNTIL] or not c.events.outbox.can_add(CRITICAL):
            # the store failed, a lockout runs, or the outbox is full of
            # undelivered credit events: nothing is decoded, nothing changes
            return "locked", 0, -1
        digits = text.replace(" ", "").replace("-", "")
        ok = digits.isdigit() and self.decoder is not None
        kind, count, value = self.decoder.decode(digits, Window(st[_TOP], st[_USED])) if ok \
            else ("invalid", -1, 0)
        if kind == "invalid":
            st[_FAILS] += 1
            over = st[_FAILS] - _FREE
            if over > 0:
                st[_UNTIL] = now + (_LOCK_S << (over - 1 if over <= _LOCK_DOUBLINGS else _LOCK_DOUBLINGS))
            return kind, 0, count
        st[_FAILS] = 0
        if kind == "used":
            return kind, 0, count
        w = Window(st[_TOP], st[_USED])
        w.take(count, kind)
        st[_TOP] = w.top
        st[_USED] = w.used
        return kind, self._apply(kind, count, value), count

    def _apply(self, kind, count, value):
        """Credit the token; returns the amount credited (minor, signed for SET)."""
        c = self.core
        e = c.engine
        ref = "tok%d" % count     # the ledger entry's ref: a string, never an order number
        amount = 0
        if kind == "add":
            amount = self.minor(value)
            if amount and e.topup(ref, amount) != "ok":
                amount = 0    # the ledger knows the ref already: never credited twice
        elif kind == "set":
            # the utility states the balance: an adjustment to it (owed
            # emergency credit stays owed), and the meter is prepaid again
            e.set_mode(PREPAID)
            amount = self.minor(value) - e.balance_minor()
            if amount and e.adjust(ref, amount, "token_set") != "ok":
                amount = 0
        elif kind == "disable":
            # DISABLE_PAYG: unrestricted supply, i.e. postpaid: the relay no
            # longer opens for credit, energy is still charged and billed
            e.set_mode(POSTPAID)
        c.events.from_engine(e)
        c.drive_relay()
        return amount
