"""Authentication, replay, expiry and exactly-once top-ups, in MicroPython
(firmware/link/commands.py with the fake facade of test_protocol_fuzz)."""
import pytest

from headend import codec
from test_protocol_fuzz import KEY, METER, NOW, MpyMeter, signed


@pytest.fixture
def meter():
    m = MpyMeter()
    yield m
    m.close()


def topup(ctr, order, amount=500, exp=NOW + 600):
    return signed(ctr=ctr, exp=exp, kind="topup", order=order, amount_minor=amount)


def test_a_topup_is_credited_and_acked_with_order_balance_and_seq(meter):
    out = meter.send(topup(10, order=1, amount=250))
    ack = out["ack"]
    assert (ack["result"], ack["order"], ack["balance_minor"], ack["seq"], ack["ctr"]) == ("credited", 1, 1250, 1, 10)
    assert ack["t"] == NOW and ack["meter"] == METER
    assert out["calls"] == [["topup", 1, 250]]


def test_a_redelivered_topup_gets_the_original_result_and_is_not_credited_twice(meter):
    first = meter.send(topup(10, order=1))
    again = meter.send(topup(10, order=1))   # QoS 1 redelivery: same bytes
    assert again["ack"]["result"] == "duplicate"
    assert again["ack"]["balance_minor"] == first["ack"]["balance_minor"]
    assert again["ack"]["seq"] == first["ack"]["seq"]
    assert again["fp"] == first["fp"]


def test_a_reissued_order_with_a_new_counter_is_a_duplicate(meter):
    first = meter.send(topup(10, order=1))
    meter.send(topup(11, order=2))
    reissue = meter.send(topup(20, order=1))
    assert reissue["ack"]["result"] == "duplicate" and reissue["ack"]["seq"] == first["ack"]["seq"]
    assert reissue["ack"]["balance_minor"] == first["ack"]["balance_minor"]
    assert reissue["calls"] == [["topup", 2, 500]]   # the last facade call is still order 2's


def test_a_replayed_command_is_refused(meter):
    meter.send(signed(ctr=10, kind="relay", action="disconnect"))
    before = meter.send(signed(ctr=11, kind="relay", action="connect"))["fp"]
    out = meter.send(signed(ctr=10, kind="relay", action="disconnect"))
    assert out["ack"]["result"] == "rejected" and out["ack"]["reason"] == "replayed"
    assert out["fp"] == before


def test_a_command_overtaken_by_newer_ones_is_carried_out_once(meter):
    # two head-end workers, or a retry racing a query: counters arrive out
    # of order. Within the window each is carried out, and only once.
    assert meter.send(signed(ctr=12, kind="relay", action="disconnect"))["ack"]["result"] == "ok"
    assert meter.send(topup(13, order=2))["ack"]["result"] == "credited"
    late = meter.send(topup(10, order=1))
    assert late["ack"]["result"] == "credited"
    fp = late["fp"]
    again = meter.send(signed(ctr=10, kind="relay", action="connect"))
    assert again["ack"]["reason"] == "replayed" and again["fp"] == fp
    assert meter.send(signed(ctr=12, kind="relay", action="disconnect"))["ack"]["reason"] == "replayed"


def test_a_counter_below_the_window_is_refused_as_replayed(meter):
    for ctr in range(10, 19):   # nine accepted: the window keeps 8, 10 becomes the floor
        assert meter.send(signed(ctr=ctr, kind="query", what="state"))["ack"]["result"] == "ok"
    fp = meter.call(op="now", now=NOW)["fp"]
    for ctr in (10, 9, 1):
        out = meter.send(topup(ctr, order=2))
        assert out["ack"]["reason"] == "replayed" and out["ack"]["order"] == 2 and out["fp"] == fp
    assert meter.send(topup(19, order=2))["ack"]["result"] == "credited"


def test_a_forged_command_is_refused(meter):
    fp0 = meter.call(op="reset")["fp"]
    forged = codec.command(METER, b"guessed key" * 3, 10, NOW + 600, "topup", order=1, amount_minor=10**6)
    out = meter.send(forged)
    assert out["ack"]["reason"] == "bad_mac" and out["fp"] == fp0


