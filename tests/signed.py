"""Signed head-end commands for tests, through the reference head-end's codec."""
import itertools
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from headend import codec  # noqa: E402

KEY_HEX = "11" * 32
KEY = bytes.fromhex(KEY_HEX)
FAR_FUTURE = 4102444800  # 2100-01-01
_ctr = itertools.count(int.from_bytes(os.urandom(2), "big") + 1)


def command(meter_id, kind, ctr=None, key=KEY, exp=FAR_FUTURE, **fields):
    return codec.command(meter_id, key, ctr if ctr is not None else next(_ctr), exp, kind, **fields)


def verify(payload, key=KEY):
    return codec.verify(key, payload)
