"""The reference head-end's event-gap filling and command ordering, with its
MQTT client replaced by a recorder (no broker): the meter keeps delivered
events only until its outbox needs the room, so a missed event must be asked
for at once, and a question the meter refused must be asked again at once."""
import json
import random
import threading
import time

from headend import codec
from headend.server import HeadEnd

KEY_HEX = "22" * 32
KEY = bytes.fromhex(KEY_HEX)
MID = "G1"


class Recorder:
    def __init__(self):
        self.sent = []
        self.lock = threading.Lock()

    def publish(self, topic, payload, qos=0, retain=False):
        # a real client takes a varying moment to queue a packet: long enough
        # for another thread to take a newer counter and overtake this one,
        # unless the head-end holds its send lock across the publish
        time.sleep(random.uniform(0, 0.002))
        with self.lock:
            self.sent.append(json.loads(payload))


def headend(tmp_path):
    he = HeadEnd(str(tmp_path / "he.sqlite"))
    he.client = Recorder()
    he.provision(MID, KEY_HEX)
    return he


def meter_msg(**body):
    body.update({"v": 1, "meter": MID})
    return codec.sign(KEY, body)


def evt(seq, **f):
    return meter_msg(seq=seq, kind="topup", t=1767225600, order=seq, amount_minor=1, balance_minor=seq, **f)


def queries(he):
    return [c for c in he.client.sent if c["kind"] == "query"]


def test_a_gap_is_asked_for_at_once_and_not_again_while_the_answer_is_on_its_way(tmp_path):
    he = headend(tmp_path)
    he.handle(MID, "evt", evt(1), now=100.0)
    he.handle(MID, "evt", evt(3), now=100.1)          # 2 went missing
    assert [(q["what"], q["since"]) for q in queries(he)] == [("events", 1)]
    he.handle(MID, "evt", evt(4), now=100.2)          # same gap, asked a moment ago
    assert len(queries(he)) == 1
    he.handle(MID, "evt", evt(2), now=100.3)          # the re-sent event fills it
    assert he.contiguous_seq(MID) == 4


def test_an_ack_naming_an_event_we_lack_is_a_gap_too(tmp_path):
    he = headend(tmp_path)
    he.handle(MID, "evt", evt(1), now=100.0)
    he.handle(MID, "ack", meter_msg(ctr=5, kind="topup", order=9, result="credited",
                                    balance_minor=10, seq=2, t=1767225600), now=100.1)
    assert [(q["what"], q["since"]) for q in queries(he)] == [("events", 1)]


def test_a_refused_question_is_asked_again_at_once(tmp_path):
    he = headend(tmp_path)
    he.handle(MID, "evt", evt(1), now=100.0)
    he.handle(MID, "evt", evt(3), now=100.1)
    q = queries(he)[0]
    he.handle(MID, "ack", meter_msg(ctr=q["ctr"], kind="query", result="rejected", reason="replayed",
                                    t=1767225600), now=100.2)
    again = queries(he)
    assert len(again) == 2 and again[1]["since"] == 1 and again[1]["ctr"] > q["ctr"]
    # a refusal that retrying cannot help is not a loop
    he.handle(MID, "ack", meter_msg(ctr=again[1]["ctr"], kind="query", result="rejected",
                                    reason="not_permitted", t=1767225600), now=100.3)
    assert len(queries(he)) == 2


def test_the_ticker_asks_for_a_gap_no_message_has_shown_since(tmp_path):
    # the last event of a burst lost and nothing after it: the ack's seq is the clue
    he = headend(tmp_path)
    he.handle(MID, "evt", evt(1), now=100.0)
    he.handle(MID, "ack", meter_msg(ctr=5, kind="topup", order=2, result="credited",
                                    balance_minor=10, seq=2, t=1767225600), now=100.1)
    assert len(queries(he)) == 1
    he.fill_gaps(now=100.5)
    assert len(queries(he)) == 1                      # asked moments ago
    he.fill_gaps(now=100.1 + he.GAP_QUERY_EVERY_S + 0.1)
    assert len(queries(he)) == 2


def test_commands_leave_in_counter_order_whatever_thread_sends_them(tmp_path):
    he = headend(tmp_path)
    orders = [he.topup(MID, 100) for _ in range(3)]

    def worker(i):
        for _ in range(40):
            if i % 2:
                he.send(MID, "query", what="state")
            else:
                he.issue(orders[i % 3])
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ctrs = [c["ctr"] for c in he.client.sent]
    assert len(ctrs) == 3 + 160 and ctrs == sorted(ctrs) and len(set(ctrs)) == len(ctrs)
