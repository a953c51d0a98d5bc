"""The power-cut auditor itself (tools/powercut.py), on a scripted meter.

The campaign's "published seq came back lower" check once compared the
meter's boot seq with every event received by the time of the check, which
includes the events of an order the auditor re-sent after the boot and the
meter rightly credited then. Under a fast broker those arrived first: a
false violation, about 2 in 10,000 cuts. Here delivery is instant, the worst
case, and the check must still tell a late credit from a forgotten seq."""
import threading

import powercut


class InstantEvents:
    """EventLog's interface; an event "arrives" the moment it is published."""

    def __init__(self, seqs=()):
        self.lock = threading.Condition()
        self.payload = {s: b"e%d" % s for s in seqs}
        self.topups = {}
        self.topup_amount = {}
        self.token_topups = {}

    def publish(self, seq, order=None, amount=None):
        self.payload[seq] = b"e%d" % seq
        if order is not None:
            self.topups.setdefault(order, set()).add(seq)
            self.topup_amount[seq] = (order, amount)

    def max_seq(self):
        return max(self.payload) if self.payload else 0

    def contiguous(self):
        n = 0
        while n + 1 in self.payload:
            n += 1
        return n

    def wait_upto(self, seq, timeout):
        return self.contiguous() >= seq

    def take_bad(self):
        return []


class ScriptedMeter:
    """Boots at `seq` with the given balance; a top-up re-sent after the
    boot is credited then, and its event published at once."""

    def __init__(self, events, seq, balance, late_order=None, amount=0):
        self.events = events
        self.seq = seq
        self.balance = balance
        self.late_order = late_order
        self.amount = amount
        self.dir = ""  # no flash image to keep

    def start(self):
        pass

    def wait_for(self, predicate, timeout=None):
        # its link is up from the start: nothing to wait for
        return {"meter": {"link_up": True}}

    def state(self):
        return {"reset_cause": "power"}

    def control(self, req):
        if req["cmd"] == "meter_state":
            return {"state": {"obis_1_8_0": 0, "tariff_version": 1, "balance_minor": self.balance,
                              "owed_minor": 0, "seq": self.seq}}
        assert req["cmd"] == "command"
        self.seq += 1
        self.balance += self.amount
        self.events.publish(self.seq, self.late_order, self.amount)
        return {"reply": {"result": "credited", "balance_minor": self.balance, "seq": self.seq}}


def auditor(events, meter, in_flight=None):
    c = powercut.Campaign.__new__(powercut.Campaign)
    # the state a fresh campaign has, without a real meter or broker
    c.stats = {"cuts": 1, "booted": 0, "max_seq": 0, "events": 0, "resolved": 0,
               "lost_wh": 0, "max_loss_wh": 0, "warned_loss_wh": 0}
    c.violations, c.nviol = [], 0
    c.prices, c.segs, c.maybe_tariff = {1: powercut.FIRST_PRICE}, [[1, 0]], None
    c.applied, c.ack, c.sent, c.maybe = {}, {}, {}, {}
    c.recent, c.unverified, c.doubled = [], set(), set()
    c.tok_maybe, c.tok_applied, c.tok_recent, c.tok_sent = {}, {}, [], {}
    c.w_boot = c.w_durable = c.w_prev_boot = c.pulses = c.inflight_wh = 0
    c.seq_boot, c.warned, c.ctr, c.meter_id = 0, False, 1, "pc1"
    c.events, c.m = events, meter
    if in_flight:
        order, amount = in_flight
        c.sent[order] = (amount, "raw")
        c.maybe[order] = amount
    return c


def test_an_order_credited_late_after_the_boot_is_not_a_forgotten_seq():
    events = InstantEvents(range(1, 11))
    meter = ScriptedMeter(events, seq=10, balance=powercut.INITIAL_MINOR, late_order=7, amount=50)
    c = auditor(events, meter, in_flight=(7, 50))
    c._boot_and_audit()
    assert events.max_seq() == 11          # the late credit's event was there before the check
    assert c.violations == [], c.violations
    assert c.applied == {7: 50} and c.ack[7] == (powercut.INITIAL_MINOR + 50, 11)


def test_a_seq_published_before_the_cut_and_forgotten_is_a_violation():
    events = InstantEvents(range(1, 12))   # seq 11 reached the head-end before the cut
    meter = ScriptedMeter(events, seq=10, balance=powercut.INITIAL_MINOR)
    c = auditor(events, meter)
    c._boot_and_audit()
    assert any("event seq 11 was published, the meter restarted at seq 10" in v
               for v in c.violations), c.violations