def test_a_command_for_another_meter_is_refused(meter):
    other = codec.command("MTR-0002", KEY, 10, NOW + 600, "relay", action="connect")
    assert meter.send(other)["ack"]["reason"] == "wrong_meter"


def test_an_expired_command_is_refused_while_the_clock_is_synced(meter):
    fp0 = meter.call(op="reset")["fp"]
    out = meter.send(topup(10, order=1, exp=NOW - 1))
    assert out["ack"]["reason"] == "expired" and out["fp"] == fp0
    meter.call(op="now", now=None)   # unsynced: expiry cannot be judged, the counter still protects
    out = meter.send(topup(11, order=1, exp=NOW - 1))
    assert out["ack"]["result"] == "credited" and "t" not in out["ack"]


def test_a_time_sync_is_accepted_even_when_the_meter_clock_is_far_ahead(meter):
    meter.call(op="now", now=NOW + 10 * 365 * 86400)
    out = meter.send(signed(ctr=10, exp=NOW + 600, kind="time", utc_s=NOW + 5))
    assert out["ack"]["result"] == "ok" and out["calls"] == [["time", NOW + 5]]


def test_a_facade_rejection_changes_neither_counter_nor_order_record(meter):
    fp0 = meter.call(op="reset")["fp"]
    out = meter.send(topup(10, order=1, amount=666))   # the fake refuses 666 with "limit"
    assert out["ack"]["reason"] == "limit"
    assert out["fp"].split("|")[0] == "0"            # counter unchanged
    assert out["fp"].split("|")[4] == fp0.split("|")[4]   # order record unchanged
    assert meter.send(topup(10, order=1, amount=5))["ack"]["result"] == "credited"


def test_orders_below_the_window_are_refused_not_credited_again(meter):
    meter.call(op="reset", window=8)
    for order in range(1, 11):                      # orders 1 and 2 leave the window
        assert meter.send(topup(100 + order, order))["ack"]["result"] == "credited"
    old = meter.send(topup(200, order=2))
    assert old["ack"]["result"] == "rejected" and old["ack"]["reason"] == "order_forgotten"
    assert old["ack"]["order_floor"] == 2
    kept = meter.send(topup(201, order=3))
    assert kept["ack"]["result"] == "duplicate"
    late = meter.send(topup(202, order=12))          # new orders may arrive out of order
    assert late["ack"]["result"] == "credited"
    assert meter.send(topup(203, order=11))["ack"]["result"] == "credited"


def test_counter_and_order_record_survive_a_restart(meter):
    meter.send(topup(10, order=1))
    meter.send(signed(ctr=11, kind="relay", action="connect"))
    meter.call(op="restart")
    assert meter.send(topup(10, order=1))["ack"]["result"] == "duplicate"
    assert meter.send(signed(ctr=11, kind="relay", action="connect"))["ack"]["reason"] == "replayed"
    assert meter.send(topup(9, order=3))["ack"]["result"] == "credited"    # unused, inside the window
    assert meter.send(topup(12, order=2))["ack"]["result"] == "credited"
    meter.call(op="restart")
    assert meter.send(topup(9, order=4))["ack"]["reason"] == "replayed"


def test_a_snapshot_from_before_the_window_counts_every_lower_counter_as_used(meter):
    meter.send(signed(ctr=50, kind="relay", action="connect"))
    meter.call(op="restart_from", saved=[50, [0, []]])   # the old [last_ctr, orders] form
    assert meter.send(topup(49, order=1))["ack"]["reason"] == "replayed"
    assert meter.send(topup(51, order=1))["ack"]["result"] == "credited"


def test_every_kind_reaches_the_facade_with_its_arguments(meter):
    cases = [
        (signed(ctr=10, kind="tariff", version=3, activate_utc_s=NOW + 60, tariff={"kind": "flat"}), ["tariff", 3, NOW + 60]),
        (signed(ctr=11, kind="relay", action="disconnect"), ["relay", "disconnect"]),
        (signed(ctr=12, kind="mode", mode="postpaid"), ["mode", "postpaid"]),
        (signed(ctr=13, kind="config", settings={"warn1_minor": 5000, "holidays": [20260101]}), ["config", ["holidays", "warn1_minor"]]),
    ]
    for payload, call in cases:
        out = meter.send(payload)
        assert out["ack"]["result"] == "ok", out
        assert out["calls"] == [call]


