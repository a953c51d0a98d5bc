"""The reference head-end and one sim meter (the compiled firmware) over a real
mosquitto, with the fault proxy between meter and broker (issue 7).

`run()` sends top-ups through tools/headend (SQLite, paho-mqtt), re-sends some
of them the two ways a meter sees a top-up again (the same signed bytes, as a
QoS 1 redelivery; a reissue with a new counter, as the head-end does after
its timeout), injects link faults (blackhole, drop, delay, RST of the flow,
broker restart) and finally checks the head-end's books against the meter:

- topups_doubled: orders with more than one top-up event, or a balance that
  says credit was applied twice (the meter's balance must equal the initial
  balance plus every credited order, minus what the meter charged);
- acked_topups_lost: orders the head-end saw credited that the meter's event
  log does not hold;
- events_missing: seqs 1..S (S from the meter's state) the head-end never
  received and the meter does not list as dropped.

Used by tests/test_e2e_headend.py and tools/bench_protocol.py.
"""
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from broker import Broker  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402
from headend.server import HeadEnd  # noqa: E402
from simmeter import SimMeter  # noqa: E402

KEY_HEX = "33" * 32
INITIAL = 10 ** 7
FAULTS = ("blackhole", "drop", "delay", "reset", "broker")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else None


class Rig:
    def __init__(self, workdir, meter_id="E1", seed=1, reissue_after_s=1.0, keepalive_s=4, config=None,
                 scale=1, meter_kw=None):
        self.rng = random.Random(seed)
        self.broker = Broker(os.path.join(workdir, "broker")).start()
        self.proxy = FaultProxy(self.broker.port).start()
        self.he = HeadEnd(os.path.join(workdir, "headend.sqlite"), port=self.broker.port,
                          reissue_after_s=reissue_after_s, client_id="he-" + meter_id)
        self.he.GAP_QUERY_EVERY_S = 1.0
        self.he.provision(meter_id, KEY_HEX)
        self.he.start(tick_s=0.2)
        cfg = {"initial_balance_minor": INITIAL, "key_hex": KEY_HEX, "keepalive_s": keepalive_s,
               "state_every_s": 30}
        cfg.update(config or {})
        self.mid = meter_id
        # a meter that resets itself comes back, as on the board; the audit counts it
        self.m = SimMeter(meter_id, workdir, broker_port=self.proxy.port, config=cfg, scale=scale,
                          auto_restart=True, **(meter_kw or {}))
        try:
            self.m.start()
            self.m.wait_for(lambda s: s["meter"]["link_up"], timeout=30)
        except BaseException:
            self.close()   # a meter that did not start (a heap too small) is not left running
            raise
        self.stats = {"topups": 0, "resend_same": 0, "resend_fresh": 0, "faults": 0,
                      "credited": 0, "rejected": 0}
        self.faults = {k: 0 for k in FAULTS}

    def close(self):
        for f in (self.m.stop, self.he.stop, self.proxy.stop, self.broker.stop):
            try:
                f()
            except Exception:
                pass

    # --- the world
    def fault(self):
        kind = self.rng.choice(FAULTS)
        self.faults[kind] += 1
        self.stats["faults"] += 1
        p = self.proxy
        if kind == "broker":
            self.broker.restart()
        elif kind == "reset":
            p.reset_all()
        else:
            p.set_mode(kind, delay_ms=self.rng.choice((200, 800, 2500)))
            time.sleep(self.rng.uniform(0.1, 0.8))
            p.set_mode("pass")
            if kind != "delay":
                p.reset_all()  # what the dead flow ends as, once the NAT gives up
        return kind

    def resend(self, order_id):
        o = self.he.order(order_id)
        if self.rng.random() < 0.5:
            # the same signed bytes again: a QoS 1 redelivery
            c = self.he.command(self.mid, o["ctr"])
            self.he.client.publish("meters/%s/cmd" % self.mid, c["payload"], qos=1)
            self.stats["resend_same"] += 1
        else:
            self.he.issue(order_id)       # a reissue: same order, new counter
            self.stats["resend_fresh"] += 1

    def topups(self, n, faults=0, resend_every=5, timeout_s=30):
        """n top-ups, one after the other; `faults` link faults spread over
        them. Returns the credited orders' latencies (ms, publish to ack)."""
        fault_at = set(self.rng.sample(range(n), min(faults, n)))
        lat = []
        for i in range(n):
            if i in fault_at:
                self.fault()
            amount = self.rng.randint(1, 5000)
            oid = self.he.topup(self.mid, amount)
            self.stats["topups"] += 1
            if resend_every and i % resend_every == 0:
                self.resend(oid)
            o = self.he.wait_order(oid, timeout_s)
            if o["state"] == "credited":
                self.stats["credited"] += 1
                if o["attempts"] == 1 and o["latency_ms"] is not None:
                    lat.append(o["latency_ms"])
            else:
                self.stats["rejected"] += 1
        return lat

    def settle(self, timeout_s=60):
        """Link healthy again: wait until the head-end holds the meter's
        latest state and every event up to its seq."""
        self.proxy.set_mode("pass")
        end = time.time() + timeout_s
        while time.time() < end:
            st = self.m.control({"cmd": "meter_state"})["state"]
            if self.he.contiguous_seq(self.mid) >= st["seq"]:
                m = self.he.reconcile(self.mid)
                if m["meter_seq"] >= st["seq"]:
                    return st
            time.sleep(0.2)
        return self.m.control({"cmd": "meter_state"})["state"]

    def audit(self, st):
        """The figures the issue asks for, from the head-end's SQLite and the meter."""
        r = self.he.reconcile(self.mid)
        con = self.he.con
        with self.he.lock:
            credited = con.execute("SELECT COALESCE(SUM(amount_minor),0), COUNT(*) FROM orders "
                                   "WHERE meter_id=? AND state='credited'", (self.mid,)).fetchone()
            open_orders = con.execute("SELECT COUNT(*) FROM orders WHERE meter_id=? AND state IN "
                                      "('processing','issued')", (self.mid,)).fetchone()[0]
        charged = st["obis_1_8_0"]  # the rig draws no load: nothing is charged
        want = INITIAL + credited[0] - 0 * charged
        return {"topups_doubled": len(r["doubled_orders"]) + (1 if st["balance_minor"] > want else 0),
                "acked_topups_lost": len(r["acked_orders_without_event"]) + (1 if st["balance_minor"] < want else 0),
                "events_missing": len(r["missing_seqs"]),
                "unknown_orders": len(r["unknown_orders"]),
                "orders_open": open_orders, "orders_credited": credited[1],
                "meter_balance_minor": st["balance_minor"], "expected_balance_minor": want,
                "server_balance_minor": r["server_balance_minor"], "meter_seq": st["seq"],
                "reconciled": r["ok"], "meter_resets": len(self.m.exits)}


