"""Reference head-end CLI. Run from tools/: `python -m headend --help`.

  provision M1 [--force]             create a meter key and MQTT password
                                     (--force: re-key a meter already provisioned)
  topup M1 5000                      a paid order of 5000 minor units
  tariff M1 3 tariff.json [--at UTC] versioned tariff, activated at UTC seconds (0 = now)
  relay M1 disconnect|connect
  mode M1 prepaid|postpaid
  config M1 warn1_minor=5000 ...
  time M1                            send the server's UTC time
  token M1 "123 456 789"             relay an offline token (an SMS-sold one) to the meter
  query M1 state|commlog|billing|billing_monthly|events [--since N]
  ota M1 v2.ota [--serve S]          offer an update bundle (tools/ota_bundle.py) and
                                     serve its frames until the meter reports it
                                     installed, failed or rolled back (docs/ota.md)
  watch M1                           print every message of a meter live
  serve                              run a worker (shared subscription) until Ctrl-C
  reconcile M1                       compare the server's view with the meter's
  acl OUT_DIR --headend-password PW  mosquitto passwd/acl/conf for all meters

--demo talks to the meter of a running `make run`: its broker and its
head-end database (build/demo.json, written by make run).

Exit status: 0 ok / credited / duplicate / installed; 1 the meter rejected
the command (the ack, with its reason, is printed) or reported the update
failed or rolled back; 2 usage or setup error (unknown
meter, broker unreachable, bad file), one line on stderr; 3 no answer
within --wait seconds.
"""
import argparse
import json
import os
import sys
import time

from headend import acl, db
from headend.server import HeadEnd

OK, REJECTED, ERROR, TIMEOUT = 0, 1, 2, 3
# what `make run` (tools/run_demo.py) writes while it runs
DEMO_FILE = os.environ.get("METER_DEMO_FILE") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "build", "demo.json")


class CliError(Exception):
    """A problem the user can fix: printed as one line, exit status 2."""


def _broker(s):
    host, _, port = s.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise CliError("--broker wants HOST:PORT, not %r" % s) from None


def _demo(a):
    """--demo: the database and broker of the running `make run`."""
    try:
        with open(DEMO_FILE) as f:
            demo = json.load(f)
    except (OSError, ValueError):
        raise CliError("no `make run` demo is running (%s is missing): start `make run` in another terminal"
                       % os.path.relpath(DEMO_FILE)) from None
    a.db, a.broker = demo["db"], "127.0.0.1:%d" % demo["broker_port"]
    if a.ttl is None:   # the demo's clock may run x3600: its commands live longer
        a.ttl = demo.get("ttl_s")


def parser():
    ap = argparse.ArgumentParser(prog="headend", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="headend.sqlite")
    ap.add_argument("--broker", default="127.0.0.1:1883")
    ap.add_argument("--demo", action="store_true", help="use the database and broker of a running `make run`")
    ap.add_argument("--user", default="headend")
    ap.add_argument("--password")
    ap.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the ack")
    ap.add_argument("--ttl", type=int, help="seconds a command stays valid (default %d)" % HeadEnd.TTL_S)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("provision"); p.add_argument("meter"); p.add_argument("--key-hex")
    p.add_argument("--force", action="store_true", help="re-key a meter that is already provisioned")
    p = sub.add_parser("topup"); p.add_argument("meter"); p.add_argument("amount_minor", type=int)
    p = sub.add_parser("tariff"); p.add_argument("meter"); p.add_argument("version", type=int)
    p.add_argument("file"); p.add_argument("--at", type=int, default=0)
    p = sub.add_parser("relay"); p.add_argument("meter"); p.add_argument("action", choices=["connect", "disconnect"])
    p = sub.add_parser("mode"); p.add_argument("meter"); p.add_argument("mode", choices=["prepaid", "postpaid"])
    p = sub.add_parser("config"); p.add_argument("meter"); p.add_argument("settings", nargs="+")
    p = sub.add_parser("time"); p.add_argument("meter")
    p = sub.add_parser("token"); p.add_argument("meter"); p.add_argument("token", help="an OpenPAYGO token, e.g. \"123 456 789\" (docs/tokens.md)")
    p = sub.add_parser("query"); p.add_argument("meter")
    p.add_argument("what", choices=["state", "commlog", "billing", "billing_monthly", "events"]); p.add_argument("--since", type=int, default=0)
    p = sub.add_parser("ota"); p.add_argument("meter"); p.add_argument("bundle")
    p.add_argument("--serve", type=float, default=900.0, help="seconds to serve the frames and wait for the outcome")
    p = sub.add_parser("watch"); p.add_argument("meter")
    sub.add_parser("serve")
    p = sub.add_parser("reconcile"); p.add_argument("meter")
    p = sub.add_parser("acl"); p.add_argument("out_dir"); p.add_argument("--headend-password", required=True)
    p.add_argument("--port", type=int, default=1883)
    return ap


