"""Orders outside a rolled-over order record (issue 12), with the reference
head-end and the sim meter (compiled firmware) over a real mosquitto.

The meter remembers its last 32 credited orders and a floor. Of an order
outside that record it knows only what docs/protocol.md ("Orders outside the
record") says: at or below the floor it was credited long ago or never
(`order_forgotten`, the same answer to a QoS 1 redelivery as to a reissue);
above the floor and below the full record it was never credited
(`order_too_old`). The head-end must never re-credit, and never conclude
that a credited order failed: it settles `order_forgotten` from the events."""
import json

import pytest

import signed
from broker import mosquitto_path
from headend import db
from headend.server import HeadEnd
from wait import wait_for

pytestmark = pytest.mark.skipif(not mosquitto_path(), reason="needs mosquitto")
MID = "O1"


def wait(cond, timeout=20, what="condition"):
    return wait_for(cond, timeout, what)


def test_orders_outside_a_rolled_over_record_are_settled_right_and_never_credited_twice(broker, sim_meters, tmp_path):
    he = HeadEnd(str(tmp_path / "he.sqlite"), port=broker.port, reissue_after_s=3600)
    he.provision(MID, signed.KEY_HEX)
    he.start(tick_s=0)            # no ticker: orders are issued by the test alone
    m = sim_meters(MID, broker_port=broker.port,
                   config={"key_hex": signed.KEY_HEX, "initial_balance_minor": 1000}).start()
    m.wait_for(lambda s: s["meter"]["link_up"], timeout=30)
    try:
        with he.lock:
            never_low = db.new_order(he.con, MID, 111)      # order 1: paid, never sent

        def credit():
            # one at a time, each event at the head-end before the next: a
            # full outbox would drop unsent event-class events, and the
            # head-end could then not prove an order was never credited
            o = he.topup(MID, 10)
            assert he.wait_order(o, 20)["state"] == "credited"
            seq = he.order(o)["seq"]
            wait(lambda: he.contiguous_seq(MID) >= seq, what="event %d" % seq)
            return o
        first = [credit() for _ in range(2)]                # orders 2, 3
        with he.lock:
            never_mid = db.new_order(he.con, MID, 222)      # order 4: paid, never sent
        for _ in range(32):                                 # orders 5 .. 36
            credit()
        # the record holds 5 .. 36; 2 and 3 left it, so the floor is 3
        balance = 1000 + 10 * 34
        st = m.wait_for(lambda s: s["meter"]["balance_minor"] == balance, timeout=10)
        wait(lambda: he.contiguous_seq(MID) >= m.control({"cmd": "meter_state"})["state"]["seq"],
             what="every event at the head-end")
        o2 = he.order(first[0])
        assert o2["order_no"] == 2

        # a QoS 1 redelivery of order 2's original command (stale counter):
        # the meter answers as it would a reissue, not a retryable "replayed"
        he.client.publish("meters/%s/cmd" % MID, he.command(MID, o2["ctr"])["payload"], qos=1)
        wait(lambda: (he.command(MID, o2["ctr"]) or {}).get("reason") == "order_forgotten",
             what="order_forgotten for the redelivery")
        ack = json.loads(he.command(MID, o2["ctr"])["ack_json"])
        assert ack["order_floor"] == 3 and ack["result"] == "rejected"

        # order 2, credited long ago, comes back as if its ack had been lost:
        # the meter cannot tell; the head-end finds its topup event: credited
        with he.lock:
            he.con.execute("UPDATE orders SET state='issued', result=NULL WHERE order_id=?", (first[0],))
        he.issue(first[0])
        o = he.wait_order(first[0], 20)
        assert (o["state"], o["balance_after_minor"], o["seq"]) == ("credited", o2["balance_after_minor"], o2["seq"])

        # order 1, never credited, below the floor: same answer from the meter;
        # holding every event up to the meter's seq and none for it, the
        # head-end concludes it never was
        he.issue(never_low)
        o = he.wait_order(never_low, 20)
        assert (o["state"], o["reason"]) == ("rejected", "never_credited")

        # order 4, never credited, between the floor and the record: the meter knows
        he.issue(never_mid)
        o = he.wait_order(never_mid, 20)
        assert (o["state"], o["reason"]) == ("rejected", "order_too_old")

        # order 3, credited, comes back to a head-end that lost its event too
        # (a restore from an old backup): the meter's outbox no longer holds
        # it, so nothing settles it; it stays unsettled, never failed, never reissued
        o3 = he.order(first[1])
        with he.lock:
            he.con.execute("UPDATE orders SET state='issued', result=NULL WHERE order_id=?", (first[1],))
            he.con.execute("DELETE FROM events WHERE meter_id=? AND seq=?", (MID, o3["seq"]))
        he.issue(first[1])
        o = he.wait_order(first[1], 20, states=("credited", "rejected", "unsettled"))
        assert (o["state"], o["reason"]) == ("unsettled", "order_forgotten")
        # a later state from the meter (after a command) still does not settle it
        ctr = he.send(MID, "query", what="state")
        he.wait_ack(MID, ctr)
        wait(lambda: db.meter(he.con, MID)["state_at"] > o["done_at"], what="a state after the answer")
        assert he.order(first[1])["state"] == "unsettled"
        assert he.issue(first[1]) is None              # not reissued

        # nothing was credited twice, nor the two that never were
        assert m.control({"cmd": "meter_state"})["state"]["balance_minor"] == balance
        assert st["meter"]["balance_minor"] == balance
    finally:
        he.stop()


def test_the_head_end_settles_a_forgotten_order_from_its_event_however_often_the_meter_says_so(tmp_path):
    from test_headend_gaps import KEY_HEX, MID as GID, Recorder, meter_msg
    he = HeadEnd(str(tmp_path / "he.sqlite"))
    he.client = Recorder()
    he.provision(GID, KEY_HEX)
    oid = he.topup(GID, 700)
    o = he.order(oid)
    forgotten = meter_msg(ctr=o["ctr"], kind="topup", order=o["order_no"], result="rejected",
                          reason="order_forgotten", order_floor=9)
    for _ in range(2):                       # an ack may come twice (QoS 1)
        he.handle(GID, "ack", forgotten)
        assert he.order(oid)["state"] == "unsettled"
    assert he.tick() == 0 and he.issue(oid) is None     # never reissued
    # its topup event turns up (a gap filled): credited, with the meter's figures
    he.handle(GID, "evt", meter_msg(seq=4, kind="topup", t=1, order=o["order_no"], amount_minor=700,
                                    balance_minor=1700))
    o = he.order(oid)
    assert (o["state"], o["balance_after_minor"], o["seq"]) == ("credited", 1700, 4)
