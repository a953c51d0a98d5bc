"""Offline tokens in the meter core (firmware/tokens/entry.py through
core.facade.token), in the unix-port MicroPython at the ESP32 heap with the
compiled firmware, on the sim board's LittleFS: the money (value / divider
x 10**decimals minor units, in the one ledger), SET as a ledger adjustment,
DISABLE_PAYG as postpaid, COUNTER_SYNC, the token events, the lockout in
meter time, and the window and the lockout surviving a reboot."""
import json

import pytest

from mpy import run_mpy_rom
import tokens_oracle as O

KEY = "0f0e0d0c0b0a09080706050403020100"

SCRIPT = r"""
import sys, json
from firmware.boards.sim import SimBoard
from firmware.meter import MeterCore
from firmware import config
req = json.loads(sys.stdin.readline())
board = SimBoard(["--flash", req["dir"], "--step"])
cfg = config.load(req["cfg"])
core = MeterCore(board, cfg)
out = []
for step in req["steps"]:
    if step[0] == "token":
        line = core.facade.token(step[1])
        e = core.engine
        out.append({"line": line, "balance": e.balance_minor(), "mode": e.policy.mode,
                    "relay": core.relay_now()[0], "last": list(core.last_token),
                    "conserved": e.ledger.conserved()})
    elif step[0] == "advance":
        board.advance(step[1])
    elif step[0] == "load":
        board.set_load(step[1])
    elif step[0] == "tick":
        core.tick()
    elif step[0] == "reboot":
        core = MeterCore(board, cfg)   # RAM gone; the flash and the clock go on
        tok = core.durable.tok   # a copy: the live list changes with the next token
        out.append({"rebooted": core.engine.balance_minor(), "tok": tok and list(tok)})
events = []
for ent in core.events.outbox.entries:
    ev = json.loads(ent[3])
    if ev["kind"] in ("token", "ledger", "topup", "mode"):
        events.append(ev)
out.append({"events": events})
print(json.dumps(out))
"""


def _run(tmp_path, steps, **cfg):
    c = {"meter_id": "TK-1", "initial_balance_minor": 1000, "token_key_hex": KEY}
    c.update(cfg)
    out = run_mpy_rom(SCRIPT, stdin=json.dumps({"dir": str(tmp_path / "m"), "cfg": c, "steps": steps}) + "\n")
    res = json.loads(out.strip().splitlines()[-1])
    return res[:-1], res[-1]["events"]


@pytest.mark.parametrize("divider,decimals,raw,minor", [
    (1, 2, 12, 1200), (10, 2, 125, 1250), (100, 2, 995, 995), (4, 2, 7, 175), (1, 0, 250, 250),
    (25, 3, 999999, 39999960)])
def test_a_token_credits_its_value_over_the_divider_in_minor_units(tmp_path, divider, decimals, raw, minor):
    ext = raw > 995
    _, tok = O.issue(KEY, 1, "add", raw, ext=ext, divider=divider)
    got, events = _run(tmp_path, [["token", tok], ["token", tok]], token_value_divider=divider,
                       decimals=decimals)
    assert got[0]["line"] == "add %d %d #2" % (minor, 1000 + minor)
    assert got[0]["last"] == ["add", minor, 2, 1000 + minor] and got[0]["conserved"]
    assert got[1]["line"] == "used 0 %d #2" % (1000 + minor)
    # one ledger entry (a top-up whose ref names the token, never an order number), two token events
    led = [e for e in events if e["kind"] == "ledger"]
    assert [(e["entry"], e["ref"], e["amount_minor"]) for e in led] == [("topup", "tok2", minor)]
    assert not [e for e in events if e["kind"] == "topup"]
    toks = [(e["result"], e["count"], e["amount_minor"], e["balance_minor"]) for e in events if e["kind"] == "token"]
    assert toks == [("add", 2, minor, 1000 + minor), ("used", 2, 0, 1000 + minor)]


