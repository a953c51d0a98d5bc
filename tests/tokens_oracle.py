"""CPython side of the token tests: tokens made by the reference package
(`openpaygo` 0.6.3), and an oracle of what the meter must answer, built on
the package's own chain hashing and the replay window as docs/tokens.md
states it (independently of firmware/tokens/)."""
import openpaygo
from openpaygo import TokenType
from openpaygo.token_shared import OpenPAYGOTokenShared as Std
from openpaygo.token_shared_extended import OpenPAYGOTokenSharedExtended as Ext

JUMP, JUMP_SYNC, BEHIND = 64, 100, 16
KINDS = {TokenType.ADD_TIME: "add", TokenType.SET_TIME: "set",
         TokenType.DISABLE_PAYG: "disable", TokenType.COUNTER_SYNC: "sync"}


def starting_code(key_hex):
    return Std.generate_starting_code(bytes.fromhex(key_hex))


class Chains:
    """The key's chain codes per token base, from count 0, grown on demand."""

    def __init__(self, key_hex, start=None):
        self.key = bytes.fromhex(key_hex)
        self.start = start if start is not None else starting_code(key_hex)
        self.chains = {}

    def codes(self, base, ext, upto):
        k = (base, ext)
        c = self.chains.get(k)
        if c is None:
            S = Ext if ext else Std
            c = self.chains[k] = [S.put_base_in_token(self.start, base)]
        S = Ext if ext else Std
        while len(c) <= upto:
            c.append(S.generate_next_token(c[-1], self.key))
        return c


def kind_of(count, value, ext):
    if count % 2 == 0:
        return "add" if ext or value <= 995 else None
    if ext or value <= 995:
        return "set"
    return {998: "disable", 999: "sync"}.get(value)


class Model:
    """What the meter must answer to each entry: (result, count, value)."""

    def __init__(self, chains):
        self.ch = chains
        self.top = 0
        self.used = {0}

    def fresh(self, count, kind):
        if count > self.top:
            return True
        return kind == "add" and self.top - count < BEHIND and count not in self.used

    def take(self, count, kind):
        if kind != "add":
            self.used |= set(range(count + 1))
        self.used.add(count)
        self.top = max(self.top, count)

    def enter(self, text):
        digits = text.replace(" ", "").replace("-", "")
        # ASCII digits only (CPython's isdigit() also takes other scripts' digits)
        if not digits or digits.strip("0123456789") or len(digits) > 12:
            return ["invalid", -1, 0]
        ext = len(digits) > 9
        mod = 10 ** 6 if ext else 1000
        tok = int(digits)
        base = tok % mod
        value = (base - self.ch.start % mod) % mod
        last = self.top + (JUMP_SYNC if value == 999 and not ext else JUMP)
        seen = -1
        for count, code in enumerate(self.ch.codes(base, ext, last)[:last + 1]):
            if code // mod != tok // mod:
                continue
            kind = kind_of(count, value, ext)
            if kind is None:
                continue
            if self.fresh(count, kind):
                self.take(count, kind)
                return [kind, count, value]
            seen = count
        return ["used", seen, 0] if seen >= 0 else ["invalid", -1, 0]


def issue(key_hex, count, kind, raw=None, ext=False, start=None, divider=1):
    """(new count, token string) from the reference package: `raw` is the
    token value before the divider (what the meter decodes)."""
    tt = {v: k for k, v in KINDS.items()}[kind]
    value = raw / divider if kind in ("add", "set") else None
    return openpaygo.generate_token(secret_key=key_hex, count=count, value=value, token_type=tt,
                                    starting_code=start, value_divider=divider, extended_token=ext)
