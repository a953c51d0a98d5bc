"""Fuzzing the command path: hypothesis builds payloads in CPython, one
long-lived MicroPython process per test dispatches them (thousands per
process) through firmware/link/commands.py with a fake meter facade that
records every call. Every bad payload must get a signed rejection ack with the
expected reason, and nothing may change: counter, order record, facade.
"""
import json
import os
import random
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from headend import codec
from mpy import HEAP, MICROPYTHON, ROOT, mpy_path

KEY = bytes(range(32))
METER = "MTR-0001"
NOW = 1767225600   # 2026-01-01, the fake meter's synced clock
EXAMPLES = 2500    # per test; four tests: 10,000 examples in `make test`

# A fake facade for the dispatcher: a tiny ledger that records every call.
# The worker answers one JSON line per request with the ack and a fingerprint
# of all the state a command could change.
WORKER = r"""
import sys, json
from binascii import crc32
from firmware.link.commands import Dispatcher
from firmware.link.commlog import CommLog
from firmware.link.orders import OrderBook

class FakeMeter:
    def __init__(self):
        self.calls = []
        self.balance = 1000
        self.seq = 0
        self.now = %(now)d
        self.commits = 0
    def topup(self, order, amount):
        self.calls.append(["topup", order, amount])
        if amount == 666:
            return ("limit", 0, 0)
        self.balance += amount
        self.seq += 1
        return ("credited", self.balance, self.seq)
    def tariff(self, version, at, t):
        self.calls.append(["tariff", version, at])
        return "bad_tariff" if t.get("kind") == "bad" else None
    def relay(self, action):
        self.calls.append(["relay", action])
    def set_mode(self, mode):
        self.calls.append(["mode", mode])
    def configure(self, s):
        self.calls.append(["config", sorted(s)])
    def set_time(self, utc_s):
        self.calls.append(["time", utc_s])
        self.now = utc_s
    def utc_now(self):
        return self.now
    def state(self):
        s = {"balance_minor": self.balance, "seq": self.seq}
        s.update(extra)
        return s
    def billing(self, since):
        return [{"seq": since + 1, "energy_wh": 5}]
    def billing_monthly(self, since):
        return [[since + 1, 5]]
    def commit(self):
        self.commits += 1

def make(window):
    global meter, disp
    meter = FakeMeter()
    disp = Dispatcher(%(meter)r, %(key)r, meter, OrderBook(window), CommLog(meter.utc_now))

def fingerprint():
    return "%%d|%%d|%%d|%%d|%%d|%%d" %% (disp.ctrs.last, len(meter.calls), meter.commits, meter.balance,
                                     crc32(json.dumps(disp.orders.rows())), crc32(json.dumps(disp.ctrs.rows())))

extra = {}   # more state fields, set by the "extra" op (flags, nulls, values with no wire form)
make(64)
while True:
    line = sys.stdin.readline()
    if not line:
        break
    req = json.loads(line)
    op = req["op"]
    if op == "cmd":
        ack = disp.handle(bytes.fromhex(req["hex"]))
        out = {"ack": ack.decode(), "fp": fingerprint(), "calls": meter.calls[-1:]}
    elif op == "now":
        meter.now = req["now"]
        out = {"fp": fingerprint()}
    elif op == "extra":
        extra = {"flag": True, "off": False, "none": None} if req["what"] == "flags" else {"x": 1.5}
        out = {"fp": fingerprint()}
    elif op == "reset":
        make(req.get("window", 64))
        out = {"fp": fingerprint()}
    elif op == "restart":
        saved = disp.dump()
        old = meter
        make(req.get("window", 64))
        meter.balance, meter.seq, meter.now = old.balance, old.seq, old.now
        disp.load(saved)
        out = {"fp": fingerprint(), "dump_len": len(saved)}
    elif op == "restart_from":
        make(req.get("window", 64))
        disp.load(req["saved"])
        out = {"fp": fingerprint()}
    else:
        out = {"error": op}
    sys.stdout.write(json.dumps(out) + "\n")
""" % {"now": NOW, "meter": METER, "key": KEY}


