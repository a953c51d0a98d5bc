"""A meter in the field keeps its flash across a firmware update: an image
written by an older firmware boots on today's with nothing lost.

Each tests/fixtures/flash-<commit>.img.gz is a sim meter's flash, cut by
SIGKILL after a representative life, and flash-<commit>.json what that meter
showed just before the cut and then delivered (tools/make_flash_fixture.py
makes both and says what the life holds). Keep every fixture: each stands for
meters running that firmware today."""
import glob
import json
import os

import pytest

import signed
from broker import Broker
from make_flash_fixture import unpack
from mqttc import Watcher

FIXTURES = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                                         "flash-*.img.gz")))


def _expected(img):
    with open(img[:-len(".img.gz")] + ".json") as f:
        return json.load(f)


@pytest.fixture
def booted(request, tmp_path, sim_meters):
    """The fixture's image booted on today's firmware, with a broker there
    (the cut meter had none) and a watcher on its events from before boot."""
    img = request.param
    fx = _expected(img)
    b = Broker(str(tmp_path / "broker")).start()
    w = Watcher(b.port, topics=("meters/%s/evt" % fx["meter_id"],))
    m = sim_meters(fx["meter_id"], broker_port=b.port, config=fx["config"], step=True,
                   extra_args=fx["args"])
    unpack(img, m.dir, fx["simclock_ms"])
    m.start()
    yield fx, m, w
    m.stop()
    w.close()
    b.stop()


def _events(w, upto, timeout=30):
    """Wait until every seq 1..upto has been delivered; return seq -> body."""
    seen = {}

    def collect(topic, body):
        if isinstance(body, dict) and "seq" in body:
            seen.setdefault(body["seq"], body)
        return set(range(1, upto + 1)) <= set(seen)
    w.wait(collect, timeout=timeout)
    return seen


def _cmd(m, kind, ctr, **fields):
    raw = signed.command(m.meter_id, kind, ctr=ctr, **fields).decode()
    return m.control({"cmd": "command", "raw": raw})["reply"]


@pytest.mark.parametrize("booted", FIXTURES, indirect=True, ids=os.path.basename)
def test_an_older_flash_boots_with_every_figure_its_events_its_records_and_its_pending_tariff(booted):
    fx, m, w = booted
    want = fx["state"]

    # every figure the meter showed before the cut: balance, owed, the
    # registers (1.8.0, 2.8.0, per period), seq, tariff, mode, relay, reason
    st = m.control({"cmd": "meter_state"})["state"]
    assert {k: st.get(k) for k in want} == want
    assert m.state()["relay_closed"] == fx["relay_closed"]

    # the outbox: every event the cut meter still held is delivered, with its
    # original seq and body (signed by the same key: the same mac)
    delivered = _events(w, want["seq"])
    assert [e["seq"] for e in fx["events"]] == fx["outbox_pending_seqs"]
    for ev in fx["events"]:
        assert delivered[ev["seq"]] == ev
    for seq in want["evt_dropped"]:
        assert seq not in delivered

    # the replay window: counters kept and counters at or below the floor are
    # refused, an unused counter above the floor is still fresh
    floor, window = fx["replay"]["floor"], fx["replay"]["window"]
    for ctr in [floor, floor - 1] + window:
        r = _cmd(m, "query", ctr, what="state")
        assert r["result"] == "rejected" and r["reason"] == "replayed", (ctr, r)
    gap = next(c for c in range(floor + 1, max(window)) if c not in window)

    # the frozen daily and monthly records
    r = _cmd(m, "query", gap, what="billing", since=0)
    assert r["result"] == "ok" and r["data"] == fx["billing"]
    ctr = max(window) + 1
    r = _cmd(m, "query", ctr, what="billing_monthly", since=0)
    assert r["result"] == "ok" and r["data"] == fx["billing_monthly"]

    # the order record: an old order sent again, with its own (stale) counter
    # or a new one, gets its original answer and credits nothing
    for o in fx["orders"]:
        for c in (o["ctr"], ctr + 1):
            ctr = max(ctr, c)
            r = _cmd(m, "topup", c, order=o["order"], amount_minor=o["amount_minor"])
            assert (r["result"], r["balance_minor"], r["seq"]) == ("duplicate", o["balance_minor"], o["seq"])
    assert m.control({"cmd": "meter_state"})["state"]["balance_minor"] == want["balance_minor"]

    # the next top-up is credited: it repays the emergency credit first
    order = max(o["order"] for o in fx["orders"]) + 1
    r = _cmd(m, "topup", ctr + 1, order=order, amount_minor=500)
    repaid = min(500, want["owed_minor"])
    assert r["result"] == "credited" and r["balance_minor"] == want["balance_minor"] + 500 - repaid
    st = m.control({"cmd": "meter_state"})["state"]
    assert st["owed_minor"] == want["owed_minor"] - repaid and st["seq"] > want["seq"]
    topup = w.wait(lambda t, b: isinstance(b, dict) and b.get("kind") == "topup" and b.get("order") == order)
    # (the event has the balance after the top-up; the repayment is its own
    # ledger event)
    assert topup["seq"] > want["seq"] and topup["balance_minor"] == want["balance_minor"] + 500

    # the pending tariff (stored in the image) takes over at its time
    pending = fx["tariff_pending"]
    assert st["tariff_version"] != pending["version"]
    # (from_local_s is local time; this meter's UTC offset is 0)
    m.control({"cmd": "step", "w": 0, "ms": (pending["from_local_s"] - want["t"] + 60) * 1000})
    m.control({"cmd": "step", "w": 0, "ms": 1000})
    assert m.control({"cmd": "meter_state"})["state"]["tariff_version"] == pending["version"]
