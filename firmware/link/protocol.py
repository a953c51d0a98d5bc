# Head-end protocol codec: canonical encoding, HMAC-SHA256, limits, reason codes.
# Pure: no sockets, no asyncio, no clock. docs/protocol.md is the specification;
# tools/headend/codec.py is an independent CPython implementation of the same
# bytes, and the tests check that both agree.
#
# A message is a JSON object. Its canonical encoding is compact JSON with keys
# sorted by byte value, decimal integers, and strings restricted to printable
# ASCII without '"' or '\' (so no escapes ever appear). The MAC is
# HMAC-SHA256(key, canonical(body without "mac")), sent as 64 lowercase hex
# digits in the "mac" field. Floats, booleans and null are not allowed: they
# have no single canonical spelling across implementations.
import hashlib
import json

from micropython import const

VERSION = const(1)
MAX_CMD_BYTES = const(2048)   # whole MQTT payload of a command, checked before parsing
MAX_STR = const(64)           # characters in any string value
MAX_KEY = const(32)           # characters in an object key
MAX_LIST = const(64)          # items in a list, keys in an object
MAX_DEPTH = const(4)          # nesting of objects/lists below the top level
_MAC_HEX_LEN = const(64)

# Reason codes sent back in rejection acks (docs/protocol.md, "Reason codes").
OVERSIZED = "oversized"          # payload longer than MAX_CMD_BYTES (read through, not parsed)
MALFORMED = "malformed"          # not JSON, not an object, or a value with no canonical form
BAD_VERSION = "bad_version"      # "v" missing or not 1
WRONG_METER = "wrong_meter"      # "meter" is not this meter's id
BAD_MAC = "bad_mac"              # "mac" missing or wrong
UNKNOWN_KIND = "unknown_kind"    # authentic, but a kind this firmware does not know
MISSING_FIELD = "missing_field"  # a required field is absent
UNKNOWN_FIELD = "unknown_field"  # a field that this kind does not take
BAD_FIELD = "bad_field"          # wrong type or out of range
REPLAYED = "replayed"            # counter used before, or at or below the floor (replay.py)
EXPIRED = "expired"              # meter clock (synced) is past "exp"
ORDER_FORGOTTEN = "order_forgotten"  # top-up order at or below the order floor: credited long ago, or never
ORDER_TOO_OLD = "order_too_old"  # top-up order below the full order record, above its floor: never credited
# Reasons the meter facade may return are listed in commands.py.

_HEX = "0123456789abcdef"


class CanonError(ValueError):
    pass


def encodable(s, limit):
    """True when `s` is a string value the codec takes as it is: at most
    `limit` characters, each printable ASCII other than '"' and '\\'
    (docs/protocol.md)."""
    if len(s) > limit:
        return False
    for ch in s:
        o = ord(ch)
        if o < 0x20 or o > 0x7E or o == 0x22 or o == 0x5C:
            return False
    return True


def _key_ok(k):
    if not k or len(k) > MAX_KEY:
        return False
    for ch in k:
        if not ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "_"):
            return False
    return True


# Every message is encoded into this one buffer, then copied out once at its
# exact size. Building it from a list of pieces took three blocks of its size
# or more (the list, the joined text, the bytes), and a heap the size of the
# ESP32's, fragmented after days of running, may have none of them.
# Messages are built one at a time (one asyncio thread), never nested.
MAX_MSG = const(2560)  # longest encoded message either way, MAC included
_buf = bytearray(MAX_MSG)
_mv = memoryview(_buf)
_pos = 0


def _put(b):
    global _pos
    n = _pos + len(b)
    if n > MAX_MSG:
        raise CanonError("too long")
    _mv[_pos:n] = b
    _pos = n


def _enc(v, depth):
    # bool is tested first: CPython treats True as an int, MicroPython does not.
    if v is True or v is False or v is None:
        raise CanonError("bool/null")
    t = type(v)
    if t is int:
        _put(str(v).encode())
    elif t is str:
        if not encodable(v, MAX_STR):
            raise CanonError("string")
        _put(b'"')
        _put(v.encode())
        _put(b'"')
    elif depth > MAX_DEPTH:
        raise CanonError("depth")
    elif t is list:
        if len(v) > MAX_LIST:
            raise CanonError("list")
        _put(b"[")
        first = True
        for item in v:
            if not first:
                _put(b",")
            first = False
            _enc(item, depth + 1)
        _put(b"]")
    elif t is dict:
        _enc_obj(v, depth, None)
    else:
        raise CanonError("type")


def _enc_obj(d, depth, skip):
    if len(d) > MAX_LIST:
        raise CanonError("object")
    keys = sorted(d)
    _put(b"{")
    first = True
    for k in keys:
        if type(k) is not str or not _key_ok(k):
            raise CanonError("key")
        if k == skip:
            continue
        if not first:
            _put(b",")
        first = False
        _put(b'"')
        _put(k.encode())
        _put(b'":')
        _enc(d[k], depth + 1)
    _put(b"}")


def _encode(obj, skip):
    # canonical form of obj into _buf; returns its length
    global _pos
    if type(obj) is not dict:
        raise CanonError("top level")
    _pos = 0
    _enc_obj(obj, 0, skip)
    return _pos


def canonical(obj, skip="mac"):
    """Canonical bytes of a dict, leaving out the key `skip` (the MAC field).
    Raises CanonError for values with no canonical form."""
    return bytes(_mv[:_encode(obj, skip)])


