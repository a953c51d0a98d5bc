"""Offline tokens end to end on a running sim meter (the compiled firmware,
its keypad, a real broker and the reference head-end CLI): a token relayed
by the server's token command and the same token typed on the keypad are
credited once between them, in either order, and each entry is a signed
`token` event for the server."""
import json
import os
import subprocess
import sys

import signed
import tokens_oracle as O
from mqttc import Watcher
from wait import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN_KEY = "5a" * 16


def cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "headend"] + [str(a) for a in args],
                          cwd=os.path.join(ROOT, "tools"), capture_output=True, text=True, timeout=timeout)


def test_a_relayed_token_and_the_same_one_typed_are_credited_once(tmp_path, broker, sim_meters):
    db = tmp_path / "he.sqlite"
    assert cli("--db", db, "provision", "TK1", "--key-hex", signed.KEY_HEX).returncode == 0
    m = sim_meters("TK1", broker_port=broker.port, extra_args=["--keypad"],
                   config={"key_hex": signed.KEY_HEX, "initial_balance_minor": 1000,
                           "token_key_hex": TOKEN_KEY}).start()
    m.wait_for(lambda s: s["meter"]["link_up"], timeout=30)
    w = Watcher(broker.port, topics=("meters/TK1/evt",))
    try:
        c, first = O.issue(TOKEN_KEY, 1, "add", 12)
        c, second = O.issue(TOKEN_KEY, c, "add", 3)
        # relayed first (an SMS-sold token the utility also sends over the link)
        p = cli("--db", db, "--broker", "127.0.0.1:%d" % broker.port, "token", "TK1",
                "%s %s %s" % (first[:3], first[3:6], first[6:]))
        assert p.returncode == 0, p.stderr
        ack = json.loads(p.stdout)
        assert ack["result"] == "ok" and ack["data"] == {"result": "add", "amount_minor": 1200, "count": 2}
        assert ack["balance_minor"] == 2200
        # ... then typed by the customer who got the SMS
        m.control({"cmd": "keys", "keys": first + "#"})
        s = m.wait_for(lambda s: s["meter"]["last_token"] and s["meter"]["last_token"][0] == "used")
        assert s["meter"]["last_token"] == ["used", 0, 2, 2200]
        # the other order: typed first, relayed after
        m.control({"cmd": "keys", "keys": "9*" + second + "#"})   # a slip, cleared with *
        s = m.wait_for(lambda s: s["meter"]["last_token"][0] == "add")
        assert s["meter"]["last_token"] == ["add", 300, 4, 2500] and s["meter"]["keypad_digits"] == ""
        p = cli("--db", db, "--broker", "127.0.0.1:%d" % broker.port, "token", "TK1", second)
        assert json.loads(p.stdout)["data"]["result"] == "used"
        # every entry is a signed event for the server, in order
        wait_for(lambda: len([e for e in _events(w) if e["kind"] == "token"]) >= 4, 30, "four token events")
        toks = [(e["result"], e["count"], e["amount_minor"], e["balance_minor"])
                for e in _events(w) if e["kind"] == "token"]
        assert toks == [("add", 2, 1200, 2200), ("used", 2, 0, 2200), ("add", 4, 300, 2500),
                        ("used", 4, 0, 2500)]
        assert m.state()["meter"]["balance_minor"] == 2500
    finally:
        w.close()


def _events(w):
    with w.cond:
        msgs = list(w.msgs)
    seen = {}
    for topic, payload, _ in msgs:
        ev = signed.verify(payload)
        seen.setdefault(ev["seq"], ev)
    return [seen[k] for k in sorted(seen)]


def test_the_token_code_is_loaded_for_each_token_and_not_kept(sim_meters):
    m = sim_meters("TK2", config={"key_hex": signed.KEY_HEX, "token_key_hex": TOKEN_KEY}).start()
    mods = m.control({"cmd": "modules"})["modules"]
    assert not [x for x in mods if x.startswith("firmware.tokens")], mods
    before = m.mem()["free"]
    results = []
    for count in (1, 2):
        _, tok = O.issue(TOKEN_KEY, count, "add", 1)
        raw = signed.command("TK2", "token", token=tok).decode()
        results.append(m.control({"cmd": "command", "raw": raw})["reply"]["data"]["result"])
        if count == 1:
            after_first = m.mem()["free"]
        # nothing of the token code stays: its state is the snapshot's "tok"
        mods = m.control({"cmd": "modules"})["modules"]
        assert not [x for x in mods if x.startswith("firmware.tokens")], mods
    # the second token was decoded against the window the first one left,
    # and the first, entered again, is refused as used
    _, tok = O.issue(TOKEN_KEY, 1, "add", 1)
    raw = signed.command("TK2", "token", token=tok).decode()
    results.append(m.control({"cmd": "command", "raw": raw})["reply"]["data"]["result"])
    assert results == ["add", "add", "used"]
    # what the first token leaves in the heap: its names (interned for
    # good), its event and the outbox's and commlog's entries, not its code
    # (5.4 KB when it was kept)
    print("free before the first token", before, "after it", after_first)
    assert after_first >= before - 2048