class MpyMeter:
    """A MicroPython process running the dispatcher over a line protocol."""

    def __init__(self):
        env = dict(os.environ, MICROPYPATH=mpy_path())
        self.p = subprocess.Popen([MICROPYTHON, "-X", "heapsize=" + HEAP, "-c", WORKER], cwd=ROOT, env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def call(self, **req):
        self.p.stdin.write(json.dumps(req) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise AssertionError("micropython worker died (rc=%s)" % self.p.wait(5))
        out = json.loads(line)
        if "ack" in out:
            out["ack"] = codec.verify(KEY, out["ack"].encode())   # every ack is signed
        return out

    def send(self, payload):
        return self.call(op="cmd", hex=payload.hex())

    def close(self):
        self.p.stdin.close()
        self.p.wait(10)


@pytest.fixture(scope="module")
def meter():
    m = MpyMeter()
    # Every command in these tests is refused, so the state must stay at this.
    m.fp0 = m.call(op="reset")["fp"]
    yield m
    m.close()


def signed(ctr=5_000, exp=NOW + 600, kind="topup", **fields):
    return codec.command(METER, KEY, ctr, exp, kind, **fields)


# Valid templates of every command kind; mutations below make them invalid.
TEMPLATES = {
    "topup": {"order": 7, "amount_minor": 500},
    "tariff": {"version": 2, "activate_utc_s": 0, "tariff": {"kind": "flat", "price_milli_per_kwh": 150000}},
    "relay": {"action": "disconnect"},
    "mode": {"mode": "postpaid"},
    "config": {"settings": {"warn1_minor": 5000}},
    "time": {"utc_s": NOW},
    "query": {"what": "state"},
    "token": {"token": "123456789"},
}
INT_RANGES = {"order": (1, 2**31 - 1), "amount_minor": (1, 100_000_000), "version": (1, 2**31 - 1),
              "activate_utc_s": (0, 2**32 - 1), "utc_s": (1577836800, 2**32 - 1)}
CHOICES = {"action": ("connect", "disconnect"), "mode": ("prepaid", "postpaid")}
COMMON = {"v", "meter", "ctr", "exp", "kind", "mac"}
# names an extra field cannot take: optional fields, and codec.command()'s own arguments
SIGNED_ARGS = {"since", "meter_id", "key"}
LOWER = "abcdefghijklmnopqrstuvwxyz"

json_scalar = st.one_of(st.integers(-2**70, 2**70), st.text(max_size=8), st.booleans(), st.none(),
                        st.floats(allow_nan=False, allow_infinity=False))
json_value = st.recursive(json_scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                          max_leaves=4)


def out_of_range(lo, hi):
    return st.one_of(st.integers(max_value=lo - 1), st.integers(min_value=hi + 1))


def wrong_type_for_int():
    return st.one_of(st.text(max_size=10, alphabet="abc123"), st.lists(st.integers(), max_size=3),
                     st.dictionaries(st.sampled_from("abc"), st.integers(), max_size=2))


@st.composite
def invalid_but_signed(draw):
    """(payload, expected reason): authentic commands that break one rule."""
    kind = draw(st.sampled_from(sorted(TEMPLATES)))
    fields = json.loads(json.dumps(TEMPLATES[kind]))
    how = draw(st.sampled_from(["range", "type", "missing", "extra", "kind", "choice", "config", "common"]))
    reason = "bad_field"
    int_fields = [f for f in fields if f in INT_RANGES]
    if how == "range" and int_fields:
        f = draw(st.sampled_from(int_fields))
        fields[f] = draw(out_of_range(*INT_RANGES[f]))
    elif how == "type" and int_fields:
        fields[draw(st.sampled_from(int_fields))] = draw(wrong_type_for_int())
    elif how == "missing":
        del fields[draw(st.sampled_from(sorted(fields)))]
        reason = "missing_field"
    elif how == "extra":
        name = draw(st.text(alphabet=LOWER + "_", min_size=1, max_size=12).filter(
            lambda n: n not in fields and n not in COMMON and n not in SIGNED_ARGS))
        fields[name] = draw(st.integers(0, 9))
        reason = "unknown_field"
    elif how == "kind":
        kind = draw(st.text(alphabet=LOWER + "_", min_size=1, max_size=12).filter(lambda k: k not in TEMPLATES))
        reason = "unknown_kind"
    elif how == "choice" and kind in ("relay", "mode"):
        f = next(iter(fields))
        fields[f] = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", max_size=12).filter(lambda s: s not in CHOICES[f]))
    elif how == "config":
        kind, fields = "config", {"settings": {}}
        sub = draw(st.sampled_from(["unknown", "range", "empty", "holidays"]))
        if sub == "unknown":
            fields["settings"] = {draw(st.text(alphabet=LOWER, min_size=1, max_size=10)): 1}
            reason = "unknown_field"
        elif sub == "range":
            fields["settings"] = {"report_interval_s": draw(out_of_range(60, 86400))}
        elif sub == "empty":
            reason = "missing_field"
        else:
            fields["settings"] = {"holidays": draw(st.lists(st.integers(0, 19700100), min_size=1, max_size=3))}
    elif how == "common":
        which = draw(st.sampled_from(["ctr", "exp"]))
        body = {"v": 1, "meter": METER, "ctr": 5000, "exp": NOW + 600, "kind": kind}
        body.update(fields)
        body[which] = draw(st.one_of(st.integers(max_value=0 if which == "ctr" else -1), st.integers(min_value=2**48),
                                     st.text(max_size=5, alphabet="xyz")))
        return codec.sign(KEY, body), reason
    else:
        # the chosen mutation does not apply to this kind: fall back to a missing field
        del fields[next(iter(fields))]
        reason = "missing_field"
    return signed(kind=kind, **fields), reason


def assert_rejected_without_change(out, fp0, reason=None):
    ack = out["ack"]
    assert ack["result"] == "rejected", ack
    assert isinstance(ack.get("reason"), str) and ack["reason"], ack
    if reason:
        assert ack["reason"] == reason, ack
    assert out["fp"] == fp0, "state changed by a rejected command"


FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])


