"""What the docs state about the sim and the protocol, checked against the
running firmware: the control socket's state fields (docs/simulator.md), a
restart resetting the simulated load, the clock rate against the
energy-at-risk bound, the minimal flat tariff and the tariff event's a/b,
the `charge` ledger events, the balance limit and the state's publish delay
(docs/protocol.md, docs/credit.md). tests/test_docs_commands.py runs the
docs' commands; this file checks their words."""
import json
import os
import re
import subprocess

import pytest

import signed
from mqttc import Watcher
from simmeter import MICROPYTHON, ROOT

DOCS = os.path.join(ROOT, "docs")


def doc(name):
    with open(os.path.join(DOCS, name), encoding="utf-8") as f:
        return f.read()


def table_after(text, marker):
    """Names in the first column of the table that follows `marker`
    (backticked, comma-separated), and the names whose row says "only"
    (fields that are present only in some set-ups)."""
    lines = text[text.index(marker):].split("\n")[1:]
    names, optional = set(), set()
    rows = 0
    for line in lines:
        if not line.startswith("|"):
            if rows:
                break
            continue
        rows += 1
        if rows <= 2:
            continue  # the header and the rule under it
        cells = [c.strip() for c in line.strip("|").split("|")]
        got = re.findall(r"`([a-z_0-9]+)`", cells[0])
        names.update(got)
        if cells[1].startswith("only"):
            optional.update(got)
    return names, optional


def cmd(m, kind, **fields):
    return m.control({"cmd": "command", "raw": signed.command(m.meter_id, kind, **fields).decode()})["reply"]


def events(w, meter_id):
    out = []
    for topic, payload, _ in list(w.msgs):
        if topic == "meters/%s/evt" % meter_id:
            out.append(signed.verify(payload))
    return out


def test_the_control_state_reply_has_exactly_the_fields_the_simulator_doc_lists(sim_meters):
    text = doc("simulator.md")
    board, board_opt = table_after(text, "<!-- doc-test: fields=board -->")
    meter, meter_opt = table_after(text, "<!-- doc-test: fields=meter -->")
    m = sim_meters("f1", config={"key_hex": signed.KEY_HEX}).start()
    st = m.state()
    got_board = set(st) - {"meter"}
    assert got_board - board == set(), "docs/simulator.md: board snapshot fields not documented"
    assert board - board_opt - got_board == set(), "docs/simulator.md: documented board fields the sim lacks"
    got_meter = set(st["meter"])
    assert got_meter - meter == set(), "docs/simulator.md: `meter` fields of the state reply not documented"
    assert meter - meter_opt - got_meter == set(), "docs/simulator.md: documented `meter` fields the sim lacks"
    # every board-level request answers with the same snapshot
    assert set(m.control({"cmd": "load", "w": 10})) == got_board


def test_every_control_request_the_simulator_doc_shows_is_answered(sim_meters):
    text = doc("simulator.md")
    rows = re.findall(r"^\| `(\{\"cmd\":.*?\})` \|", text, re.M)
    reqs = []
    for r in rows:
        try:
            reqs.append(json.loads(r))
        except ValueError:
            assert '{...}' in r, "docs/simulator.md: control request %s is not JSON" % r
    names = [r["cmd"] for r in reqs]
    assert {"load", "state", "mem", "lcd_frame", "powerfail", "keys"} <= set(names)
    m = sim_meters("f2", config={"key_hex": signed.KEY_HEX}, extra_args=["--keypad"]).start()
    # the hang hook stops a task (the watchdog then resets the sim): it is
    # exercised by the watchdog tests; the power-fail input stays raised, so last
    for r in sorted((r for r in reqs if r["cmd"] != "hang"), key=lambda r: r["cmd"] == "powerfail"):
        reply = m.control(r)
        assert reply.get("ok") is True, "docs/simulator.md: %s got %r" % (json.dumps(r), reply)
    ack = cmd(m, "relay", action="disconnect")  # and the `command` request, with a real body
    assert ack["result"] == "ok", ack


def test_a_restart_resets_the_simulated_load_but_not_the_meter(sim_meters):
    m = sim_meters("f3", config={"key_hex": signed.KEY_HEX, "initial_balance_minor": 10000}).start()
    m.control({"cmd": "load", "w": 1500, "v": 240})
    m.control({"cmd": "pulses", "n": 500})
    before = m.wait_for(lambda s: s["meter"]["import_wh"] == 500)
    m.control({"cmd": "powerfail"})  # the checkpoint is written; the cut loses nothing
    m.kill()
    m.start()
    st = m.state()
    assert st["load_w"] == 0 and st["volts"] == 230 and st["reset_cause"] == "power"
    assert st["meter"]["import_wh"] == 500
    assert st["meter"]["balance_minor"] == before["meter"]["balance_minor"]