def main(argv=None):
    a = parser().parse_args(argv)
    try:
        return run(a)
    except CliError as e:
        msg = str(e)
    except db.UnknownMeter as e:
        msg = "%s: not provisioned in %s (run `provision %s` first)" % (e, a.db, e.args[0])
    except db.AlreadyProvisioned as e:
        msg = str(e)
    except ConnectionError as e:
        msg = "cannot reach the broker at %s: %s" % (a.broker, e.strerror or e)
    except OSError as e:   # a file that cannot be read, a name that does not resolve
        msg = "%s%s" % (e.strerror or e, ": %s" % e.filename if e.filename else "")
    except ValueError as e:  # a tariff file or a config value that is not JSON, a bad meter id
        msg = str(e)
    print("headend: error: %s" % msg, file=sys.stderr)
    return ERROR


def _settings(pairs):
    settings = {}
    for kv in pairs:
        k, eq, v = kv.partition("=")
        if not eq:
            raise CliError("config settings are KEY=VALUE, not %r" % kv)
        try:
            settings[k] = json.loads(v)
        except ValueError:
            raise CliError("config %s: %r is not a JSON value (strings need quotes)" % (k, v)) from None
    return settings


def _tariff(path):
    with open(path) as f:
        try:
            return json.load(f)
        except ValueError as e:
            raise CliError("%s is not JSON: %s" % (path, e)) from None


def run(a):
    if a.demo:
        _demo(a)
    if a.cmd in ("provision", "acl", "reconcile"):
        con = db.connect(a.db)
        if a.cmd == "provision":
            m = db.provision(con, a.meter, a.key_hex, force=a.force)
            print(json.dumps({"meter_id": m["meter_id"], "key_hex": m["key_hex"], "mqtt_password": m["password"]}))
        elif a.cmd == "acl":
            print(acl.write_config(a.out_dir, [(m["meter_id"], m["password"]) for m in db.meters(con)],
                                   a.headend_password, a.port))
        else:
            he = HeadEnd(a.db)
            print(json.dumps(he.reconcile(a.meter), indent=1))
        return OK

    host, port = _broker(a.broker)
    if a.cmd != "serve":
        # before the broker: an unknown meter is refused without a connection
        db.meter(db.connect(a.db), a.meter)
    # everything a command needs is read before anything is sent
    fields = None
    if a.cmd == "tariff":
        fields = {"version": a.version, "activate_utc_s": a.at, "tariff": _tariff(a.file)}
    elif a.cmd == "config":
        fields = {"settings": _settings(a.settings)}
    elif a.cmd == "ota":
        fields = _bundle(a.bundle)
    if a.cmd == "watch":
        return _watch(a, host, port)
    he = HeadEnd(a.db, host, port, a.user, a.password, ttl_s=a.ttl, log=lambda *x: print(*x, file=sys.stderr))
    he.start(tick_s=1.0 if a.cmd == "serve" else 0)
    try:
        if a.cmd == "serve":
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return OK
        if a.cmd == "topup":
            oid = he.topup(a.meter, a.amount_minor)
            o = he.wait_order(oid, a.wait)
            print(json.dumps(o))
            if o["state"] == "credited":
                return OK
            if o["state"] == "rejected":
                return REJECTED
            return _timeout(a, "the top-up (order %d is %s; the head-end reissues it)" % (o["order_no"], o["state"]))
        if a.cmd == "ota":
            return _ota(a, he, fields, host, port)
        if a.cmd == "tariff":
            ctr = he.send(a.meter, "tariff", **fields)
        elif a.cmd == "relay":
            ctr = he.send(a.meter, "relay", action=a.action)
        elif a.cmd == "mode":
            ctr = he.send(a.meter, "mode", mode=a.mode)
        elif a.cmd == "config":
            ctr = he.send(a.meter, "config", **fields)
        elif a.cmd == "time":
            ctr = he.send(a.meter, "time", utc_s=int(time.time()))
        elif a.cmd == "token":
            ctr = he.send(a.meter, "token", token=a.token)
        else:
            q = {"what": a.what}
            if a.what in ("billing", "billing_monthly", "events"):
                q["since"] = a.since
            ctr = he.send(a.meter, "query", **q)
        ack = he.wait_ack(a.meter, ctr, a.wait)
        if ack is None:
            return _timeout(a, "%s command %d" % (a.cmd, ctr))
        print(json.dumps(ack))
        return REJECTED if ack.get("result") == "rejected" else OK
    finally:
        he.stop()