def telemetry_bytes_per_day(workdir=None, real_s=30, load_w=1000, state_every_s=300, probe_every_s=3):
    """Bytes on the wire a day (MQTT over TCP, both ways, counted by the
    fault proxy) for a meter in steady state under load with no commands.
    What it sends then is the periodic state (state_every_s, production
    default 300 s) and a frozen daily record; keepalive pings are not needed
    while states flow more often than the keepalive (120 s). The window runs
    the state every `probe_every_s` to count enough of them in `real_s`
    seconds, and scales the measured bytes per state to the production
    period; the daily frozen record is counted as one more state-sized
    message (it is smaller)."""
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        rig = Rig(d, config={"state_every_s": probe_every_s}, keepalive_s=120)
        try:
            states = []
            rig.he.listeners.append(lambda mid, leaf, obj: states.append(1) if leaf == "state" else None)
            rig.m.control({"cmd": "load", "w": load_w})
            time.sleep(probe_every_s + 1)
            up0, down0, n0 = rig.proxy.bytes_up, rig.proxy.bytes_down, len(states)
            time.sleep(real_s)
            up, down, n = rig.proxy.bytes_up - up0, rig.proxy.bytes_down - down0, len(states) - n0
            per_state = (up + down) / max(1, n)
            per_day = per_state * (86400 // state_every_s + 1)
            return {"telemetry_bytes_per_day": int(per_day), "telemetry_bytes_per_state": int(per_state),
                    "telemetry_states_seen": n}
        finally:
            rig.close()


def run(n_topups, n_faults, seed=1, workdir=None, resend_every=5):
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        rig = Rig(d, seed=seed)
        try:
            t0 = time.time()
            lat = rig.topups(n_topups, faults=n_faults, resend_every=resend_every)
            st = rig.settle()
            out = rig.audit(st)
            out.update(rig.stats)
            out["faults_by_kind"] = dict(rig.faults)
            out["seconds"] = round(time.time() - t0, 1)
            if lat:
                out["latency_ms_p50"] = round(statistics.median(lat), 1)
                out["latency_ms_p95"] = round(pct(lat, 95), 1)
                out["latency_ms_p99"] = round(pct(lat, 99), 1)
            return out
        finally:
            rig.close()


if __name__ == "__main__":
    import argparse
    import json
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--topups", type=int, default=200)
    ap.add_argument("--faults", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    print(json.dumps(run(a.topups, a.faults, a.seed), indent=1))
