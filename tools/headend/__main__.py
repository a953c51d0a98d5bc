"""Reference head-end CLI. Run from tools/: `python -m headend --help`.

  provision M1                       create a meter key and MQTT password
  topup M1 5000                      a paid order of 5000 minor units
  tariff M1 3 tariff.json [--at UTC] versioned tariff, activated at UTC seconds (0 = now)
  relay M1 disconnect|connect
  mode M1 prepaid|postpaid
  config M1 warn1_minor=5000 ...
  time M1                            send the server's UTC time
  query M1 state|commlog|billing|billing_monthly|events [--since N]
  watch M1                           print every message of a meter live
  serve                              run a worker (shared subscription) until Ctrl-C
  reconcile M1                       compare the server's view with the meter's
  acl OUT_DIR --headend-password PW  mosquitto passwd/acl/conf for all meters
"""
import argparse
import json
import sys
import time

from headend import acl, db
from headend.server import HeadEnd


def _broker(s):
    host, _, port = s.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="headend", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="headend.sqlite")
    ap.add_argument("--broker", default="127.0.0.1:1883")
    ap.add_argument("--user", default="headend")
    ap.add_argument("--password")
    ap.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the ack")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("provision"); p.add_argument("meter"); p.add_argument("--key-hex")
    p = sub.add_parser("topup"); p.add_argument("meter"); p.add_argument("amount_minor", type=int)
    p = sub.add_parser("tariff"); p.add_argument("meter"); p.add_argument("version", type=int)
    p.add_argument("file"); p.add_argument("--at", type=int, default=0)
    p = sub.add_parser("relay"); p.add_argument("meter"); p.add_argument("action", choices=["connect", "disconnect"])
    p = sub.add_parser("mode"); p.add_argument("meter"); p.add_argument("mode", choices=["prepaid", "postpaid"])
    p = sub.add_parser("config"); p.add_argument("meter"); p.add_argument("settings", nargs="+")
    p = sub.add_parser("time"); p.add_argument("meter")
    p = sub.add_parser("query"); p.add_argument("meter")
    p.add_argument("what", choices=["state", "commlog", "billing", "billing_monthly", "events"]); p.add_argument("--since", type=int, default=0)
    p = sub.add_parser("watch"); p.add_argument("meter")
    sub.add_parser("serve")
    p = sub.add_parser("reconcile"); p.add_argument("meter")
    p = sub.add_parser("acl"); p.add_argument("out_dir"); p.add_argument("--headend-password", required=True)
    p.add_argument("--port", type=int, default=1883)
    a = ap.parse_args(argv)

    if a.cmd in ("provision", "acl", "reconcile"):
        con = db.connect(a.db)
        if a.cmd == "provision":
            m = db.provision(con, a.meter, a.key_hex)
            print(json.dumps({"meter_id": m["meter_id"], "key_hex": m["key_hex"], "mqtt_password": m["password"]}))
        elif a.cmd == "acl":
            print(acl.write_config(a.out_dir, [(m["meter_id"], m["password"]) for m in db.meters(con)],
                                   a.headend_password, a.port))
        else:
            he = HeadEnd(a.db)
            print(json.dumps(he.reconcile(a.meter), indent=1))
        return 0

    host, port = _broker(a.broker)
    he = HeadEnd(a.db, host, port, a.user, a.password, log=lambda *x: print(*x, file=sys.stderr))
    if a.cmd == "watch":
        import paho.mqtt.client as mqtt
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if a.user:
            c.username_pw_set(a.user, a.password)
        c.on_message = lambda cl, u, msg: print("%.3f %s %s" % (time.time(), msg.topic, msg.payload.decode(errors="replace")), flush=True)
        c.connect(host, port)
        c.subscribe("meters/%s/#" % a.meter, 1)
        c.loop_forever()
        return 0
    he.start(tick_s=1.0 if a.cmd == "serve" else 0)
    try:
        if a.cmd == "serve":
            while True:
                time.sleep(3600)
        if a.cmd == "topup":
            oid = he.topup(a.meter, a.amount_minor)
            print(json.dumps(he.wait_order(oid, a.wait)))
            return 0
        if a.cmd == "tariff":
            with open(a.file) as f:
                ctr = he.send(a.meter, "tariff", version=a.version, activate_utc_s=a.at, tariff=json.load(f))
        elif a.cmd == "relay":
            ctr = he.send(a.meter, "relay", action=a.action)
        elif a.cmd == "mode":
            ctr = he.send(a.meter, "mode", mode=a.mode)
        elif a.cmd == "config":
            settings = {}
            for kv in a.settings:
                k, _, v = kv.partition("=")
                settings[k] = json.loads(v)
            ctr = he.send(a.meter, "config", settings=settings)
        elif a.cmd == "time":
            ctr = he.send(a.meter, "time", utc_s=int(time.time()))
        else:
            fields = {"what": a.what}
            if a.what in ("billing", "billing_monthly", "events"):
                fields["since"] = a.since
            ctr = he.send(a.meter, "query", **fields)
        print(json.dumps(he.wait_ack(a.meter, ctr, a.wait)))
    finally:
        he.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