def _bundle(path):
    import ota_bundle
    try:
        b = ota_bundle.read(path)
    except ota_bundle.BundleError as e:
        raise CliError("%s: %s" % (path, e)) from None
    problems = ota_bundle.check(*b)
    if problems:
        raise CliError("%s: %s" % (path, "; ".join(problems)))
    return b


def _ota(a, he, bundle, host, port):
    """Serve the bundle's frames, offer it, and wait for the meter's "ota"
    event (it comes after the meter restarted into the new version and
    became healthy, or after a failed download or a roll-back)."""
    from headend.ota import OtaPublisher
    with he.lock:
        key = bytes.fromhex(db.meter(he.con, a.meter)["key_hex"])
    since = time.time()
    pub = OtaPublisher([bundle], host, port, a.user, a.password, keys={a.meter: key}).start()
    try:
        ctr = he.send(a.meter, "ota", manifest=bundle[0])
        ack = he.wait_ack(a.meter, ctr, a.wait)
        if ack is None:
            return _timeout(a, "the ota command %d" % ctr)
        print(json.dumps(ack), flush=True)
        if ack.get("result") == "rejected":
            return REJECTED
        deadline = time.time() + a.serve
        while time.time() < deadline:
            with he.lock:
                row = he.con.execute("SELECT body FROM events WHERE meter_id=? AND kind='ota' AND received_at>=? "
                                     "ORDER BY seq LIMIT 1", (a.meter, since)).fetchone()
            if row is not None:
                ev = json.loads(row["body"])
                print(json.dumps(ev))
                return OK if ev.get("result") == "installed" and ev.get("ver") == bundle[0]["ver"] else REJECTED
            time.sleep(0.2)
        print("headend: error: no outcome from %s within %g s (%d frames served)" % (a.meter, a.serve, pub.served),
              file=sys.stderr)
        return TIMEOUT
    finally:
        pub.stop()


def _timeout(a, what):
    print("headend: error: no ack from %s within %g s for %s (is the meter online? `watch %s` shows its status)"
          % (a.meter, a.wait, what, a.meter), file=sys.stderr)
    return TIMEOUT


def _watch(a, host, port):
    import paho.mqtt.client as mqtt
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    if a.user:
        c.username_pw_set(a.user, a.password)
    c.on_message = lambda cl, u, msg: print("%.3f %s %s" % (time.time(), msg.topic, msg.payload.decode(errors="replace")), flush=True)
    c.connect(host, port)
    c.subscribe("meters/%s/#" % a.meter, 1)
    try:
        c.loop_forever()
    except KeyboardInterrupt:
        pass
    return OK


if __name__ == "__main__":
    sys.exit(main())
