"""CPython side of the protocol codec: canonical encoding and HMAC-SHA256.

Written independently of firmware/link/protocol.py (stdlib json + hmac), so
the tests that compare the two catch a mistake in either.
"""
import hashlib
import hmac
import json

VERSION = 1
MAX_CMD_BYTES = 2048
MAX_STR = 64
MAX_KEY = 32
MAX_LIST = 64
MAX_DEPTH = 4
_KEY_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


class CanonError(ValueError):
    pass


def _check(v, depth):
    if isinstance(v, bool) or v is None or isinstance(v, float):
        raise CanonError("no canonical form for %r" % (v,))
    if isinstance(v, int):
        return
    if isinstance(v, str):
        if len(v) > MAX_STR or any(not (0x20 <= ord(c) <= 0x7E) or c in '"\\' for c in v):
            raise CanonError("string %r" % v)
        return
    if depth > MAX_DEPTH:
        raise CanonError("too deep")
    if isinstance(v, list):
        if len(v) > MAX_LIST:
            raise CanonError("list too long")
        for x in v:
            _check(x, depth + 1)
        return
    if isinstance(v, dict):
        if len(v) > MAX_LIST:
            raise CanonError("object too big")
        for k, x in v.items():
            if not isinstance(k, str) or not k or len(k) > MAX_KEY or set(k) - _KEY_CHARS:
                raise CanonError("key %r" % (k,))
            _check(x, depth + 1)
        return
    raise CanonError("type %s" % type(v).__name__)


def canonical(obj, skip="mac"):
    """Canonical bytes of a message body (sorted keys, no spaces), without `skip`."""
    if not isinstance(obj, dict):
        raise CanonError("top level must be an object")
    body = {k: v for k, v in obj.items() if k != skip}
    _check(body, 0)
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("ascii")


def mac_hex(key, msg):
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def sign(key, body):
    """Wire bytes: the canonical body with its "mac" field (all keys sorted)."""
    out = dict(body)
    out["mac"] = mac_hex(key, canonical(body))
    return json.dumps(out, sort_keys=True, separators=(",", ":")).encode("ascii")


def verify(key, payload):
    """Decode and authenticate a meter message; returns the dict or raises ValueError."""
    obj = json.loads(payload)
    if not isinstance(obj, dict) or not isinstance(obj.get("mac"), str):
        raise ValueError("unsigned message")
    if not hmac.compare_digest(mac_hex(key, canonical(obj)), obj["mac"]):
        raise ValueError("bad mac")
    return obj


def command(meter_id, key, ctr, exp, kind, **fields):
    """Signed wire bytes of a command."""
    body = {"v": VERSION, "meter": meter_id, "ctr": ctr, "exp": exp, "kind": kind}
    body.update(fields)
    return sign(key, body)