# The policy as the meter task asks it: once per tick, with whole Wh from the
# pulse counter, one tick covering `scale` meter seconds.
_POLICY_MODEL = """
from firmware.store.policy import CheckpointPolicy
import json
out = []
for w, scale in %s:
    p = CheckpointPolicy(10, 60, 4)
    per_tick_mwh = w * scale * 1000 // 3600   # mWh per tick
    carry = unsaved = age = 0
    worst_wh = worst_ms = top_tick = 0
    for tick in range(3000):
        carry += per_tick_mwh
        imp = carry // 1000
        carry -= imp * 1000
        top_tick = max(top_tick, imp)
        unsaved += imp
        age += scale * 1000
        if p.due(unsaved, age, unsaved > 0):
            # a cut while this checkpoint is written loses all of it
            worst_wh = max(worst_wh, unsaved)
            worst_ms = max(worst_ms, age)
            unsaved = age = 0
        elif unsaved:
            worst_wh = max(worst_wh, unsaved)
            worst_ms = max(worst_ms, age)
    out.append([w, scale, top_tick, worst_wh, worst_ms])
print(json.dumps(out))
"""


def test_the_energy_at_risk_bound_stretches_with_the_clock_rate_as_the_simulator_doc_says():
    text = doc("simulator.md")
    assert "less than 6 Wh + E" in text and "59 + N meter seconds" in text and "N = 60" in text
    cases = [(10000, 1), (14400, 1), (2000, 10), (2000, 59), (100, 60), (2000, 60), (2000, 3600), (500, 2592000)]
    out = subprocess.run([MICROPYTHON, "-c", _POLICY_MODEL % json.dumps(cases)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, env=dict(os.environ, MICROPYPATH=ROOT))
    assert out.returncode == 0, out.stderr
    for w, scale, e, worst_wh, worst_ms in json.loads(out.stdout):
        where = "%d W at --scale %d (E = %d Wh)" % (w, scale, e)
        assert worst_wh < 6 + e and worst_ms < (59 + scale) * 1000, where
        if e <= 4 and scale == 1:
            assert worst_wh < 10 and worst_ms < 60000, where   # the plain bound
        if scale >= 60:
            assert worst_wh <= e and worst_ms <= scale * 1000, where   # every tick checkpoints


def test_at_an_hour_a_second_a_cut_loses_at_most_the_last_tick(sim_meters):
    m = sim_meters("f4", scale=3600, config={"key_hex": signed.KEY_HEX, "initial_balance_minor": 10 ** 8}).start()
    m.control({"cmd": "load", "w": 2000})
    st = m.wait_for(lambda s: s["meter"]["import_wh"] >= 4000)
    m.kill()
    m.start()
    after = m.state()["meter"]["import_wh"]
    assert st["meter"]["import_wh"] - 2000 <= after <= st["meter"]["import_wh"] + 2000


@pytest.fixture
def linked(broker, sim_meters):
    w = Watcher(broker.port)
    m = sim_meters("f5", broker_port=broker.port,
                   config={"key_hex": signed.KEY_HEX, "initial_balance_minor": 100000}).start()
    m.wait_for(lambda s: s["meter"]["link_up"])
    yield m, w
    w.c.loop_stop()
    w.c.disconnect()


def test_the_minimal_flat_tariff_and_the_tariff_events_a_and_b(linked):
    m, w = linked
    assert '`{"price_milli_per_kwh":200000}`' in doc("protocol.md")
    ack = cmd(m, "tariff", version=2, activate_utc_s=0, tariff={"price_milli_per_kwh": 200000})
    assert ack["result"] == "ok", ack
    ev = w.wait(lambda t, b: t.endswith("/evt") and b.get("kind") == "tariff")
    assert ev["event"] == "tariff" and ev["a"] == 1 and ev["b"] == 2   # replaced 1, now 2
    st = m.state()
    assert st["meter"]["tariff_version"] == 2
    m.control({"cmd": "pulses", "n": 1000})   # 1 kWh at 2.00
    m.wait_for(lambda s: s["meter"]["balance_minor"] == 100000 - 200)
    at = st["rtc_s"] + 86400
    ack = cmd(m, "tariff", version=3, activate_utc_s=at, tariff={"price_milli_per_kwh": 300000})
    assert ack["result"] == "ok", ack
    ev = w.wait(lambda t, b: t.endswith("/evt") and b.get("event") == "tariff_pending")
    assert ev["a"] == 3 and ev["b"] == at   # UTC offset 0: local seconds = UTC seconds
    # the active or the pending version again: refused `duplicate`, as the
    # reason table says, and nothing changes
    assert "| `duplicate` (with `result` `rejected`) | a `tariff` whose `version`" in doc("protocol.md")
    for version in (2, 3):
        ack = cmd(m, "tariff", version=version, activate_utc_s=0, tariff={"price_milli_per_kwh": 900000})
        assert (ack["result"], ack["reason"]) == ("rejected", "duplicate"), ack
    assert m.state()["meter"]["price_milli_per_kwh"] == 200000


def test_charge_ledger_events_and_the_balance_limit(linked):
    m, w = linked
    m.control({"cmd": "pulses", "n": 1000})   # 1 kWh at the provisioned 1.50
    m.wait_for(lambda s: s["meter"]["import_wh"] == 1000)
    ack = cmd(m, "topup", order=1, amount_minor=100000000)   # the largest one top-up
    assert ack["result"] == "credited"
    w.wait(lambda t, b: t.endswith("/evt") and b.get("kind") == "topup")
    evs = events(w, m.meter_id)
    charge = [e for e in evs if e["kind"] == "ledger" and e["entry"] == "charge"]
    topup = [e for e in evs if e["kind"] == "topup"]
    assert charge and topup, evs
    c = charge[-1]
    assert (c["ref"], c["reason"], c["wh"], c["amount_minor"]) == ("1", "t0/p0", 1000, 150)
    assert c["balance_minor"] == 100000 - 150 and c["seq"] < topup[0]["seq"]
    assert topup[0]["balance_minor"] == 100000 - 150 + 100000000
    assert (topup[0]["entry"], topup[0]["reason"], topup[0]["wh"]) == ("topup", "payment", 0)
    # over the limit for one top-up: refused; the balance itself has no ceiling
    assert "100,000,000" in doc("protocol.md")
    ack = cmd(m, "topup", order=2, amount_minor=100000001)
    assert (ack["result"], ack["reason"]) == ("rejected", "bad_field")
    ack = cmd(m, "topup", order=3, amount_minor=100000000)
    assert ack["result"] == "credited" and ack["balance_minor"] == 2 * 100000000 + 100000 - 150
    # the state follows the change on its own (no query): the retained snapshot
    w.wait(lambda t, b: t.endswith("/state") and b.get("balance_minor") == ack["balance_minor"])


def test_the_state_publish_delay_the_protocol_doc_gives_is_the_publish_task_s():
    src = open(os.path.join(ROOT, "firmware", "app.py")).read()
    busy, idle = re.search(r"sleep_ms\((\d+) if busy else (\d+)\)", src).groups()
    text = doc("protocol.md")
    assert "published within about %s ms of a change" % idle in text
    assert "looks every %s ms when idle, every %s ms while events" % (idle, busy) in text


def test_the_protocol_worked_examples_are_what_a_meter_answers(sim_meters):
    """docs/protocol.md's worked examples, replayed into a meter set up as the
    page says: each ack must be the documented one, byte for byte once sorted."""
    from headend import codec
    text = doc("protocol.md")
    key_hex = re.search(r"Key \(hex\) `([0-9a-f]{64})`", text).group(1)
    meter_id = re.search(r"meter `([A-Za-z0-9_-]+)`", text[text.index("## Worked examples"):]).group(1)
    token_key = re.search(r"offline-token key \(`token_key_hex`\)\s+`([0-9a-f]{32})`", text).group(1)
    m = sim_meters(meter_id, step=True, epoch=1767225600,
                   config={"key_hex": key_hex, "initial_balance_minor": 1000, "warn_minor": [500, 100],
                           "token_key_hex": token_key}).start()

    def send(raw):
        return m.control({"cmd": "command", "raw": raw})["reply"]

    # the meter clock of the examples, set as a head-end would
    sync = codec.command(meter_id, bytes.fromhex(key_hex), 1767225600000, 1767229200, "time", utc_s=1767225600)
    assert send(sync.decode())["result"] == "ok"
    last_cmd, checked = None, 0
    for n, line in enumerate(text.split("\n"), 1):
        mm = re.match(r"^    (?:ack: )?(\{.*\})\s*$", line)
        if not mm:
            continue
        obj = json.loads(mm.group(1))
        if "exp" in obj:
            last_cmd = mm.group(1)
        elif "result" in obj:
            got = send(last_cmd)
            assert got == obj, "docs/protocol.md:%d: the meter answers %s" % (n, json.dumps(got, sort_keys=True))
            checked += 1
    assert checked == 7
