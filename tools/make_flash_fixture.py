"""Write the flash-compatibility fixture: a sim meter's flash image after a
representative life, cut by SIGKILL, and the figures it must boot back with.

    .venv/bin/python tools/make_flash_fixture.py [OUT_DIR]    (default tests/fixtures)

writes OUT_DIR/flash-<commit>.img.gz (the 1 MiB LittleFS image, gzipped: it
is mostly erased) and OUT_DIR/flash-<commit>.json (what the meter said just
before the cut, and what it then delivered). tests/test_flash_compat.py boots
the firmware of the day on every such image and checks it lost nothing, so a
refactor that changes the flash format by accident fails there. Run this with
the firmware whose format you want to pin (the commit named in the file
names is the worktree's HEAD); keep the old fixtures: each is a meter in the
field that must keep working.

The life, on a stepped clock (docs/simulator.md), with no broker, so every
event it raises is still waiting in the outbox at the cut:
- a time sync and a config command (warning levels, emergency credit);
- three top-ups (orders 1-3): the order record and the replay window are
  non-empty;
- a tariff that takes effect at once (v2) and one pending (v3, in 30 days);
- a mode change to postpaid and back;
- consumption from 23:55 on 31 January across midnight: frozen daily and
  monthly records; billing queries answered;
- the balance runs down through both warnings to a credit disconnect; a long
  press takes emergency credit;
- then charging on, one Wh a meter second, until a hot checkpoint lands:
  the cut comes after the last full snapshot, with the charging since then
  in the hot record only.

Then a copy of the image is booted with a broker, to record the events the
outbox delivers (seq, kind and body): the test expects the same from the new
firmware.
"""
import calendar
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import signed  # noqa: E402
from broker import Broker  # noqa: E402
from mqttc import Watcher  # noqa: E402
from simmeter import SimMeter, free_port  # noqa: E402

METER = "fx-1"
# 2026-01-31 23:55:00 UTC: five minutes before a day and a month end
EPOCH = calendar.timegm((2026, 1, 31, 23, 55, 0))
CONFIG = {"initial_balance_minor": 200, "key_hex": signed.KEY_HEX, "reconnect": "auto"}
ARGS = ["--meter-every-ms", "5"]
# Counters of the life's commands: 1002, 1004, ... in the order sent. Fixed,
# so the replay window in the image is known; with gaps, so the test can
# tell the floor from the window (an unused counter above the floor is
# fresh, one at or below it is not).
CTR0 = 1000
CTR_STEP = 2
REPLAY_WINDOW = 8    # docs/protocol.md, "Counters"


class Life:
    def __init__(self, m):
        self.m = m
        self.ctr = CTR0
        self.sent = []   # [ctr, kind, fields, ack] of every command

    def cmd(self, kind, **fields):
        self.ctr += CTR_STEP
        raw = signed.command(METER, kind, ctr=self.ctr, **fields).decode()
        ack = self.m.control({"cmd": "command", "raw": raw})["reply"]
        self.sent.append([self.ctr, kind, fields, ack])
        return ack

    def step(self, **req):
        req.update(cmd="step")
        r = self.m.control(req)
        if not r["ticked"]:
            raise RuntimeError("the meter task stopped ticking")
        return r


def flash_writes(m):
    return m.control({"cmd": "flash_stats"})["writes"]


def live(workdir):
    m = SimMeter(METER, workdir, broker_port=free_port(), config=CONFIG, step=True, epoch=EPOCH,
                 extra_args=ARGS).start()
    life = Life(m)
    ok = lambda ack, want="ok": ack["result"] == want or sys.exit("unexpected ack %r" % ack)  # noqa: E731
    ok(life.cmd("time", utc_s=EPOCH))
    ok(life.cmd("config", settings={"warn1_minor": 300, "warn2_minor": 150,
                                    "emergency_credit_minor": 300}))
    for order, amount in ((1, 100), (2, 50), (3, 30)):
        ok(life.cmd("topup", order=order, amount_minor=amount), "credited")
    ok(life.cmd("tariff", version=2, activate_utc_s=0, tariff={"price_milli_per_kwh": 300000}))
    ok(life.cmd("tariff", version=3, activate_utc_s=EPOCH + 30 * 86400,
                tariff={"price_milli_per_kwh": 250000}))
    # a mode change and back (a remote connect would hold the relay closed
    # through the credit disconnect below: it stands until a disconnect)
    ok(life.cmd("mode", mode="postpaid"))
    ok(life.cmd("mode", mode="prepaid"))
    # 2 Wh a meter second (0.6 minor at 300/kWh) across midnight
    for _ in range(360):
        life.step(w=7200, ms=1000)
    bill = life.cmd("query", what="billing", since=0)
    months = life.cmd("query", what="billing_monthly", since=0)
    ok(bill), ok(months)
    if not bill["data"] or not months["data"]:
        sys.exit("no frozen records after midnight: %r %r" % (bill, months))
    # on to a credit disconnect
    for _ in range(2000):
        r = life.step(w=7200, ms=1000)
        if not r["relay_closed"]:
            break
    else:
        sys.exit("the credit never ran out: %r" % m.state())
    life.step(w=0, ms=1000)
    m.control({"cmd": "press", "ms": 1800})            # long press (real ms): emergency credit
    m.wait_for(lambda s: s["relay_closed"], timeout=10)
    st = m.control({"cmd": "meter_state"})["state"]
    if not st["owed_minor"]:
        sys.exit("no emergency credit owed: %r" % st)
    # Charging after the last snapshot: exact pulses (no sub-pulse remainder),
    # until a hot checkpoint is written; the cut follows it at once, so the
    # flash holds every figure the meter shows.
    for i in range(60):
        before = flash_writes(m)
        life.step(w=0, n=1, ms=1000)
        if i >= 3 and flash_writes(m) != before:
            break
    else:
        sys.exit("no hot checkpoint within 60 meter seconds")
    state = m.control({"cmd": "meter_state"})["state"]
    board = m.state()
    simclock_ms = board["mono_ms"]   # the stepped meter time at the cut
    m.kill()   # the power cut
    return m, life, state, board, simclock_ms


