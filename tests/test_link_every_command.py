"""Every command gets exactly one ack (issue 12), through a real mosquitto.

One sim meter (the compiled firmware) is sent one valid command of every
kind and every query docs/protocol.md lists, read from the page itself, so a
kind added to the docs is tested here. A command whose handler raises (the
raise injected by a monkeypatch in the test's own MicroPython script, as a
bug or an allocation failure would) gets a signed rejection with a reason,
and the meter restarts from its flash state after the ack has left."""
import json
import os
import re
import subprocess
import time

import pytest

import ota_bundle
import signed
from broker import mosquitto_path
from mpy import MICROPYTHON, mpy_path
from mqttc import Watcher
from simmeter import COMPILED, ensure_compiled

pytestmark = pytest.mark.skipif(not mosquitto_path(), reason="needs mosquitto")
DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "protocol.md")
NOW = 1767225600

# a valid body for every kind the docs list (a kind without one here fails the test)
FIELDS = {
    "time": {"utc_s": NOW},
    "topup": {"order": 1, "amount_minor": 500},
    "tariff": {"version": 2, "activate_utc_s": 0, "tariff": {"price_milli_per_kwh": 300000}},
    "relay": {"action": "disconnect"},
    "mode": {"mode": "postpaid"},
    "config": {"settings": {"warn1_minor": 5000, "warn2_minor": 1000}},
    "token": {"token": "123 456 789"},   # the meter has no token key: "invalid", still ok
    # a signed offer to a meter without an update key: refused, one ack (tests/test_ota.py
    # takes offers further)
    "ota": {"manifest": ota_bundle.build(b"\x00" * 4096, 2, "SIM.1", bytes.fromhex("5a" * 32))[0]},
}


