"""The firmware codec (MicroPython) and the head-end codec (CPython) agree on
every byte: canonical encodings, HMACs, and what has no canonical form.
Plus the applied-order record against a small CPython model."""
import hashlib
import hmac
import json

from hypothesis import HealthCheck, given, settings, strategies as st

from headend import codec
from mpy import run_mpy

# RFC 4231 HMAC-SHA256 test cases 1, 2, 3, 6 (key longer than a block), 7.
RFC4231 = [
    (b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (b"\xaa" * 20, b"\xdd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (b"\xaa" * 131, b"This is a test using a larger than block-size key and a larger than block-size data. "
     b"The key needs to be hashed before being used by the HMAC algorithm.",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]

BATCH = r"""
import sys, json
from firmware.link import protocol as P
for line in sys.stdin:
    req = json.loads(line)
    s = P.Signer(bytes.fromhex(req["key"]))
    if "msg" in req:
        print(json.dumps({"mac": s.mac_hex(bytes.fromhex(req["msg"]))}))
        continue
    try:
        body = P.canonical(req["obj"])
        print(json.dumps({"canon": body.decode(), "wire": P.sign(s, req["obj"]).decode()}))
    except P.CanonError:
        print(json.dumps({"canon": None}))
"""


def mpy_batch(requests):
    out = run_mpy(BATCH, stdin="".join(json.dumps(r) + "\n" for r in requests))
    return [json.loads(l) for l in out.splitlines() if l.strip()]


def test_hmac_on_hashlib_matches_rfc_4231():
    got = mpy_batch([{"key": k.hex(), "msg": m.hex()} for k, m, _ in RFC4231])
    for (key, msg, want), g in zip(RFC4231, got):
        assert g["mac"] == want == hmac.new(key, msg, hashlib.sha256).hexdigest()


def test_constant_time_compare_tells_equal_from_different():
    out = run_mpy("from firmware.link.protocol import equal_ct as e\n"
                  "print(e('ab'*32, 'ab'*32), e('ab'*32, 'ab'*31+'ac'), e('ab', 'abc'), e(b'xy', b'xy'), e(b'xy', b'xz'))")
    assert out.split() == ["True", "False", "False", "True", "False"]


key_chars = "abcdefghijklmnopqrstuvwxyz0123456789_"
scalar = st.one_of(st.integers(-2**64, 2**64), st.text(max_size=70), st.booleans(), st.none())
value = st.recursive(scalar, lambda c: st.lists(c, max_size=5) | st.dictionaries(
    st.text(alphabet=key_chars + "A-", min_size=0, max_size=34), c, max_size=5), max_leaves=10)
body = st.dictionaries(st.text(alphabet=key_chars, min_size=1, max_size=8), value, max_size=8)
ascii_body = st.dictionaries(st.text(alphabet=key_chars, min_size=1, max_size=8),
                             st.recursive(st.integers(-2**40, 2**40) | st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=64),
                                          lambda c: st.lists(c, max_size=4) | st.dictionaries(
                                              st.text(alphabet=key_chars, min_size=1, max_size=6), c, max_size=4),
                                          max_leaves=12), max_size=10)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(st.one_of(body, ascii_body), st.binary(min_size=1, max_size=80)), min_size=20, max_size=40))
def test_firmware_and_head_end_give_the_same_bytes_and_macs(cases):
    got = mpy_batch([{"key": k.hex(), "obj": o} for o, k in cases])
    for (obj, key), g in zip(cases, got):
        try:
            want = codec.canonical(obj)
        except codec.CanonError:
            assert g["canon"] is None, obj
            continue
        assert g["canon"] is not None and g["canon"].encode() == want
        assert codec.verify(key, g["wire"].encode()) == dict(obj, mac=codec.mac_hex(key, want))


ORDERS = r"""
import sys, json
from firmware.link.orders import OrderBook
for line in sys.stdin:
    window, ops = json.loads(line)
    b = OrderBook(window)
    out = []
    for o in ops:
        hit = b.find(o)
        if hit is not None:
            out.append(["dup", hit[1]])
        elif b.forgotten(o) or b.too_old(o):
            out.append(["old"])
        else:
            b.add(o, o * 10, len(out) + 1)
            out.append(["new", len(out) + 1])
    c = OrderBook(window)
    c.load_rows(json.loads(json.dumps(b.rows())))   # through the state record's JSON
    out.append([c.floor, c.n, c.rows() == b.rows()])
    print(json.dumps(out))
"""


def orders_model(window, ops):
    kept, floor, out = {}, 0, []
    for o in ops:
        if o in kept:
            out.append(["dup", kept[o]])
        elif o <= floor or (len(kept) == window and o < min(kept)):
            out.append(["old"])
        else:
            if len(kept) == window:
                m = min(kept)
                del kept[m]
                floor = max(floor, m)
            kept[o] = len(out) + 1
            out.append(["new", len(out) + 1])
    out.append([floor, len(kept), True])
    return out


@settings(max_examples=10, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.lists(st.integers(1, 30), max_size=60)), min_size=10, max_size=30))
def test_order_record_matches_the_floor_plus_window_model(runs):
    out = run_mpy(ORDERS, stdin="".join(json.dumps([w, ops]) + "\n" for w, ops in runs))
    got = [json.loads(l) for l in out.splitlines() if l.strip()]
    for (w, ops), g in zip(runs, got):
        assert g == orders_model(w, ops)
        # the invariant that makes it safe: an order is never credited twice
        news = [o for o, r in zip(ops, g) if r[0] == "new"]
        assert len(news) == len(set(news))


def test_a_commlog_detail_the_codec_cannot_spell_is_kept_with_question_marks_and_still_signs():
    # commlog.py asks the codec (protocol.encodable) instead of keeping its own copy of the rule
    out = json.loads(run_mpy(r"""
import json
from firmware.link.commlog import CommLog
from firmware.link import protocol as P
log = CommLog(lambda: 1767225600)
log.add("disc", 'bad "quote" \\ and\ttab')
log.add("cmd", "topup:7")
log.add("big", "\u00e9t\u00e9 " + "x" * 40)
e = log.entries()
print(json.dumps({"entries": e, "canon": P.canonical({"log": e}).decode(),
                  "enc": [P.encodable("topup:7", 64), P.encodable('a"b', 64), P.encodable("\x7f", 64), P.encodable("x" * 65, 64)]}))
""").strip())
    assert out["entries"] == [[1767225600, "disc", "bad ?quote? ? and?tab"],
                              [1767225600, "cmd", "topup:7"],
                              [1767225600, "big", "?t? " + "x" * 20]]
    assert out["enc"] == [True, False, False, False]
    assert json.loads(out["canon"])["log"] == out["entries"]
