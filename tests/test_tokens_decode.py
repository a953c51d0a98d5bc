"""OpenPAYGO Token decoding and the replay window (firmware/tokens/opaygo.py,
window.py) in the unix-port MicroPython, against tokens the reference package
`openpaygo` 0.6.3 makes: thousands of tokens over random keys, starting
codes, counts, values and dividers, standard and extended, entered in order,
out of order inside the window, replayed, SET after ADD, under the wrong key,
and garbage. What the meter must answer comes from tests/tokens_oracle.py
(the package's own chain hashing and the window as docs/tokens.md states
it); the two reference bugs are in test_tokens_reference_bugs.py."""
import json
import random

from openpaygo import decode_token
from openpaygo import TokenType

from mpy import run_mpy_rom
import tokens_oracle as O

WORKER = r"""
import sys, json, binascii, gc
from firmware.tokens.opaygo import Decoder
from firmware.tokens.window import Window
while True:
    line = sys.stdin.readline()
    if not line.strip():
        break
    case = json.loads(line)
    d = Decoder(binascii.unhexlify(case["key"]), case["start"])
    st = [0, 1]                  # the window as the snapshot holds it
    out = []
    for i, text in enumerate(case["entries"]):
        if i in case["reboots"]:
            st = json.loads(json.dumps(st))   # through the flash's JSON
        w = Window(st[0], st[1])
        digits = text.replace(" ", "").replace("-", "")
        r = d.decode(digits, w) if digits.isdigit() else ("invalid", -1, 0)
        if r[0] not in ("used", "invalid"):
            w.take(r[1], r[0])
            st = [w.top, w.used]
        out.append(list(r))
    print(json.dumps(out))
    gc.collect()
"""

DIVIDERS = (1, 2, 4, 5, 10, 20, 25, 50, 100)


def _key(rnd):
    return bytes(rnd.randrange(256) for _ in range(16)).hex()


def _case(rnd, n_issue):
    """One meter's life: the tokens a utility issues it, and what is typed."""
    key = _key(rnd)
    ext = rnd.random() < 0.25
    start = rnd.randrange(10 ** 9) if rnd.random() < 0.25 else None
    div = rnd.choice(DIVIDERS)
    count = rnd.choice((1, 1, 1, rnd.randrange(0, 400)))   # a meter new, or long in service
    issued = []
    for _ in range(n_issue):
        kinds = ["add"] * 14 + ["set"] * 3 + ([] if ext else ["disable", "sync", "sync"])
        kind = rnd.choice(kinds)
        raw = rnd.randrange(0, 999999 if ext else 995) if kind in ("add", "set") else None
        count, tok = O.issue(key, count, kind, raw, ext, start, div)
        issued.append(tok)
    entries = []
    pending = list(issued)
    while pending:
        r = rnd.random()
        if r < 0.12 and len(pending) > 1:                   # overtaken by up to 5 newer ones
            j = rnd.randrange(1, min(6, len(pending)))
            pending[0], pending[j] = pending[j], pending[0]
        if r < 0.04:
            pending.pop(0)                                   # never delivered: the counts jump
            continue
        tok = pending.pop(0)
        if rnd.random() < 0.2 and len(tok) == 9:
            tok = "%s %s %s" % (tok[:3], tok[3:6], tok[6:])   # typed as printed on a receipt
        entries.append(tok)
        x = rnd.random()
        if x < 0.12 and entries:                              # a replay of any earlier token
            entries.append(rnd.choice(entries))
        elif x < 0.17:                                        # the same token under another key
            entries.append(O.issue(_key(rnd), rnd.randrange(0, 200), "add", rnd.randrange(996), ext)[1])
        elif x < 0.22:                                        # garbage
            g = rnd.random()
            if g < 0.4:
                entries.append("".join(rnd.choice("0123456789") for _ in range(rnd.randrange(1, 15))))
            elif g < 0.7:
                entries.append("".join(rnd.choice("0123456789") for _ in range(9 if not ext else 12)))
            else:
                entries.append(rnd.choice(("12a456789", "", "   ", "#", "1-2-3", "９８７６５４３２１")))
    reboots = sorted(rnd.sample(range(len(entries)), min(3, len(entries))))
    return {"key": key, "start": start, "ext": ext, "entries": entries, "reboots": reboots}