def test_set_disable_and_sync_do_what_docs_tokens_says(tmp_path):
    c, add = O.issue(KEY, 1, "add", 5)
    c, s = O.issue(KEY, c, "set", 3)
    c, dis = O.issue(KEY, c, "disable")
    c, s2 = O.issue(KEY, c, "set", 0)
    c, sync = O.issue(KEY, c + 40, "sync")
    c_sync = c
    c, late = O.issue(KEY, c, "add", 1)
    steps = [["token", add], ["token", s], ["token", dis], ["load", 3000], ["advance", 3600000], ["tick"],
             ["token", s2], ["token", sync], ["token", late]]
    got, events = _run(tmp_path, steps)
    assert got[0]["line"] == "add 500 1500 #2"
    # SET: the balance becomes 3.00, a ledger adjustment of the difference
    assert got[1]["line"] == "set -1200 300 #3" and got[1]["conserved"]
    # DISABLE_PAYG: postpaid, the relay stays closed while the balance runs below zero
    assert got[2]["line"] == "disable 0 300 #5" and got[2]["mode"] == "postpaid" and got[2]["relay"]
    # SET again: prepaid, balance 0 (after the hour's charge), and the relay opens
    assert got[3]["line"].startswith("set ") and got[3]["balance"] == 0 and got[3]["mode"] == "prepaid"
    assert got[3]["relay"] is False
    assert got[4]["line"] == "sync 0 0 #%d" % c_sync
    assert got[5]["line"] == "add 100 100 #%d" % c
    adj = [(e["entry"], e["ref"], e["reason"]) for e in events if e["kind"] == "ledger" and e["entry"] == "adjust"]
    assert adj == [("adjust", "tok3", "token_set"), ("adjust", "tok7", "token_set")]
    assert [e["mode"] for e in events if e["kind"] == "mode"] == ["postpaid", "prepaid"]


def test_invalid_tokens_lock_entry_after_three_with_a_doubling_delay_that_a_reboot_keeps(tmp_path):
    _, good = O.issue(KEY, 1, "add", 1)
    bad = ["111111111", "222222222", "333333333"]
    steps = [["token", t] for t in bad]                      # free errors
    steps += [["token", "444444444"], ["token", good]]       # the 4th locks for 60 s: even a good token waits
    steps += [["advance", 59000], ["token", good], ["advance", 1000], ["token", "555555555"]]  # 120 s now
    steps += [["reboot"], ["advance", 119000], ["token", good], ["advance", 1000], ["token", good]]
    got, events = _run(tmp_path, steps)
    lines = [g.get("line", "reboot") for g in got]
    assert lines[:4] == ["invalid 0 1000"] * 4
    assert lines[4] == "locked 0 1000"
    assert lines[5] == "locked 0 1000"
    assert lines[6] == "invalid 0 1000"
    assert lines[7] == "reboot" and got[7]["tok"][2] == 5      # five invalid in a row, on flash
    assert lines[8] == "locked 0 1000"                        # 119 s after: still locked across the reboot
    assert lines[9] == "add 100 1100 #2"
    assert [e["result"] for e in events if e["kind"] == "token"][-1] == "add"


def test_the_window_survives_a_reboot_so_a_token_is_credited_once(tmp_path):
    c, a = O.issue(KEY, 1, "add", 2)
    c, b = O.issue(KEY, c, "add", 3)
    got, _ = _run(tmp_path, [["token", b], ["reboot"], ["token", b], ["token", a], ["reboot"], ["token", a]])
    assert [g.get("line") for g in got] == ["add 300 1300 #4", None, "used 0 1300 #4", "add 200 1500 #2",
                                            None, "used 0 1500 #2"]
    assert got[1]["rebooted"] == 1300 and got[4]["rebooted"] == 1500


def test_without_a_usable_token_key_every_token_is_invalid(tmp_path):
    _, tok = O.issue(KEY, 1, "add", 1)
    for cfg in ({"token_key_hex": None}, {"token_key_hex": "abcd"}, {"token_value_divider": 3},
                {"token_starting_code": "12"}):
        got, _ = _run(tmp_path, [["token", tok]], **cfg)
        assert got[0]["line"] == "invalid 0 1000", cfg


def test_a_provisioned_starting_code_is_the_one_the_chain_starts_from(tmp_path):
    _, tok = O.issue(KEY, 1, "add", 9, start=123456789)
    got, _ = _run(tmp_path, [["token", tok]], token_starting_code=123456789)
    assert got[0]["line"] == "add 900 1900 #2"
    (tmp_path / "b").mkdir()
    got, _ = _run(tmp_path / "b", [["token", tok]])       # the derived one: another chain
    assert got[0]["line"] == "invalid 0 1000"
