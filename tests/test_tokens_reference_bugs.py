"""The two flaws of the reference package's documented device flow, reproduced
with `openpaygo` 0.6.3, and the same entries on the meter (issue 15).

The package's README tells a device to store the count `decode_token()`
returns for every valid token, and the used-count list with it:
1. after an older token (still valid: it is inside the window and unused),
   the stored count goes down to the older token's count, so the newest
   token is then "ahead" again and credited a second time;
2. a device that starts with an empty used-count list gets None back after
   its first token, and the next replay raises TypeError (the very first
   replay is even accepted, because an empty list says nothing is used).
The meter keeps the highest count monotonic and remembers used counts from
the very first token (firmware/tokens/window.py): each token once, no error.
"""
import json

import pytest
from openpaygo import TokenType, decode_token

from mpy import run_mpy_rom
import tokens_oracle as O

KEY = "a29ab82edc5fbbc41ec9530f6dac86b1"


class ReadmeDevice:
    """The device-side flow of the package's README, line for line."""

    def __init__(self, used_counts):
        self.count = 1                  # "When a device is new, this is 1"
        self.used_counts = used_counts
        self.credit = 0

    def enter(self, token):
        value, token_type, updated_count, updated_used_counts = decode_token(
            token=token, secret_key=KEY, count=self.count, used_counts=self.used_counts)
        if token_type not in [TokenType.ALREADY_USED, TokenType.INVALID]:
            self.count = updated_count
            self.used_counts = updated_used_counts
        if token_type == TokenType.ADD_TIME:
            self.credit += value
        return token_type


SCRIPT = r"""
import sys, json
from firmware.boards.sim import SimBoard
from firmware.meter import MeterCore
from firmware import config
req = json.loads(sys.stdin.readline())
core = MeterCore(SimBoard(["--flash", req["dir"], "--step"]),
                 config.load({"meter_id": "RB-1", "token_key_hex": req["key"]}))
print(json.dumps([core.facade.token(t) for t in req["tokens"]] + [core.engine.balance_minor()]))
"""


def _meter(tmp_path, tokens):
    out = run_mpy_rom(SCRIPT, stdin=json.dumps({"dir": str(tmp_path), "key": KEY, "tokens": tokens}) + "\n")
    return json.loads(out.strip().splitlines()[-1])


def _two_tokens():
    c, older = O.issue(KEY, 1, "add", 10)    # count 2
    c, newer = O.issue(KEY, c, "add", 20)    # count 4
    return older, newer


def test_reference_flow_lowers_the_count_and_credits_the_newest_token_twice():
    older, newer = _two_tokens()
    d = ReadmeDevice(used_counts=[1])
    assert [d.enter(t) for t in (newer, older, newer)] == [TokenType.ADD_TIME] * 3
    assert d.count == 4 and d.credit == 50       # 20 + 10 + 20 again: the newest twice


def test_the_meter_credits_the_same_entries_once_each(tmp_path):
    older, newer = _two_tokens()
    got = _meter(tmp_path, [newer, older, newer])
    assert got == ["add 2000 2000 #4", "add 1000 3000 #2", "used 0 3000 #4", 3000]


def test_reference_flow_with_an_empty_used_list_accepts_a_replay_then_raises_type_error():
    older, _ = _two_tokens()
    d = ReadmeDevice(used_counts=[])
    assert d.enter(older) == TokenType.ADD_TIME
    assert d.used_counts is None                 # what the package hands back for []
    with pytest.raises(TypeError):
        d.enter(older)
    d2 = ReadmeDevice(used_counts=[])            # and before that: [] says "nothing used"
    d2.count = 2
    assert d2.enter(older) == TokenType.ADD_TIME


def test_the_meter_refuses_every_replay_from_the_first_token_on(tmp_path):
    older, newer = _two_tokens()
    got = _meter(tmp_path, [older, older, older, newer, older, newer])
    assert got == ["add 1000 1000 #2", "used 0 1000 #2", "used 0 1000 #2", "add 2000 3000 #4",
                   "used 0 3000 #2", "used 0 3000 #4", 3000]