def _run(cases):
    lines = "\n".join(json.dumps({k: c[k] for k in ("key", "start", "entries", "reboots")})
                      for c in cases) + "\n\n"
    out = run_mpy_rom(WORKER, stdin=lines, timeout=600)
    return [json.loads(l) for l in out.splitlines() if l.startswith("[")]


def test_thousands_of_reference_tokens_are_decoded_as_the_window_says():
    rnd = random.Random(15)
    cases = [_case(rnd, 30) for _ in range(80)]
    got = _run(cases)
    assert len(got) == len(cases)
    n = 0
    tally = {}
    cross = 0
    for case, answers in zip(cases, got):
        model = O.Model(O.Chains(case["key"], case["start"]))
        for text, answer in zip(case["entries"], answers):
            top, used = model.top, sorted(model.used)
            want = model.enter(text)
            assert answer == want, (case["key"], case["start"], text, answer, want)
            tally[want[0]] = tally.get(want[0], 0) + 1
            n += 1
            if want[0] in ("add", "set", "disable", "sync") and want[1] > top:
                # a token ahead of the window: the reference decoder agrees on its count and kind
                v, tt, count, _ = decode_token(token=text.replace(" ", ""), secret_key=case["key"],
                                               count=top, used_counts=used or [0],
                                               starting_code=case["start"])
                assert (O.KINDS.get(tt), count) == (want[0], want[1])
                cross += 1
        assert len(answers) == len(case["entries"])
    assert n >= 2500, n
    # every kind of answer was exercised, many times
    assert all(tally.get(k, 0) >= 20 for k in ("add", "set", "used", "invalid")), tally
    assert tally.get("disable", 0) >= 5 and tally.get("sync", 0) >= 5, tally
    assert cross >= 1000


def test_a_set_after_adds_marks_every_older_count_used_but_newer_adds_still_count():
    rnd = random.Random(7)
    key = _key(rnd)
    c, a1 = O.issue(key, 1, "add", 10)
    c, a2 = O.issue(key, c, "add", 20)
    c, s = O.issue(key, c, "set", 5)
    c, a3 = O.issue(key, c, "add", 30)
    [got] = _run([{"key": key, "start": None, "entries": [a2, s, a1, a3, a2], "reboots": []}])
    assert [g[0] for g in got] == ["add", "set", "used", "add", "used"]
    assert got[1][2] == 5 and got[3][2] == 30


def test_tokens_out_of_order_inside_the_window_are_each_credited_once():
    rnd = random.Random(8)
    key = _key(rnd)
    toks, c = [], 1
    for v in range(20):
        c, t = O.issue(key, c, "add", v + 1)
        toks.append(t)
    # ADD tokens take even counts: 2, 4, ... 40. The newest first (count
    # 40), then the 7 before it that are less than 16 counts behind (26-38)
    # in any order, then all of them again, then 24 (16 behind) and 2
    order = [toks[19]] + rnd.sample(toks[12:19], 7)
    order += order + [toks[11], toks[0]]
    [got] = _run([{"key": key, "start": None, "entries": order, "reboots": [3, 10]}])
    firsts = got[:8]
    assert all(g[0] == "add" for g in firsts), got
    assert sorted(g[2] for g in firsts) == list(range(13, 21))
    assert all(g[0] == "used" for g in got[8:]), got


def test_a_token_more_than_64_counts_ahead_is_invalid_until_the_meter_catches_up():
    rnd = random.Random(9)
    key = _key(rnd)
    c, near = O.issue(key, 1, "add", 1)
    c2, far = O.issue(key, c + 70, "add", 2)            # count 74: beyond 2 + 64
    c3, sync = O.issue(key, c + 60, "sync")             # count 63 would do; sync may jump 100
    [got] = _run([{"key": key, "start": None, "entries": [far, near, sync, far], "reboots": []}])
    assert [g[0] for g in got] == ["invalid", "add", "sync", "add"]
    assert got[3][1] == c2