def delivered(img_gz, state, simclock_ms, workdir):
    """Boot a copy of the cut image with a broker; return the events the
    outbox delivers, in seq order."""
    with Broker(os.path.join(workdir, "broker")) as b:
        w = Watcher(b.port, topics=("meters/%s/evt" % METER,))
        m = SimMeter(METER, os.path.join(workdir, "replay"), broker_port=b.port, config=CONFIG,
                     step=True, extra_args=ARGS)
        unpack(img_gz, m.dir, simclock_ms)
        m.start()
        try:
            want = set(range(1, state["seq"] + 1)) - set(state["evt_dropped"])
            seen = {}
            w.wait(lambda t, body: _collect(seen, body) and want <= set(seen), timeout=60)
            return [seen[s] for s in sorted(seen)]
        finally:
            m.kill()
            w.close()


def _collect(seen, body):
    if isinstance(body, dict) and "seq" in body:
        seen[body["seq"]] = body
    return True


def unpack(img_gz, meter_dir, simclock_ms):
    """Put a fixture image in a sim meter's folder, with the meter time of
    the cut on its RTC (a host file, outside the flash: the outside world)."""
    os.makedirs(meter_dir, exist_ok=True)
    with gzip.open(img_gz, "rb") as src, open(os.path.join(meter_dir, "flash.img"), "wb") as dst:
        shutil.copyfileobj(src, dst)
    with open(os.path.join(meter_dir, "simclock"), "w") as f:
        f.write(str(simclock_ms))


def summary(fx):
    """The figures a reader looks for first, derived from the rest."""
    pending = [e for e in fx["events"] if e["kind"] == "tariff" and e["event"] == "tariff_pending"]
    return {"outbox_pending_seqs": [e["seq"] for e in fx["events"]],
            "tariff_pending": {"version": pending[-1]["a"], "from_local_s": pending[-1]["b"]} if pending else None}


def main(argv):
    out = argv[0] if argv else os.path.join(ROOT, "tests", "fixtures")
    os.makedirs(out, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    name = os.path.join(out, "flash-" + commit)
    work = tempfile.mkdtemp(prefix="flashfx-")
    try:
        m, life, state, board, simclock_ms = live(work)
        with open(os.path.join(m.dir, "flash.img"), "rb") as src:
            # mtime=0: the same image gives the same bytes
            with gzip.GzipFile(name + ".img.gz", "wb", 9, mtime=0) as dst:
                shutil.copyfileobj(src, dst)
        events = delivered(name + ".img.gz", state, simclock_ms, work)
        orders = [{"order": f["order"], "amount_minor": f["amount_minor"], "ctr": c,
                   "balance_minor": a["balance_minor"], "seq": a["seq"]}
                  for c, k, f, a in life.sent if k == "topup"]
        ctrs = [c for c, _, _, _ in life.sent]
        fx = {"commit": commit, "meter_id": METER, "config": CONFIG, "args": ARGS,
              "simclock_ms": simclock_ms, "state": state,
              "relay_closed": board["relay_closed"], "lcd": board["lcd"],
              "orders": orders, "order_floor": 0, "ctrs": ctrs,
              # every command was accepted: the last 8 are kept, the 9th
              # newest is the floor (firmware/link/replay.py)
              "replay": {"floor": ctrs[-REPLAY_WINDOW - 1], "window": ctrs[-REPLAY_WINDOW:]},
              "billing": next(a["data"] for c, k, f, a in life.sent
                              if k == "query" and f["what"] == "billing"),
              "billing_monthly": next(a["data"] for c, k, f, a in life.sent
                                      if k == "query" and f["what"] == "billing_monthly"),
              "events": events}
        fx.update(summary(fx))
        with open(name + ".json", "w") as f:
            json.dump(fx, f, indent=1, sort_keys=True)
            f.write("\n")
        print("wrote %s.img.gz (%d bytes) and %s.json: seq %d, %d events pending"
              % (name, os.path.getsize(name + ".img.gz"), name, state["seq"], len(events)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