def section(doc, title):
    return doc.split("\n" + title + "\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def documented():
    """(kinds, query whats, ack fields by result, state fields) from docs/protocol.md."""
    doc = open(DOC).read()
    cmds = section(doc, "## Commands")
    table = cmds.split("\n| kind |", 1)[1].split("\n\n", 1)[0]
    kinds = re.findall(r"^\| `([a-z_]+)` \|", table, re.M)
    query_row = [line for line in cmds.splitlines() if line.startswith("| `query` |")][0]
    whats = re.findall(r"`([a-z_]+)`", query_row.split("`what`:", 1)[1].split(";")[0])
    acks = {}
    for line in section(doc, "## Acks").split("### Reason codes")[0].splitlines():
        m = re.match(r"^\| ((?:`[a-z_]+`(?:, )?)+) \| ([^|]+) \|", line)
        if m:
            acks[tuple(re.findall(r"`([a-z_]+)`", m.group(1)))] = m.group(2).strip()
    state = []
    for line in section(doc, "## State snapshot").splitlines():
        m = re.match(r"^\| ([^|]+) \| ([^|]+) \|", line)
        if m and "…" not in m.group(1):
            if m.group(2).startswith(("with a modem", "only in fault", "as for every message")):
                continue
            state += re.findall(r"`([a-z_0-9]+)`", m.group(1))
    return kinds, whats, acks, state


def expected_ack_fields(acks, kind, result):
    """The ack fields the docs promise for this kind and result."""
    want = set()
    for fields, when in acks.items():
        if (when == "always" or (when == "when the kind was a known one")
                or (when == "rejected" and result == "rejected")
                or (when == "top-up" and kind == "topup")
                or (when == "top-up credited/duplicate" and kind == "topup" and result in ("credited", "duplicate"))
                or (when == "top-up credited/duplicate, token"
                    and (kind == "topup" and result in ("credited", "duplicate") or kind == "token"))
                or (when == "query, token" and kind in ("query", "token") and result == "ok")):
            want.update(fields)
    return want


def test_every_documented_command_and_query_gets_exactly_one_ack_with_the_documented_fields(broker, sim_meters):
    kinds, whats, acks, state_fields = documented()
    assert {"topup", "tariff", "relay", "mode", "config", "time", "query"} <= set(kinds)
    assert {"state", "commlog", "billing", "billing_monthly", "events"} <= set(whats)
    assert "balance_minor" in state_fields and "relay_closed" in state_fields
    m = sim_meters("A1", broker_port=broker.port,
                   config={"key_hex": signed.KEY_HEX, "initial_balance_minor": 100000}).start()
    m.wait_for(lambda s: s["meter"]["link_up"], timeout=30)
    w = Watcher(broker.port, topics=("meters/A1/ack",))
    try:
        sent = []
        # the time first: then every ack carries the meter's time, "t"
        for kind in ["time"] + [k for k in kinds if k not in ("time", "query")]:
            sent.append((kind, None, signed.command("A1", kind, **FIELDS[kind])))
        for what in whats:
            extra = {"since": 0} if what != "state" else {}
            sent.append(("query", what, signed.command("A1", "query", what=what, **extra)))
        ctrs = []
        for kind, what, payload in sent:
            ctr = json.loads(payload)["ctr"]
            ctrs.append(ctr)
            w.publish("meters/A1/cmd", payload)
            # one at a time: a late or missing ack is told apart from a slow one
            w.wait(lambda t, b: isinstance(b, dict) and b.get("ctr") == ctr, timeout=15)
        # one more round trip: every ack the meter would send for those has arrived
        last = signed.command("A1", "query", what="state")
        w.publish("meters/A1/cmd", last)
        w.wait(lambda t, b: isinstance(b, dict) and b.get("ctr") == json.loads(last)["ctr"], timeout=15)
        with w.cond:
            got = [signed.verify(p) for t, p, _ in w.msgs]    # every ack is signed by the meter
        for (kind, what, _), ctr in zip(sent, ctrs):
            mine = [a for a in got if a["ctr"] == ctr]
            assert len(mine) == 1, (kind, what, mine)
            ack = mine[0]
            assert ack["kind"] == kind and ack["meter"] == "A1"
            # this meter has no update key: its offer is refused no_ota_key
            assert ack["result"] == {"topup": "credited", "query": "ok", "ota": "rejected"}.get(kind, "ok"), \
                (kind, what, ack)
            assert kind != "ota" or ack["reason"] == "no_ota_key", ack
            want = expected_ack_fields(acks, kind, ack["result"])
            assert set(ack) - {"t"} == want - {"t"}, (kind, what, sorted(ack), sorted(want))
            assert ack["t"] >= NOW
            if what == "state":
                missing = [f for f in state_fields if f not in ack["data"] and f not in ("v", "meter", "kind", "mac")]
                assert not missing, missing
                assert ack["data"]["relay_closed"] in (0, 1) and ack["data"]["synced"] == 1
                assert ack["data"]["balance_minor"] == 100500 and ack["data"]["mode"] == "postpaid"
            elif what == "events":
                assert set(ack["data"]) == {"first", "last"}
            elif what is not None:
                assert isinstance(ack["data"], list)
            elif kind == "token":
                assert ack["data"] == {"result": "invalid", "amount_minor": 0, "count": -1}
    finally:
        w.close()


RAISE_SCRIPT = r"""
import asyncio
from firmware.boards.sim import SimBoard
from firmware import app as A

board = SimBoard(["--flash", %(flash)r, "--config", %(cfg)r])
a = A.App(board)
if %(boom)r:
    def boom(action):
        raise MemoryError("injected by the test")
    a.core.facade.relay = boom     # the facade's handler for "relay" commands
asyncio.run(a.run())
"""


def start_app(tmp_path, port, boom):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"meter_id": "R1", "key_hex": signed.KEY_HEX, "broker_host": "127.0.0.1",
                               "broker_port": port, "initial_balance_minor": 1000}))
    ensure_compiled()
    env = dict(os.environ, MICROPYPATH=mpy_path(COMPILED, os.path.join(COMPILED, "lib")))
    script = RAISE_SCRIPT % {"flash": str(tmp_path / "flash"), "cfg": str(cfg), "boom": boom}
    # the compiled modules as files, so more than the board's heap (this
    # test is about behaviour, test_modem_meter about the heap)
    return subprocess.Popen([MICROPYTHON, "-X", "heapsize=400wk", "-c", script], cwd=COMPILED, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_command_whose_handler_raises_gets_one_rejection_with_a_reason_then_the_meter_restarts(broker, tmp_path):
    w = Watcher(broker.port, topics=("meters/R1/ack", "meters/R1/status"))
    p = start_app(tmp_path, broker.port, boom=True)
    try:
        w.wait(lambda t, b: t.endswith("/status") and b == b"online", timeout=30)
        cmd = signed.command("R1", "relay", action="disconnect")
        ctr = json.loads(cmd)["ctr"]
        w.publish("meters/R1/cmd", cmd)
        ack = w.wait(lambda t, b: isinstance(b, dict) and b.get("ctr") == ctr, timeout=20)
        assert (ack["result"], ack["reason"], ack["kind"]) == ("rejected", "internal", "relay")
        assert signed.verify([pl for t, pl, _ in w.msgs if t.endswith("/ack")][-1])["ctr"] == ctr
        p.wait(20)             # it restarted itself (the sim's reset ends the process) ...
        out = p.stdout.read()
        assert "internal error" in out and "injected by the test" in out and "SIM: reset" in out
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # ... and comes back from its flash state with its handler healthy
    p = start_app(tmp_path, broker.port, boom=False)
    try:
        q = signed.command("R1", "query", what="state")
        w.publish("meters/R1/cmd", q)
        st = w.wait(lambda t, b: isinstance(b, dict) and b.get("ctr") == json.loads(q)["ctr"], timeout=30)
        assert st["result"] == "ok" and st["data"]["relay_closed"] == 1   # nothing of it was applied
        # the failed command was acknowledged to the broker: not delivered again
        assert len([1 for t, pl, _ in w.msgs if t.endswith("/ack") and json.loads(pl)["ctr"] == ctr]) == 1
    finally:
        p.kill()
        p.wait()
        w.close()
