"""Storage benchmark and power-cut campaign (issue 5).

`run()` drives the store on the sim's LittleFS device in the unix-port
MicroPython and reports:
- powercut_runs / powercut_violations: a campaign of power cuts (torn block
  writes at random write operations, warned cuts through the power-fail
  input, sudden cuts between writes) under consumption, top-ups with
  re-sends, tariff changes and key presses; every restart is audited;
- energy_at_risk_wh: the most consumption any single cut lost;
- flash_life_years_10kw / _household: years until the most worn block of a
  1 MB data partition reaches 100,000 erase cycles, from the device's real
  erase counts (see wear_mpy below and docs/storage.md for the model).
The MicroPython side of the campaign is CAMPAIGN_MPY; tests/test_powercut.py
runs the same code, so `make test`, `make soak` and `make bench` agree.
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

TARGETS = {
    "powercut_violations": ("==", 0),
    "energy_at_risk_wh": ("<=", 10),
    "flash_life_years_10kw": (">=", 20),
}

BENCH_CUTS = 1000
CAMPAIGN_HEAP = "32m"  # the harness's bookkeeping, not the firmware's budget

CAMPAIGN_MPY = r'''
# Power-cut campaign, run in MicroPython: a ledger-like meter drives the store
# on the sim's LittleFS while power is cut at random block writes (torn),
# with power-fail warning, or suddenly between writes; after every restart
# the reloaded state is checked against what the harness knows is true.
import json, os, random, sys, vfs
from firmware.boards import flashdev
from firmware.store.store import Store
from firmware.store.policy import CheckpointPolicy

P = json.loads(sys.stdin.readline())
random.seed(P["seed"])
IMG = P["img"]
MAX_WH = 10
WS_PER_WH = 3600
try:
    os.remove(IMG)
except OSError:
    pass

HOT_KEYS = ("wh", "rem", "chg", "bal")


def factory():
    return {"wh": 0, "rem": 0, "chg": 0, "bal": 5000000000, "cred": 0,
            "price": 150000, "ids": [], "evseq": 1, "out": []}


ID_WINDOW = 64   # applied top-up ids the meter remembers
RESEND_WINDOW = 30  # the server re-sends only recent orders
TRACK_WINDOW = 300  # top-up ids the harness remembers


class Meter:
    # what firmware/app.py's meter task does with the store, in miniature:
    # integer Wh + Ws remainder, money in micro-minor, checkpoint by policy,
    # top-ups and tariff changes committed before they are acknowledged.
    def __init__(self, st, s):
        self.st = st
        self.s = s
        self.pol = CheckpointPolicy(max_wh=MAX_WH, max_s=60)
        self.wh_since = 0
        self.ms_since = 0
        self.dirty = False
        self.on_durable = None

    def tick(self, load_w):
        s = self.s
        ws = s["rem"] + load_w
        wh = ws // WS_PER_WH
        s["rem"] = ws % WS_PER_WH
        s["wh"] += wh
        s["chg"] += wh * s["price"]
        s["bal"] -= wh * s["price"]
        self.wh_since += wh
        self.ms_since += 1000
        self.dirty = self.dirty or load_w > 0
        return wh

    def maybe_checkpoint(self):
        if self.pol.due(self.wh_since, self.ms_since, self.dirty):
            self.checkpoint()
            return True
        return False

    def checkpoint(self):
        s = self.s
        self.st.checkpoint({k: s[k] for k in HOT_KEYS})
        self.saved()

    def saved(self):
        if self.on_durable:
            self.on_durable(self.s)
        self.wh_since = 0
        self.ms_since = 0
        self.dirty = False

    def event(self, kind):
        s = self.s
        s["out"].append([s["evseq"], kind])
        s["evseq"] += 1

    def commit(self):
        stats["commits"] += 1
        self.st.commit(self.s)
        self.saved()

    def tidy(self):
        # the meter tick's quiet moment (core/durable.py): the snapshot's
        # second copy, brought level with the last commit
        if self.st.behind:
            stats["mirrors"] += 1
            if not self.st.mirror():
                self.commit()

    def topup(self, tid, amount):
        s = self.s
        if tid in s["ids"]:
            return "dup"
        s["bal"] += amount
        s["cred"] += amount
        s["ids"].append(tid)
        if len(s["ids"]) > ID_WINDOW:
            s["ids"].pop(0)
        self.event("topup:%s:%d" % (tid, amount))
        self.commit()
        return "ok"

    def tariff(self, price):
        self.s["price"] = price
        self.event("tariff:%d" % price)
        self.commit()

    def press(self):
        self.event("key")
        self.commit()

    def deliver(self):
        out = self.s["out"]
        sent = out[:]
        del out[:]
        return sent


class Truth:
    # the harness's side: what was really consumed, acknowledged, received
    def __init__(self):
        self.durable = None     # meter state at the last write that returned
        self.acked = {}         # acknowledged, not yet seen delivered
        self.sent = {}          # every top-up id ever sent -> amount
        self.order = []         # ids in the order sent, for re-sends
        self.seen = {}          # recent event seq -> kind, as received
        self.last_seq = 0
        self.topups = {}        # top-up id -> times credited per the event log
        self.cred_seen = 0      # money credited per delivered events
        self.doubled = []       # ids the server saw credited a second time
        self.last_loaded = None


viol = []
stats = {"cuts": 0, "torn": 0, "warned": 0, "sudden": 0, "max_loss_wh": 0,
         "warned_loss_ws": 0, "status": {}, "checkpoints": 0, "commits": 0,
         "topups": 0, "resends": 0, "tariffs": 0, "presses": 0, "commits": 0,
         "mirrors": 0, "flash_writes": 0}


def bad(msg):
    if len(viol) < 20:
        viol.append(msg)
    else:
        viol.append(None)


def snapshot(s):
    return json.loads(json.dumps(s))


def check(T, st_state, status, at_cut, warned):
    # at_cut: the meter's in-RAM state when power went
    if status.startswith("fault"):
        bad("fault after a cut: " + status)
        return False
    if status == "recovered":
        # nothing here damages the flash: a cut alone (during a commit, a
        # mirror copy, between two commits) must load as ok
        bad("a cut reported as damage (recovered)")
    if status == "factory":
        if T.durable is not None:
            bad("factory state after data was committed")
        return T.durable is None
    r = st_state
    d = T.durable
    if d is None:
        return True
    pos = lambda x: x["wh"] * WS_PER_WH + x["rem"]
    if pos(r) < pos(d):
        bad("durable energy lost: %d < %d Ws" % (pos(r), pos(d)))
    if pos(r) > pos(at_cut):
        bad("more energy than consumed: %d > %d" % (pos(r), pos(at_cut)))
    loss = pos(at_cut) - pos(r)
    if loss > MAX_WH * WS_PER_WH:
        bad("energy at risk exceeded: %d Ws" % loss)
    if warned and loss:
        bad("warned cut lost %d Ws" % loss)
    stats["max_loss_wh"] = max(stats["max_loss_wh"], loss)
    if warned:
        stats["warned_loss_ws"] = max(stats["warned_loss_ws"], loss)
    # conservation: balance = start + credited - charged, charged = price x Wh
    if r["bal"] != factory()["bal"] + r["cred"] - r["chg"]:
        bad("balance not conserved: %r" % ((r["bal"], r["cred"], r["chg"]),))
    # energy and money move together: the state is one the meter really had
    if (r["wh"], r["chg"]) != (d["wh"], d["chg"]) and (r["wh"], r["chg"]) != (at_cut["wh"], at_cut["chg"]):
        if not (d["wh"] <= r["wh"] <= at_cut["wh"] and d["chg"] <= r["chg"] <= at_cut["chg"]):
            bad("register/charge mix: %r" % ((r["wh"], r["chg"]),))
    if r["chg"] - d["chg"] != (r["wh"] - d["wh"]) * d["price"] and r["price"] == d["price"]:
        bad("charge does not match energy at the tariff")
    # top-ups, audited through the event log (delivered + outbox): each id
    # credited at most once, the credited register equals the sum of the
    # logged top-ups, and every acknowledged top-up is in the log.
    if len(r["ids"]) != len(set(r["ids"])):
        bad("a top-up id applied twice")
    pending = {}  # top-ups logged in the outbox, not yet delivered
    cred = T.cred_seen
    for seq, kind in r["out"]:
        if seq > T.last_seq and kind.startswith("topup:"):
            _, tid, amount = kind.split(":")
            pending[tid] = pending.get(tid, 0) + 1
            cred += int(amount)
            if T.sent.get(tid) != int(amount):
                bad("unknown or altered top-up " + tid)
    for tid, n in pending.items():
        if n + T.topups.get(tid, 0) > 1:
            bad("top-up credited twice: " + tid)
    for tid in T.doubled:
        bad("top-up credited twice (delivered): " + tid)
    del T.doubled[:]
    if cred != r["cred"]:
        bad("credited %d but the log sums to %d" % (r["cred"], cred))
    # acknowledged top-ups the server has not yet seen in the log must be in
    # the outbox (delivered ones are in T.topups for good)
    for tid in T.acked:
        if tid not in pending and tid not in T.topups:
            bad("acknowledged top-up lost: " + tid)
    # monotonic registers across restarts
    L = T.last_loaded
    if L and (r["wh"] < L["wh"] or r["chg"] < L["chg"] or r["cred"] < L["cred"]):
        bad("register went backwards across restarts")
    # event seqs: the outbox continues with no gap after what was delivered
    seqs = [e[0] for e in r["out"]]
    for i in range(1, len(seqs)):
        if seqs[i] != seqs[i - 1] + 1:
            bad("gap in outbox seqs %r" % seqs)
    if seqs and seqs[0] > T.last_seq + 1:
        bad("gap between delivered %d and outbox %d" % (T.last_seq, seqs[0]))
    nxt = seqs[-1] + 1 if seqs else r["evseq"]
    if r["evseq"] != nxt or r["evseq"] <= T.last_seq:
        bad("event counter %d inconsistent (delivered %d)" % (r["evseq"], T.last_seq))
    for e in r["out"]:
        if e[0] in T.seen and T.seen[e[0]] != e[1]:
            bad("event seq %d reused" % e[0])
    T.last_loaded = snapshot(r)
    return True


def mount():
    return flashdev.mount(IMG, "/flash")


def boot(T):
    dev = mount()
    st = Store("/flash")
    s, status = st.load()
    return dev, st, s, status


def receive(T, events):
    for seq, kind in events:
        if seq in T.seen:
            if T.seen[seq] != kind:
                bad("server got seq %d twice with different events" % seq)
            continue
        if seq != T.last_seq + 1:
            bad("server saw gap: %d after %d" % (seq, T.last_seq))
        T.seen[seq] = kind
        T.seen.pop(seq - 500, None)
        T.last_seq = max(T.last_seq, seq)
        if kind.startswith("topup:"):
            _, tid, amount = kind.split(":")
            if tid in T.topups:
                T.doubled.append(tid)
            T.topups[tid] = 1
            T.acked.pop(tid, None)
            T.cred_seen += int(amount)


def run_until_cut(T, m, mode):
    # returns the in-RAM state at the cut (the truth of consumption)
    s = m.s
    steps = random.randint(1, 120)
    for n in range(steps if mode != "torn" else 100000):
        r = random.random()
        ticked = False
        if r < 0.02:
            if T.order and random.random() < 0.4:
                tid = random.choice(T.order[-RESEND_WINDOW:])
                stats["resends"] += 1
            else:
                tid = "t%d" % (stats["topups"] + 1)
                T.sent[tid] = random.randint(1, 50) * 1000000
                T.order.append(tid)
                if len(T.order) > TRACK_WINDOW:
                    # ids this old are never re-sent: forget them, so the
                    # harness stays small over 10,000 cuts
                    old = T.order.pop(0)
                    T.sent.pop(old, None)
                    T.topups.pop(old, None)
                    if old in T.acked:
                        bad("acknowledged top-up never delivered: " + old)
                stats["topups"] += 1
            if m.topup(tid, T.sent[tid]) in ("ok", "dup"):
                if tid not in T.topups:
                    T.acked[tid] = T.sent[tid]
        elif r < 0.03:
            m.tariff(random.choice((90000, 150000, 210000)))
            stats["tariffs"] += 1
        elif r < 0.04:
            m.press()
            stats["presses"] += 1
        elif r < 0.06:
            # the link hands the outbox to the server; removal is durable
            # with the next commit, so events may be re-sent, never skipped
            receive(T, m.deliver())
        else:
            m.tick(random.choice((0, 0, 150, 400, 2000, 10000)))
            ticked = True
        if m.maybe_checkpoint():
            stats["checkpoints"] += 1
        if ticked:
            # only a tick tidies: commits in a row (a top-up, a press) find
            # the second copy still behind
            m.tidy()
    if mode == "warned":
        # power-fail input: the remainder is written at once
        m.checkpoint()
    return snapshot(s)


def campaign(cuts):
    T = Truth()
    dev, st, s, status = boot(T)
    every = P.get("progress_every", 0)
    for c in range(cuts):
        if every and c % every == 0 and c:
            sys.stderr.write("CUTS %d\n" % c)   # read by campaign() on the host
        if status == "factory":
            s = factory()
            m = Meter(st, s)
            m.on_durable = lambda st8: setattr(T, "durable", snapshot(st8))
            try:
                m.commit()
            except OSError:
                if not dev.dead:
                    raise
        m = Meter(st, s)
        m.on_durable = lambda st8: setattr(T, "durable", snapshot(st8))
        mode = random.choice(("torn", "torn", "warned", "sudden"))
        at_cut = None
        if mode == "torn":
            dev.arm_cut(random.randint(1, 60), random.choice((0, 1, 16, 64, 100, 1000, 5000)))
        try:
            at_cut = run_until_cut(T, m, mode)
        except OSError:
            if not dev.dead:
                raise
            at_cut = snapshot(m.s)
        # the commit that was interrupted may or may not be durable; what is
        # durable for sure is T.durable (set only after a write returned)
        stats[mode] += 1
        stats["cuts"] += 1
        stats["flash_writes"] += dev.writes
        try:
            vfs.umount("/flash")
        except OSError:
            pass
        dev.close()
        dev, st, s, status = boot(T)
        stats["status"][status] = stats["status"].get(status, 0) + 1
        if T.durable is not None and at_cut is not None:
            # an interrupted commit may have landed: its top-up counts as
            # applied-but-unacked, which check() allows (not in T.acked)
            check(T, s, status, at_cut, mode == "warned")
        if status.startswith("fault"):
            break
        if status != "factory":
            T.durable = snapshot(s)
    vfs.umount("/flash")
    stats["violations"] = len(viol)
    stats["msgs"] = [v for v in viol if v]
    stats["max_loss_wh"] = stats["max_loss_wh"] / WS_PER_WH
    print(json.dumps(stats))


campaign(P["cuts"])
'''


def campaign(cuts, seed=1, workdir=None, progress=False):
    """Run `cuts` power cuts in one MicroPython process; return its stats.
    `progress`: True (cuts done / total, rate and ETA every 10 s on stderr)
    or a tools/progress.Progress."""
    from mpy import run_mpy_json
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        req = {"img": os.path.join(d, "flash.img"), "cuts": cuts, "seed": seed}
        if not progress:
            return run_mpy_json(CAMPAIGN_MPY, req, heap=CAMPAIGN_HEAP, timeout=3600)
        return _campaign_with_progress(req, cuts, progress)


def _campaign_with_progress(req, cuts, p):
    import json
    import subprocess
    import threading
    from mpy import MICROPYTHON, ROOT, mpy_path
    from progress import Progress
    req = dict(req, progress_every=max(1, cuts // 200))
    if p is True:
        p = Progress("power cuts on the store model", cuts)
    env = dict(os.environ, MICROPYPATH=mpy_path())
    with subprocess.Popen([MICROPYTHON, "-X", "heapsize=" + CAMPAIGN_HEAP, "-c", CAMPAIGN_MPY],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, cwd=ROOT) as proc:
        try:
            proc.stdin.write(json.dumps(req) + "\n")
            proc.stdin.close()
            got = []   # stdout read beside stderr, so neither pipe fills up
            reader = threading.Thread(target=lambda: got.append(proc.stdout.read()), daemon=True)
            reader.start()
            err = []
            for line in proc.stderr:          # CUTS n lines while it runs
                if line.startswith("CUTS "):
                    p.update(int(line.split()[1]))
                else:
                    err.append(line)
            rc = proc.wait()
            reader.join()
            out = got[0] if got else ""
        except BaseException:                 # Ctrl-C or kill: the process goes too
            proc.kill()
            raise
    if rc != 0:
        raise AssertionError("micropython failed (rc=%d)\n%s\n%s" % (rc, out[-4000:], "".join(err)[-4000:]))
    p.update(cuts)
    p.done()
    return json.loads([l for l in out.splitlines() if l.strip()][-1])


# Flash wear: a meter task at a constant load for `days` of meter time, one
# tick per second, checkpointing by CheckpointPolicy, plus `commits_per_day`
# full snapshots (events, top-ups, daily billing record). Counts come from the
# block device; nothing here is estimated except the extrapolation in years.
WEAR_MPY = r'''
import json, os, sys, vfs
from firmware.boards import flashdev
from firmware.store.store import Store
from firmware.store.policy import CheckpointPolicy
P = json.loads(sys.stdin.readline())
try:
    os.remove(P["img"])
except OSError:
    pass
dev = flashdev.mount(P["img"], "/flash")
st = Store("/flash")
st.load()
s = {"wh": 0, "rem": 0, "chg": 0, "bal": 5000000000, "price": 150000,
     "ids": ["t%d" % i for i in range(64)], "out": [[i, "ev"] for i in range(20)],
     "cfg": {"meter": "SIM0001", "cal": [1000, 1000, 1000], "bill": [[m, 123456, 7890] for m in range(12)]}}
st.commit(s)
e0 = dev.total_erases()
for i in range(dev.block_count):  # count the steady state only
    dev.erases[i] = 0
pol = CheckpointPolicy(max_wh=10, max_s=60)
load_w = P["load_w"]
secs = P["days"] * 86400
commit_every = 86400 // P["commits_per_day"]
wh_since = ms_since = 0
cps = commits = 0
for t in range(secs):
    ws = s["rem"] + load_w
    wh = ws // 3600
    s["rem"] = ws % 3600
    s["wh"] += wh
    s["chg"] += wh * s["price"]
    s["bal"] -= wh * s["price"]
    wh_since += wh
    ms_since += 1000
    if t % commit_every == commit_every - 1:
        st.commit(s)
        st.mirror()   # the next tick's, as the meter's tidy() does
        commits += 1
        wh_since = ms_since = 0
    elif pol.due(wh_since, ms_since, load_w > 0):
        st.checkpoint({"wh": s["wh"], "rem": s["rem"], "chg": s["chg"], "bal": s["bal"]})
        cps += 1
        wh_since = ms_since = 0
f = os.statvfs("/flash")
print(json.dumps({"checkpoints": cps, "commits": commits, "erases": dev.total_erases(),
                  "max_block": dev.max_erases(), "free_blocks": f[3], "blocks": f[2],
                  "blocks_touched": sum(1 for e in dev.erases if e)}))
'''

ERASE_LIMIT = 100000
SECONDS_PER_YEAR = 365.25 * 86400


def wear(load_w, days, commits_per_day=24, workdir=None):
    from mpy import run_mpy_json
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        r = run_mpy_json(WEAR_MPY, {"img": os.path.join(d, "flash.img"), "load_w": load_w, "days": days,
                                    "commits_per_day": commits_per_day}, heap="256k", timeout=3600)
    # LittleFS levels wear dynamically: a metadata pair moves to fresh blocks
    # every 100 erases (block_cycles) and data is copy-on-write from a
    # rotating allocator, so every free block takes its turn. Steady-state
    # erases per block per day = all erases per day / free blocks. The run's
    # own hottest block is reported beside it to show no block stays hot.
    per_day = r["erases"] / days
    per_block_day = per_day / max(1, r["free_blocks"])
    r["years"] = ERASE_LIMIT / per_block_day / 365.25 if per_block_day else float("inf")
    r["erases_per_day"] = per_day
    return r


METER_CUTS = 300   # the same audit on the running firmware (tools/powercut.py)


def run():
    import powercut
    real = powercut.campaign(METER_CUTS, seed=2026)
    c = campaign(BENCH_CUTS, seed=2024)
    hi = wear(10000, 1)
    home = wear(300000 // (30 * 24), 3)  # 300 kWh/month as a steady 416 W
    return {
        "powercut_runs": c["cuts"] + real["cuts"],
        "powercut_violations": c["violations"] + real["violations"],
        "powercut_meter_runs": real["cuts"],
        "powercut_meter_violations": real["violations"],
        "powercut_meter_max_loss_wh": real["max_loss_wh"],
        "energy_at_risk_wh": round(max(c["max_loss_wh"], real["max_loss_wh"]), 2),
        "flash_life_years_10kw": round(hi["years"], 1),
        "flash_life_years_household": round(home["years"], 1),
        "flash_erases_per_day_10kw": hi["erases_per_day"],
        "flash_hottest_block_erases_day_10kw": hi["max_block"],
        "store_checkpoints_per_day_10kw": hi["checkpoints"],
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