def test_a_bad_tariff_is_refused_with_the_facade_reason(meter):
    out = meter.send(signed(ctr=10, kind="tariff", version=3, activate_utc_s=0, tariff={"kind": "bad"}))
    assert out["ack"]["reason"] == "bad_tariff"


def test_queries_answer_state_billing_and_the_communication_log(meter):
    meter.send(topup(10, order=1))
    st = meter.send(signed(ctr=11, kind="query", what="state"))["ack"]
    assert st["data"] == {"balance_minor": 1500, "seq": 1}
    bill = meter.send(signed(ctr=12, kind="query", what="billing", since=4))["ack"]
    assert bill["data"] == [{"seq": 5, "energy_wh": 5}]
    log = meter.send(signed(ctr=13, kind="query", what="commlog"))["ack"]["data"]
    codes = [e[1] for e in log]
    assert codes[:4] == ["cmd", "ack", "cmd", "ack"] and log[0][2] == "topup:10" and log[1][2] == "credited"
    assert all(e[0] == NOW for e in log)


def test_an_order_outside_a_rolled_over_record_gets_one_answer_however_it_comes_back(meter):
    # window 4; orders 1 and 4 never reach the meter; 2, 3, 5 .. 8 are credited
    fp0 = meter.call(op="reset", window=4)["fp"]
    firsts = {}
    for ctr, order in enumerate([2, 3, 5, 6, 7, 8], 10):
        firsts[order] = topup(ctr, order)
        assert meter.send(firsts[order])["ack"]["result"] == "credited"
    # the record holds 5 .. 8; 2 and 3 left it: the floor is 3
    fp = meter.call(op="now", now=NOW)["fp"]
    assert fp != fp0
    for order in (2, 3):
        # credited long ago: its QoS 1 redelivery (stale counter, even past its
        # expiry) and a reissue (fresh counter) get the same final answer
        meter.call(op="now", now=NOW + 3600)
        again = meter.send(firsts[order])["ack"]
        meter.call(op="now", now=NOW)
        reissue = meter.send(topup(100 + order, order))["ack"]
        for ack in (again, reissue):
            assert (ack["result"], ack["reason"], ack["order"], ack["order_floor"]) == (
                "rejected", "order_forgotten", order, 3), ack
            assert "balance_minor" not in ack and "seq" not in ack
    # never credited, at or below the floor: the meter cannot tell it from the above
    assert meter.send(topup(110, order=1))["ack"]["reason"] == "order_forgotten"
    # never credited, above the floor and below the full record: it knows
    late = meter.send(topup(111, order=4))["ack"]
    assert (late["reason"], late["order"]) == ("order_too_old", 4) and "order_floor" not in late
    assert meter.call(op="now", now=NOW)["fp"] == fp    # nothing of it changed anything
    meter.call(op="restart", window=4)                  # the same answers from the persisted record
    assert meter.send(firsts[2])["ack"]["reason"] == "order_forgotten"
    assert meter.send(topup(112, order=4))["ack"]["reason"] == "order_too_old"
    assert meter.send(firsts[8])["ack"]["result"] == "duplicate"
    assert meter.send(topup(113, order=10))["ack"]["result"] == "credited"


def test_query_state_is_answered_in_wire_form_and_an_unanswerable_query_keeps_its_counter(meter):
    meter.call(op="reset")
    meter.call(op="extra", what="flags")     # what the meter's state has: flags and nulls
    ack = meter.send(signed(ctr=10, kind="query", what="state"))["ack"]
    assert ack["result"] == "ok" and ack["data"]["flag"] == 1 and ack["data"]["off"] == 0
    assert "none" not in ack["data"]
    meter.call(op="extra", what="float")     # a value with no canonical form: a bug
    fp = meter.call(op="now", now=NOW)["fp"]
    out = meter.send(signed(ctr=11, kind="query", what="state"))
    assert (out["ack"]["result"], out["ack"]["reason"], out["ack"]["ctr"]) == ("rejected", "internal", 11)
    assert "data" not in out["ack"] and out["fp"] == fp       # its counter is not used up
    assert meter.send(signed(ctr=11, kind="relay", action="connect"))["ack"]["result"] == "ok"
    meter.call(op="extra", what="flags")