@FUZZ
@given(payload=st.one_of(st.binary(max_size=400), st.builds(lambda b: b"{" + b, st.binary(max_size=200)),
                        # long payloads are built from a seed: hypothesis is slow at drawing 2 KB byte by byte
                        st.builds(lambda seed, n: random.Random(seed).randbytes(n), st.integers(0, 2**32), st.integers(0, 2200))))
def test_random_bytes_are_rejected_with_a_reason_and_change_nothing(meter, payload):
    fp0 = meter.fp0
    out = meter.send(payload)
    assert_rejected_without_change(out, fp0)
    if len(payload) > 2048:
        assert out["ack"]["reason"] == "oversized"


@FUZZ
@given(body=st.dictionaries(st.sampled_from(sorted(COMMON | {"order", "amount_minor", "x"})), json_value, max_size=6)
       | st.dictionaries(st.text(max_size=4), json_scalar, max_size=4), forge=st.booleans())
def test_unsigned_or_forged_json_is_rejected_and_changes_nothing(meter, body, forge):
    fp0 = meter.fp0
    if forge:
        body = dict(body, v=1, meter=METER)
        try:
            body["mac"] = codec.mac_hex(b"not the meter key", codec.canonical(body))
        except codec.CanonError:
            body["mac"] = "0" * 64
    out = meter.send(json.dumps(body).encode())
    assert_rejected_without_change(out, fp0)
    if forge:
        assert out["ack"]["reason"] in ("bad_mac", "malformed", "oversized")


@FUZZ
@given(case=invalid_but_signed())
def test_authentic_but_invalid_commands_get_the_exact_reason_and_change_nothing(meter, case):
    payload, reason = case
    fp0 = meter.fp0
    out = meter.send(payload)
    assert_rejected_without_change(out, fp0, reason)
    assert out["calls"] == []


@FUZZ
@given(kind=st.sampled_from(sorted(TEMPLATES)), pos=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_single_bit_flip_of_a_signed_command_is_refused(meter, kind, pos, bit):
    fp0 = meter.fp0
    raw = bytearray(signed(kind=kind, **TEMPLATES[kind]))
    pos %= len(raw)
    raw[pos] ^= 1 << bit
    out = meter.send(bytes(raw))
    assert_rejected_without_change(out, fp0)