def _sealed(signer, n):
    # the canonical body in _buf[:n] becomes the wire form: ',"mac":"<hex>"'
    # goes before the closing brace. One allocation: the result.
    global _pos
    mac = signer.mac_hex(_mv[:n]).encode()
    _pos = n - 1
    if n > 2:
        _put(b",")
    _put(b'"mac":"')
    _put(mac)
    _put(b'"}')
    return bytes(_mv[:_pos])


def hexlify(b):
    out = []
    for x in b:
        out.append(_HEX[x >> 4])
        out.append(_HEX[x & 15])
    return "".join(out)


class Signer:
    """HMAC-SHA256 (RFC 2104) on hashlib.sha256, for one per-meter key.
    MicroPython has no hmac module; the padded keys are computed once."""

    def __init__(self, key):
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = bytes(key) + bytes(64 - len(key))
        self._ipad = bytes(b ^ 0x36 for b in key)
        self._opad = bytes(b ^ 0x5C for b in key)

    def digest(self, msg):
        inner = hashlib.sha256(self._ipad)
        inner.update(msg)
        outer = hashlib.sha256(self._opad)
        outer.update(inner.digest())
        return outer.digest()

    def mac_hex(self, msg):
        return hexlify(self.digest(msg))

    def verify(self, msg, mac_hex):
        """True when mac_hex is the MAC of msg. Time does not depend on where
        the first differing digit is (only on the fixed MAC length)."""
        if type(mac_hex) is not str or len(mac_hex) != _MAC_HEX_LEN:
            return False
        return equal_ct(self.mac_hex(msg), mac_hex)


def equal_ct(a, b):
    """Constant-time equality of two equal-length strings or byte strings."""
    if len(a) != len(b):
        return False
    diff = 0
    if type(a) is str:
        for i in range(len(a)):
            diff |= ord(a[i]) ^ ord(b[i])
    else:
        for i in range(len(a)):
            diff |= a[i] ^ b[i]
    return diff == 0


def seal(signer, body_canonical):
    """Wire bytes for a canonical body: the body with ',"mac":"<hex>"' put
    before its closing brace. Receivers recompute the canonical form, so the
    field order on the wire does not matter to them."""
    global _pos
    _pos = 0
    _put(body_canonical)
    return _sealed(signer, _pos)


def sign(signer, body):
    """Wire bytes for a dict body (meter -> server acks, events, state)."""
    return _sealed(signer, _encode(body, "mac"))


def wire(d):
    """A copy of a flat dict in its wire form: flags as 0/1, absent values
    (None) left out. The state snapshot reaches the head-end this way, on
    .../state and in a "query state" answer alike."""
    out = {}
    for k in d:
        v = d[k]
        if v is None:
            continue
        out[k] = int(v) if v is True or v is False else v
    return out


# What the meter reads from the head of an oversized command (docs/protocol.md,
# "Oversized commands"): the value after the first '"ctr":' and after the
# first '"kind":"', in the first HEAD_BYTES of the payload.
HEAD_BYTES = const(128)
_CTR_DIGITS = const(15)     # 2**48 - 1 has 15
_KIND_CHARS = const(16)


def head_int(head, key):
    """The canonical decimal integer right after `key` in `head`, or None."""
    i = head.find(key)
    if i < 0:
        return None
    i += len(key)
    n = 0
    j = i
    while j < len(head) and j - i <= _CTR_DIGITS and 0x30 <= head[j] <= 0x39:
        n = n * 10 + head[j] - 0x30
        j += 1
    if j == i or j - i > _CTR_DIGITS or j >= len(head) or head[j] not in b",}":
        return None
    if head[i] == 0x30 and j - i > 1:
        return None   # a leading zero: not canonical
    return n


def head_str(head, key):
    """The short string value right after `key` (which ends in '"'), or None."""
    i = head.find(key)
    if i < 0:
        return None
    i += len(key)
    j = head.find(b'"', i, i + _KIND_CHARS + 1)
    if j < 0:
        return None
    try:
        return bytes(head[i:j]).decode()
    except Exception:
        return None


def parse(raw):
    """Decode a received payload. Returns (obj, None) or (None, reason).
    Only limits and JSON shape are checked here; authenticity is checked by
    the caller with check_mac()."""
    if len(raw) > MAX_CMD_BYTES:
        return None, OVERSIZED
    try:
        obj = json.loads(raw)
    except Exception:
        return None, MALFORMED
    if type(obj) is not dict:
        return None, MALFORMED
    return obj, None


def check_mac(signer, obj, raw):
    """Returns None when raw (the payload obj was parsed from) is canonical
    and carries a valid MAC, else a reason code.

    Commands must arrive in canonical form, "mac" included in its sorted
    place: MicroPython's json accepts some broken documents (a "]" closing an
    object), and one accepted spelling per command leaves nothing to argue."""
    mac = obj.get("mac")
    if type(mac) is not str:
        return BAD_MAC
    try:
        n = _encode(obj, None)
        if n != len(raw) or not _same(raw, n):
            return MALFORMED
        n = _encode(obj, "mac")
    except CanonError:
        return MALFORMED
    if not signer.verify(_mv[:n], mac):
        return BAD_MAC
    return None


def _same(raw, n):
    b = _buf
    for i in range(n):
        if b[i] != raw[i]:
            return False
    return True
