"""Head-end worker: signs and publishes commands, consumes acks, events and
state, drives the order lifecycle, reissues, reconciles, raises notices.

Several workers may run against one broker and one SQLite file: they
subscribe with MQTT shared subscriptions ($share/<group>/...), so the broker
hands each meter message to exactly one of them.
"""
import json
import socket
import threading
import time

import paho.mqtt.client as mqtt

from headend import codec, db

# Rejections after which the same order is simply reissued with a new counter.
RETRYABLE = {"replayed", "expired", "internal", "store_failed", "busy"}
# The meter no longer remembers the order (docs/protocol.md, "Orders outside
# the record"): never reissued; settled from the meter's events instead.
SETTLE_FROM_EVENTS = {"order_forgotten"}
TOPICS = ("ack", "evt", "state", "status")


def topic(meter_id, leaf):
    return "meters/%s/%s" % (meter_id, leaf)


def money(minor, digits=2):
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    return "%s%d.%0*d" % (sign, minor // 10 ** digits, digits, minor % 10 ** digits)


class HeadEnd:
    REISSUE_AFTER_S = 900     # the issue's 15 minutes; tests shorten it
    TTL_S = 3600              # "exp" of a command = issue time + TTL_S
    MINOR_DIGITS = 2

    def __init__(self, db_path, host="127.0.0.1", port=1883, user=None, password=None,
                 group="headend", client_id=None, reissue_after_s=None, ttl_s=None, log=None):
        self.con = db.connect(db_path)
        self.lock = threading.RLock()
        # Held from taking a counter to handing the command to paho, so
        # commands leave in counter order: the meter refuses a counter below
        # one it has accepted (`replayed`), and three threads send here (the
        # caller, the ticker, paho's network thread filling event gaps).
        self.send_lock = threading.Lock()
        self.host, self.port = host, port
        self.group = group
        if reissue_after_s is not None:
            self.REISSUE_AFTER_S = reissue_after_s
        if ttl_s is not None:
            self.TTL_S = ttl_s
        self.log = log or (lambda *a: None)
        self.bad_messages = 0
        self.foreign_messages = 0   # from meters not in our database, ignored
        self.live_events = 0        # events without a seq: a meter in store fault
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "",
                                  protocol=mqtt.MQTTv311, clean_session=True)
        if user:
            self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._ticker = None
        self.listeners = []     # callables(meter_id, leaf, obj) for `watch` and tests
        self.published_at = {}  # (meter_id, ctr) -> time.time() right before the publish
        self._gap_asked = {}    # meter_id -> (contiguous seq asked from, when)
        self._contig = {}       # meter_id -> contiguous_seq() last found

    # -- life cycle
    def start(self, tick_s=1.0):
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError("head-end could not connect to %s:%d" % (self.host, self.port))
        if tick_s:
            self._ticker = threading.Thread(target=self._tick_loop, args=(tick_s,), daemon=True)
            self._ticker.start()
        return self

    def stop(self):
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()
        if self._ticker:
            self._ticker.join(5)

    def _tick_loop(self, tick_s):
        while not self._stop.wait(tick_s):
            try:
                self.tick()
            except Exception as e:   # a worker outlives a bad row; the next tick retries
                self.log("tick error", repr(e))

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        sock = client.socket()
        if sock is not None:  # commands go out at once, not after Nagle's wait
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        subs = [("$share/%s/meters/+/%s" % (self.group, leaf), 1) for leaf in TOPICS]
        client.subscribe(subs)
        self._gap_asked = {}   # back from an absence: look for missed events at once
        self.connected.set()

    # -- commands
    def provision(self, meter_id, key_hex=None, password=None, force=False):
        with self.lock:
            return db.provision(self.con, meter_id, key_hex, password, force)

    def send(self, meter_id, kind, **fields):
        """Sign and publish one command; returns its counter."""
        with self.send_lock:
            return self._send(meter_id, kind, fields)

    def _send(self, meter_id, kind, fields):
        with self.lock:
            m = db.meter(self.con, meter_id)
            ctr = db.next_ctr(self.con, meter_id)
            exp = int(time.time()) + self.TTL_S
            payload = codec.command(meter_id, bytes.fromhex(m["key_hex"]), ctr, exp, kind, **fields)
            with db.Tx(self.con):
                self.con.execute("INSERT INTO commands (meter_id, ctr, kind, payload, sent_at) VALUES (?,?,?,?,?)",
                                 (meter_id, ctr, kind, payload.decode(), time.time()))
        self.client.publish(topic(meter_id, "cmd"), payload, qos=1)
        return ctr

    def topup(self, meter_id, amount_minor):
        """A paid order: Processing now, Issued once published. Returns order_id."""
        with self.lock:
            order_id = db.new_order(self.con, meter_id, amount_minor)
        self.issue(order_id)
        return order_id

    def issue(self, order_id):
        with self.send_lock:
            return self._issue(order_id)

    def _issue(self, order_id):
        with self.lock:
            o = db.order(self.con, order_id)
            if o["state"] in ("credited", "rejected", "unsettled"):
                return None
            m = db.meter(self.con, o["meter_id"])
            ctr = db.next_ctr(self.con, o["meter_id"])
            exp = int(time.time()) + self.TTL_S
            payload = codec.command(o["meter_id"], bytes.fromhex(m["key_hex"]), ctr, exp, "topup",
                                    order=o["order_no"], amount_minor=o["amount_minor"])
            now = time.time()
            with db.Tx(self.con):
                self.con.execute("INSERT INTO commands (meter_id, ctr, kind, payload, sent_at) VALUES (?,?,?,?,?)",
                                 (o["meter_id"], ctr, "topup", payload.decode(), now))
                self.con.execute("UPDATE orders SET state='issued', ctr=?, issued_at=?, attempts=attempts+1, "
                                 "first_issued_at=COALESCE(first_issued_at, ?) WHERE order_id=? AND state IN "
                                 "('processing','issued')", (ctr, now, now, order_id))
        if len(self.published_at) > 10000:   # acks that never came: forget them
            self.published_at.clear()
        self.published_at[(o["meter_id"], ctr)] = time.time()
        self.client.publish(topic(o["meter_id"], "cmd"), payload, qos=1)
        return ctr

    def tick(self, now=None):
        """Issue Processing orders; reissue Issued ones unacknowledged for
        REISSUE_AFTER_S (same order number, new counter and expiry)."""
        now = now or time.time()
        with self.lock:
            rows = self.con.execute(
                "SELECT order_id FROM orders WHERE state='processing' OR "
                "(state='issued' AND (issued_at IS NULL OR issued_at < ?))",
                (now - self.REISSUE_AFTER_S,)).fetchall()
        for r in rows:
            self.issue(r[0])
        self.fill_gaps(now)
        return len(rows)

    GAP_QUERY_EVERY_S = 5.0

    def fill_gaps(self, now=None):
        """Ask a meter to re-send the events we miss: its state says seq S
        and we lack some of 1..S (we were away when they were published, or
        the broker restarted without them). The meter republishes what its
        outbox still holds; what it dropped, its state lists."""
        now = now or time.time()
        with self.lock:
            meters = [r[0] for r in self.con.execute(
                "SELECT meter_id FROM meters WHERE state_seq IS NOT NULL OR balance_seq IS NOT NULL")]
        for mid in meters:
            self._fill_gap(mid, None, now)

    def _fill_gap(self, mid, seq, now):
        # Ask as soon as a gap shows (a message with a seq beyond what we
        # hold): the meter keeps delivered events only until its outbox needs
        # the room. The same gap is asked for again only after a while.
        asked = self._gap_asked
        contig = self.contiguous_seq(mid)
        if seq is None:
            with self.lock:
                m = db.meter(self.con, mid)
            seq = max(m["state_seq"] or 0, m["balance_seq"] or 0)   # the highest seq any message named
        if seq <= contig:
            return
        last = asked.get(mid)
        if last and last[0] == contig and now - last[1] < self.GAP_QUERY_EVERY_S:
            return
        asked[mid] = (contig, now)
        self.send(mid, "query", what="events", since=contig)

    def contiguous_seq(self, meter_id):
        """Highest n such that we hold (or know as dropped) every event 1..n.
        Asked on every message: the scan starts where the last one stopped
        (events are never deleted, so that figure only grows)."""
        n = self._contig.get(meter_id, 0)
        with self.lock:
            m = db.meter(self.con, meter_id)
            have = set(r[0] for r in self.con.execute("SELECT seq FROM events WHERE meter_id=? AND seq>?",
                                                      (meter_id, n)))
        state = json.loads(m["state_json"]) if m["state_json"] else {}
        have.update(state.get("evt_dropped", []))
        while n + 1 in have:
            n += 1
        self._contig[meter_id] = n
        return n

    # -- meter messages
    def _on_message(self, client, userdata, msg):
        try:
            parts = msg.topic.split("/")
            if len(parts) != 3 or parts[0] != "meters":
                return
            self.handle(parts[1], parts[2], msg.payload, time.time())
        except db.UnknownMeter:
            # another head-end's meter on a shared broker (its retained state
            # arrives at every subscribe): not ours, not a bad message
            self.foreign_messages += 1
        except Exception as e:
            self.bad_messages += 1
            self.log("bad message", msg.topic, repr(e))

    def handle(self, meter_id, leaf, payload, now=None):
        """Process one message from meters/<meter_id>/<leaf>, received at `now`."""
        now = now or time.time()
        with self.lock:
            m = db.meter(self.con, meter_id)
            if leaf == "status":
                with db.Tx(self.con):
                    self.con.execute("UPDATE meters SET status=?, status_at=? WHERE meter_id=?",
                                     (payload.decode(errors="replace")[:16], now, meter_id))
                obj = {"status": payload.decode(errors="replace")}
            else:
                obj = codec.verify(bytes.fromhex(m["key_hex"]), payload)
                if obj.get("meter") != meter_id:
                    raise ValueError("message for %r on %s's topic" % (obj.get("meter"), meter_id))
                getattr(self, "_on_" + leaf)(meter_id, obj, now)
        if leaf == "ack" and obj.get("kind") == "query" and obj.get("reason") in RETRYABLE:
            # our question was refused (overtaken by a newer counter, say):
            # ask again now, not after GAP_QUERY_EVERY_S, before the meter
            # needs the room those events hold
            self._gap_asked.pop(meter_id, None)
            self._fill_gap(meter_id, None, now)
        elif leaf in ("evt", "state", "ack") and isinstance(obj.get("seq"), int):
            # an ack's seq names the top-up event it raised: a gap too
            self._fill_gap(meter_id, obj["seq"], now)
        for fn in self.listeners:
            fn(meter_id, leaf, obj)

    def _seen_balance(self, meter_id, balance, seq, t):
        # The server's balance is the meter's figure at the highest seq seen.
        self.con.execute("UPDATE meters SET balance_minor=?, balance_seq=?, balance_t=? WHERE meter_id=? "
                         "AND (balance_seq IS NULL OR balance_seq<=?)", (balance, seq, t, meter_id, seq))

    def _on_ack(self, meter_id, ack, now):
        ctr = ack.get("ctr", 0)
        with db.Tx(self.con):
            self.con.execute("UPDATE commands SET result=?, reason=?, ack_json=?, ack_at=? WHERE meter_id=? AND ctr=?",
                             (ack.get("result"), ack.get("reason"), db.dumps(ack), now, meter_id, ctr))
            if isinstance(ack.get("seq"), int) and isinstance(ack.get("balance_minor"), int):
                # the meter's own figure at that seq, whatever order it belongs to
                self._seen_balance(meter_id, ack["balance_minor"], ack["seq"], ack.get("t"))
            row = None
            if "order" in ack:
                row = self.con.execute("SELECT * FROM orders WHERE meter_id=? AND order_no=?",
                                       (meter_id, ack["order"])).fetchone()
            elif ctr:
                row = self.con.execute("SELECT * FROM orders WHERE meter_id=? AND ctr=?", (meter_id, ctr)).fetchone()
            if row is None or row["state"] in ("credited", "rejected"):
                return
            if ack.get("reason") in SETTLE_FROM_EVENTS:
                # whichever attempt it answers: it is a fact about the order
                # (done_at holds when the meter first said so, until it is settled)
                if row["state"] != "unsettled":
                    self.con.execute("UPDATE orders SET state='unsettled', reason=?, done_at=? WHERE order_id=?",
                                     (ack["reason"], now, row["order_id"]))
                self._settle(meter_id, now)
                return
            if ack["result"] in ("credited", "duplicate"):
                # top-up latency: our publish of this attempt to the receipt of its ack
                sent = self.published_at.pop((meter_id, ctr), None)
                self._credited(row, ack["result"], ack["balance_minor"], ack["seq"], now,
                               (now - sent) * 1000.0 if sent and ctr == row["ctr"] else None)
            elif ack.get("reason") in RETRYABLE:
                if row["ctr"] == ctr:   # the current attempt failed: reissue at the next tick
                    self.con.execute("UPDATE orders SET issued_at=NULL, reason=? WHERE order_id=?",
                                     (ack.get("reason"), row["order_id"]))
            elif row["ctr"] == ctr:
                self.con.execute("UPDATE orders SET state='rejected', result='rejected', reason=?, done_at=? "
                                 "WHERE order_id=?", (ack.get("reason"), now, row["order_id"]))

    def _settle(self, meter_id, now):
        """Settle the meter's unsettled orders from its events. An order the
        meter has forgotten was credited if and only if a `topup` event for
        it exists: credited when we hold one; never credited when we hold
        every event up to the seq of a state the meter published after it
        answered (no credit can come after that answer), and none is for it.
        Otherwise it waits (the gap filler asks for what we lack); if events
        the meter no longer holds are missing for good, it stays unsettled
        for a person to look at. Call inside a transaction."""
        rows = self.con.execute("SELECT * FROM orders WHERE meter_id=? AND state='unsettled'",
                                (meter_id,)).fetchall()
        if not rows:
            return
        m = db.meter(self.con, meter_id)
        for row in rows:
            ev = self.con.execute("SELECT seq, body FROM events WHERE meter_id=? AND kind='topup' AND "
                                  "json_extract(body, '$.order')=?", (meter_id, row["order_no"])).fetchone()
            if ev is not None:
                self._credited(row, "credited", json.loads(ev["body"])["balance_minor"], ev["seq"], now)
                continue
            answered = row["done_at"]
            upto = m["state_seq"]
            if answered is None or upto is None or (m["state_at"] or 0) < answered:
                continue
            held = self.con.execute("SELECT COUNT(*) FROM events WHERE meter_id=? AND seq BETWEEN 1 AND ?",
                                    (meter_id, upto)).fetchone()[0]
            if held == upto:
                self.con.execute("UPDATE orders SET state='rejected', result='rejected', reason='never_credited', "
                                 "done_at=? WHERE order_id=?", (now, row["order_id"]))

    def _credited(self, row, result, balance, seq, now, latency=None):
        self.con.execute("UPDATE orders SET state='credited', result=?, balance_after_minor=?, seq=?, done_at=?, "
                         "latency_ms=? WHERE order_id=?", (result, balance, seq, now, latency, row["order_id"]))

    def _on_evt(self, meter_id, ev, now):
        seq = ev.get("seq")
        if seq is None:
            # sent live by a meter in store fault (docs/protocol.md, "Events"):
            # outside the seq order, never re-sent, so nothing to store or
            # reconcile; the meter's state carries the fault too
            self.live_events += 1
            self.log("live event", meter_id, db.dumps(ev))
            return
        with db.Tx(self.con):
            cur = self.con.execute("INSERT OR IGNORE INTO events (meter_id, seq, kind, t, body, received_at) "
                                   "VALUES (?,?,?,?,?,?)", (meter_id, seq, ev["kind"], ev.get("t"), db.dumps(ev), now))
            if cur.rowcount == 0:   # at-least-once delivery: a copy we already have
                self.con.execute("UPDATE events SET copies=copies+1 WHERE meter_id=? AND seq=?", (meter_id, seq))
                return
            if "balance_minor" in ev:
                self._seen_balance(meter_id, ev["balance_minor"], seq, ev.get("t"))
            if ev["kind"] == "topup":
                row = self.con.execute("SELECT * FROM orders WHERE meter_id=? AND order_no=?",
                                       (meter_id, ev.get("order"))).fetchone()
                if row is not None and row["state"] != "credited":
                    self._credited(row, "credited", ev["balance_minor"], seq, now)
            if ev["kind"] == "warning" and ev.get("level", 0) > 0:
                self._notice(meter_id, ev, now)

    def _notice(self, meter_id, ev, now):
        # The notice quotes the meter's own figure and the meter's time of it,
        # so it can never contradict what the display showed at that moment.
        t = ev.get("t") or 0
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t)) if t else "unknown time (meter clock unsynced)"
        text = "Meter %s: balance %s at %s (meter clock). Low-credit warning level %d. Please top up." % (
            meter_id, money(ev["balance_minor"], self.MINOR_DIGITS), when, ev["level"])
        self.con.execute("INSERT OR IGNORE INTO notices (meter_id, seq, level, balance_minor, meter_t, text, created_at) "
                         "VALUES (?,?,?,?,?,?,?)", (meter_id, ev["seq"], ev["level"], ev["balance_minor"], t, text, now))

    def _on_state(self, meter_id, st, now):
        seq = st.get("seq", 0)
        with db.Tx(self.con):
            self.con.execute("UPDATE meters SET state_json=?, state_seq=?, state_at=? WHERE meter_id=? "
                             "AND (state_seq IS NULL OR state_seq<=?)", (db.dumps(st), seq, now, meter_id, seq))
            if "balance_minor" in st:
                self._seen_balance(meter_id, st["balance_minor"], seq, st.get("t"))
            self._settle(meter_id, now)

    # -- views
    def order(self, order_id):
        with self.lock:
            return db.order(self.con, order_id)

    def wait_order(self, order_id, timeout_s=10.0, states=("credited", "rejected")):
        end = time.time() + timeout_s
        while time.time() < end:
            o = self.order(order_id)
            if o["state"] in states:
                return o
            time.sleep(0.005)
        return self.order(order_id)

    def command(self, meter_id, ctr):
        with self.lock:
            row = self.con.execute("SELECT * FROM commands WHERE meter_id=? AND ctr=?", (meter_id, ctr)).fetchone()
        return dict(row) if row else None

    def wait_ack(self, meter_id, ctr, timeout_s=10.0):
        end = time.time() + timeout_s
        while time.time() < end:
            c = self.command(meter_id, ctr)
            if c and c["ack_json"]:
                return json.loads(c["ack_json"])
            time.sleep(0.005)
        return None

    def notices(self, meter_id):
        with self.lock:
            return [dict(r) for r in self.con.execute(
                "SELECT * FROM notices WHERE meter_id=? ORDER BY seq", (meter_id,))]

    def reconcile(self, meter_id):
        """Check the server's view against the meter's at the meter's seq:
        balance, event seqs, and every credited order seen exactly once."""
        with self.lock:
            m = db.meter(self.con, meter_id)
            seqs = [r[0] for r in self.con.execute("SELECT seq FROM events WHERE meter_id=? ORDER BY seq", (meter_id,))]
            topups = [json.loads(r[0]) for r in self.con.execute(
                "SELECT body FROM events WHERE meter_id=? AND kind='topup'", (meter_id,))]
            orders = [dict(r) for r in self.con.execute("SELECT * FROM orders WHERE meter_id=?", (meter_id,))]
        state = json.loads(m["state_json"]) if m["state_json"] else {}
        meter_seq = state.get("seq", seqs[-1] if seqs else 0)
        dropped = set(state.get("evt_dropped", []))
        have = set(seqs)
        missing = [s for s in range(1, meter_seq + 1) if s not in have and s not in dropped]
        per_order = {}
        for ev in topups:
            per_order[ev["order"]] = per_order.get(ev["order"], 0) + 1
        doubled = sorted(o for o, n in per_order.items() if n > 1)
        by_no = {o["order_no"]: o for o in orders}
        unknown = sorted(o for o in per_order if o not in by_no)
        credited = [o for o in orders if o["state"] == "credited"]
        lost = sorted(o["order_no"] for o in credited if o["seq"] is not None and o["seq"] <= meter_seq
                      and o["order_no"] not in per_order)
        ok = (not missing and not doubled and not unknown and not lost
              and (not state or state.get("balance_minor") == m["balance_minor"] or m["balance_seq"] > meter_seq))
        return {"meter_id": meter_id, "ok": ok, "meter_seq": meter_seq,
                "meter_balance_minor": state.get("balance_minor"), "server_balance_minor": m["balance_minor"],
                "server_balance_seq": m["balance_seq"], "missing_seqs": missing, "doubled_orders": doubled,
                "unknown_orders": unknown, "acked_orders_without_event": lost,
                "orders": {s: sum(1 for o in orders if o["state"] == s)
                           for s in ("processing", "issued", "credited", "rejected")}}
