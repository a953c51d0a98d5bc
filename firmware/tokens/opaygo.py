# OpenPAYGO Token decoding (EnAccess's open standard; docs/tokens.md): which
# count and value a token stands for, under the meter's secret key.
#
# A token is a code of the key's chain with its last digits replaced by the
# value. The chain starts at the starting code (a hash of the key unless
# provisioned) with the token's own base digits put in, and each next code is
# SipHash-2-4 of the previous one under the key:
# - standard token (9 digits): base = the last 3 digits, value =
#   (base - starting code's base) mod 1000; a code hashes as its 4 bytes
#   twice, the hash folds to 30 bits (its two halves xored, the low 2 bits
#   dropped);
# - extended token (10-12 digits): base = the last 6 digits, mod 10**6; a
#   code hashes as 8 bytes, the hash keeps its top 40 bits.
# The token is the chain's code at count N with the base put back in. Even
# counts are ADD, odd counts SET (standard tokens: value 998 on an odd count
# is DISABLE_PAYG, 999 COUNTER_SYNC).
#
# Finding N means walking the chain from count 0, one hash per count, to the
# furthest count the window allows (window.py); the first count whose code
# matches and that the window accepts wins. A match the window refuses makes
# the token "used", no match at all "invalid".
from micropython import const

from firmware.tokens.siphash import SipHash

_JUMP = const(64)        # a token may be this many counts ahead of the highest accepted
_JUMP_SYNC = const(100)  # ... a COUNTER_SYNC token this many
_MAX_STD = const(995)    # largest ADD/SET value of a standard token
_DISABLE = const(998)
_SYNC = const(999)
_OVER30 = const(73741825)   # 2**30 - 10**9: a 30-bit fold above 999999999 wraps by this
OVER40 = 99511627777        # 2**40 - 10**12, for extended codes (not a small int)


class Decoder:
    def __init__(self, key, starting_code=None):
        self.h = SipHash(key)
        if starting_code is None:
            d = self.h.digest(key)
            starting_code = _fold30((d >> 48) ^ ((d >> 16) & 0xFFFF),
                                    ((d >> 32) & 0xFFFF) ^ (d & 0xFFFF))
        self.start = starting_code

    def _next(self, code):
        # standard chain: the code's 4 bytes, big-endian, twice
        m0 = (code >> 24) | ((code >> 8) & 0xFF00)
        m1 = ((code >> 8) & 0xFF) | ((code & 0xFF) << 8)
        o = self.h.hash8(m0, m1, m0, m1)
        return _fold30(o[3] ^ o[1], o[2] ^ o[0])

    def _next_ext(self, code):
        # extended chain: the code's 8 bytes, big-endian (a code < 2**40)
        o = self.h.hash8(0, (code >> 32) << 8, ((code >> 24) & 0xFF) | ((code >> 8) & 0xFF00),
                         ((code >> 8) & 0xFF) | ((code & 0xFF) << 8))
        c = (o[3] << 24) | (o[2] << 8) | (o[1] >> 8)
        return c - OVER40 if c > 999999999999 else c

    def decode(self, digits, window):
        """(kind, count, value) of a token given as a string of digits:
        kind "add", "set", "disable" or "sync" for a token the window
        accepts (value: the raw token value, before any divider), else
        ("used", count, 0) or ("invalid", -1, 0)."""
        n = len(digits)
        if not 0 < n <= 12:
            return "invalid", -1, 0
        tok = int(digits)
        ext = n > 9
        mod = 1000000 if ext else 1000
        base = tok % mod
        hi = tok // mod
        value = (base - self.start % mod) % mod
        top = window.top
        last = top + (_JUMP_SYNC if value == _SYNC and not ext else _JUMP)
        code = self.start - self.start % mod + base
        seen = -1
        count = 0
        while count <= last:
            if code // mod == hi:
                kind = _kind(count, value, ext)
                # None: a value no encoder makes at this count's parity (a
                # chance match of the digits, not this token)
                if kind is not None:
                    if window.fresh(count, kind):
                        return kind, count, value
                    seen = count
            code = self._next_ext(code) if ext else self._next(code)
            count += 1
        if seen >= 0:
            return "used", seen, 0
        return "invalid", -1, 0


def _kind(count, value, ext):
    if not count & 1:
        return "add" if ext or value <= _MAX_STD else None
    if ext or value <= _MAX_STD:
        return "set"
    if value == _DISABLE:
        return "disable"
    if value == _SYNC:
        return "sync"
    return None


def _fold30(hi16, lo16):
    # (hi16 << 16 | lo16) >> 2 without a 32-bit intermediate (a big int on
    # the ESP32), then into 9 digits
    c = (hi16 << 14) | (lo16 >> 2)
    return c - _OVER30 if c > 999999999 else c
