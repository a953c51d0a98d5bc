"""Power-cut campaign against the real sim meter, and its CPython auditor (issue 5).

One sim meter (the compiled firmware, tools/simmeter.py) runs on a stepped
clock with a short meter period (`--meter-every-ms`), publishing its events to
a real MQTT broker. The driver keeps it busy with what a meter lives through
(consumption at 0-10 kW, signed top-ups with re-sends, signed tariff changes,
offline tokens typed on its keypad or relayed by the token command, with
replays, short and long button presses) and cuts its power, one of four ways:

- flash: `arm_cut` at a random block write of the LittleFS device, with a
  random number of bytes of that write landing (torn); the sim SIGKILLs
  itself inside the write;
- kill: SIGKILL from the host at a random moment;
- warned: the power-fail input, then SIGKILL (nothing may be lost);
- boot: SIGKILL a few ms after power-up, while the meter is booting.

After every restart the auditor checks the meter against what the host knows
is true (docs/storage.md, "Power-cut campaign on the real meter"):

- conservation: balance == initial + top-ups credited before the cut
  + emergency credit owed - floor(sum(price_v x Wh_v) / 1e6), the Wh split by
  tariff version exactly as the host switched tariffs;
- energy: 1.8.0 never below what was durable (acked commits, the last boot),
  never above what the board delivered, never decreasing across restarts,
  and at most 10 Wh below what the meter had registered at the cut (zero
  for a warned cut);
- top-ups: an order is credited at most once (a re-send, same bytes or a
  fresh command with the same order id, is a duplicate with the original
  balance and seq; the event log holds one top-up event per order), and no
  acknowledged order is missing (in the balance and in the event log);
- tokens: a token is credited at most once (a replay, and the re-entry of
  one in flight at the cut that had landed, answer `used`; the event log
  holds one ledger top-up per token), and a token whose result was shown
  (the keypad's, on the core's last_token) or acknowledged (the command's)
  is never lost;
- events: every published event seq is still known to the meter after the
  restart (never reused with other content), and seqs 1..seq arrive with no
  gap (a signed query what=events re-sends held ones, as a head-end would).

Used by tests/test_powercut_meter.py (`make test`, `make soak`) and by
tools/bench_store.py (`make bench`). Run by hand:

    .venv/bin/python tools/powercut.py --cuts 200 --seed 1
"""
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from headend import codec  # noqa: E402
import openpaygo  # noqa: E402  (the host issues the tokens, as a utility would)
from simmeter import HEAP as SIM_HEAP, SimMeter  # noqa: E402

KEY_HEX = "22" * 32
KEY = bytes.fromhex(KEY_HEX)
FAR_FUTURE = 4102444800
MAX_LOSS_WH = 10          # energy at risk without warning (issue 5)
TICK_MS = 5               # real ms per meter second on the stepped clock
INITIAL_MINOR = 500
FIRST_PRICE = 150000
PRICES = (1000000, 5000000, 20000000)  # milli-minor per kWh: 1 to 20 minor per Wh
LOADS_W = (0, 0, 150, 416, 2000, 6000, 10000)
TORN = (0, 1, 16, 64, 100, 128, 1000, 4096)
MODES = ("flash", "flash", "kill", "kill", "warned", "boot")
RESEND_RECENT = 30        # re-sends pick among this many recent orders
TOKEN_KEY_HEX = "33" * 16
TOKEN_DIVIDER = 100       # a token's value is in minor units (2 decimals)
METER_CONFIG = {"initial_balance_minor": INITIAL_MINOR, "price_milli_per_kwh": FIRST_PRICE,
                "key_hex": KEY_HEX, "warn_minor": [1000, 300], "emergency_minor": 300,
                "emergency_below_minor": 100, "state_every_s": 3600,
                "token_key_hex": TOKEN_KEY_HEX, "token_value_divider": TOKEN_DIVIDER}
# The meter runs in the board's heap (simmeter.HEAP, "108wk"). Before the
# firmware streamed its commits and kept its dispatcher loaded, this
# campaign's command rate ran commits out of memory there (docs/storage.md);
# POWERCUT_HEAP still lets you try another size.
HEAP = os.environ.get("POWERCUT_HEAP") or None
_DEAD = (OSError, ValueError)  # what a control call raises once the power is gone


class EventLog:
    """Events from meters/<id>/evt, as the head-end receives them (QoS 1)."""

    def __init__(self, port, meter_id):
        import paho.mqtt.client as mqtt
        self.lock = threading.Condition()
        self.payload = {}      # seq -> payload bytes, first copy received
        self.topups = {}       # order -> set of seqs of its top-up events
        self.bad = []          # problems seen on arrival
        self.received = 0
        self.topup_amount = {}  # seq -> (order, amount_minor) of top-up events
        self.token_topups = {}  # ledger ref "tok<count>" -> set of seqs of its top-up entries
        self._contig = 0
        self.topic = "meters/%s/evt" % meter_id
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="powercut-" + meter_id,
                             clean_session=False)
        self.c.on_message = self._on_message
        self.disconnects = 0   # the subscriber's own drops: a miss during one is the broker's, not the meter's
        self.c.on_disconnect = self._on_disconnect
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(self.topic, qos=1)
        self.c.loop_start()

    def _on_disconnect(self, *args):
        self.disconnects += 1

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.received += 1
            try:
                ev = codec.verify(KEY, msg.payload)
            except ValueError as e:
                self.bad.append("event with a bad signature: %r" % (e,))
                return
            seq = ev.get("seq")
            old = self.payload.get(seq)
            if old is None:
                self.payload[seq] = msg.payload
                if ev.get("kind") == "topup":
                    self.topups.setdefault(ev["order"], set()).add(seq)
                    self.topup_amount[seq] = (ev["order"], ev["amount_minor"])
                elif ev.get("kind") == "ledger" and ev.get("entry") == "topup":
                    self.token_topups.setdefault(ev["ref"], set()).add(seq)
                elif ev.get("kind") == "fault" and ev.get("code") == "store_recovered":
                    # cuts alone never damage a copy: the store must not
                    # take one for damage (a copy a commit behind is "ok")
                    self.bad.append("event seq %d: store_recovered after a cut" % seq)
            elif old != msg.payload:
                self.bad.append("event seq %d reused with other content" % seq)
            self.lock.notify_all()

    def max_seq(self):
        with self.lock:
            return max(self.payload) if self.payload else 0

    def contiguous(self):
        """Highest n such that every seq 1..n has arrived."""
        with self.lock:
            n = self._contig
            while n + 1 in self.payload:
                n += 1
            self._contig = n
            return n

    def wait_upto(self, seq, timeout):
        deadline = time.time() + timeout
        with self.lock:
            while True:
                if self.contiguous() >= seq:
                    return True
                left = deadline - time.time()
                if left <= 0:
                    return False
                self.lock.wait(min(left, 0.05))

    def take_bad(self):
        with self.lock:
            out, self.bad = self.bad, []
            return out

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


class Stop(Exception):
    """The meter is in a state the campaign cannot go on from."""


class Campaign:
    """Drive one sim meter through `cuts` power cuts; audit every restart."""

    def __init__(self, workdir, broker_port, seed=1, meter_id="pc1", tick_ms=TICK_MS, log=None,
                 heap=HEAP, config=None):
        self.rng = random.Random(seed)
        self.meter_id = meter_id
        self.m = SimMeter(meter_id, workdir, broker_port=broker_port, step=True, heap=heap or SIM_HEAP,
                          config=dict(METER_CONFIG, **(config or {})),
                          extra_args=["--meter-every-ms", str(tick_ms), "--keypad"])
        self.events = EventLog(broker_port, meter_id)
        self.log = log
        self.ctr = int(time.time() * 1000)
        self.violations = []
        self.nviol = 0
        self.stats = {"cuts": 0, "flash": 0, "kill": 0, "warned": 0, "boot": 0, "steps": 0,
                      "topups": 0, "resend_same": 0, "resend_fresh": 0, "resolved": 0,
                      "tariffs": 0, "presses": 0, "long_presses": 0, "queries": 0,
                      "tokens": 0, "token_keypad": 0, "token_replays": 0,
                      "max_loss_wh": 0, "warned_loss_wh": 0, "energy_wh": 0, "lost_wh": 0,
                      "relay_open_steps": 0, "events": 0, "max_seq": 0, "booted": 0}
        # what the host knows is true
        self.prices = {1: FIRST_PRICE}
        self.segs = [[1, 0]]       # [tariff version, 1.8.0 Wh where it took over]
        self.version = 1           # newest tariff version sent
        self.applied = {}          # order -> amount, credited before the last restart's check
        self.ack = {}              # order -> (balance_minor, seq) from its credited ack
        self.sent = {}             # order -> (amount, raw bytes of the last command)
        self.maybe = {}            # order -> amount: in flight at the cut
        self.maybe_tariff = None   # (version, price, wh) in flight at the cut
        self.recent = []           # orders credited, newest last, for re-sends
        self.tok_count = 1         # the utility's count for this meter's tokens
        self.tok_sent = {}         # token -> (amount_minor, count)
        self.tok_applied = {}      # token -> amount_minor credited before the last restart's check
        self.tok_maybe = {}        # token -> amount_minor: being entered at the cut
        self.tok_recent = []       # tokens credited, for replays
        self.order = 0
        self.w_boot = 0            # 1.8.0 at this boot
        self.w_durable = 0         # 1.8.0 that was durable for sure
        self.w_prev_boot = 0
        self.pulses = 0            # board pulses confirmed this boot (consumption)
        self.inflight_wh = 0       # most a step in flight at the cut may have delivered
        self.seq_boot = 0
        self.unverified = set()    # credited orders whose top-up event is not yet seen
        self.doubled = set()
        self.warned = False

    # --- bookkeeping
    # POWERCUT_KEEP=<dir>: the flash image as the cut left it, before the
    # boot that reads it, is kept for the cut that shows a violation
    # (<dir>/cut-<n>.img), so a boot's view can be replayed block by block.
    KEEP = os.environ.get("POWERCUT_KEEP")

    def _keep_image(self):
        img = os.path.join(self.m.dir, "flash.img")
        if self.KEEP and os.path.exists(img):   # none before the first boot
            shutil.copyfile(img, os.path.join(self.KEEP, "before-boot.img"))

    def bad(self, msg):
        if self.KEEP and os.path.exists(os.path.join(self.KEEP, "before-boot.img")):
            dst = os.path.join(self.KEEP, "cut-%d.img" % self.stats["cuts"])
            if not os.path.exists(dst):
                shutil.copyfile(os.path.join(self.KEEP, "before-boot.img"), dst)
        self.nviol += 1
        if len(self.violations) < 30:
            self.violations.append("cut %d: %s" % (self.stats["cuts"], msg))

    def command(self, kind, **fields):
        self.ctr += 1
        return codec.command(self.meter_id, KEY, self.ctr, FAR_FUTURE, kind, **fields).decode()

    def send(self, raw):
        r = self.m.control({"cmd": "command", "raw": raw})
        if "reply" not in r:
            raise AssertionError("the meter answered a command with %r" % (r,))
        return r["reply"]

    def w_ram(self):
        return self.w_boot + self.pulses

    def charge_minor(self, wh):
        micro = 0
        for i, (ver, start) in enumerate(self.segs):
            end = self.segs[i + 1][1] if i + 1 < len(self.segs) else None
            if wh <= start:
                break
            micro += self.prices[ver] * ((wh if end is None else min(wh, end)) - start)
        return micro // 1000000

    # --- the campaign
    def run(self, cuts, budget_s=None, progress=None):
        """`progress`: a tools/progress.Progress, told the cuts done after each."""
        t0 = time.time()
        try:
            self._boot_and_audit()
            while self.stats["cuts"] < cuts and not (budget_s and time.time() - t0 > budget_s):
                self._phase()
                self._boot_and_audit()
                if progress:
                    progress.update(self.stats["cuts"])
            self._final_sync()
            if progress:
                progress.done()
        except Stop:
            pass
        finally:
            self.m.stop()
            self.events.close()
        s = dict(self.stats)
        s["violations"] = self.nviol
        s["msgs"] = self.violations
        s["seconds"] = round(time.time() - t0, 1)
        s["orders"] = self.order
        s["applied"] = len(self.applied)
        s["tokens_applied"] = len(self.tok_applied)
        return s

    def _phase(self):
        m = self.m
        rng = self.rng
        mode = rng.choice(MODES)
        self.stats[mode] += 1
        self.stats["cuts"] += 1
        self.warned = False
        proc = m.proc
        timer = None
        if mode == "boot":
            # power goes again while the meter is booting
            m.kill()
            timer = self._kill_after(None, rng.uniform(0.0, 0.08), old=proc)
            try:
                m.start()
            except (RuntimeError, TimeoutError, OSError):
                pass
            timer.join()
            self._dead()
            return
        if mode == "flash":
            m.control({"cmd": "arm_cut", "after_writes": rng.randint(1, 40),
                       "torn_bytes": rng.choice(TORN)})
        elif mode == "kill":
            timer = self._kill_after(proc, rng.uniform(0.0, 0.3))
        n_ops = rng.randint(1, 60) if mode == "warned" else 100000
        alive = True
        for _ in range(n_ops):
            alive = self._op()
            if not alive:
                break
        if alive and mode == "warned":
            try:
                m.control({"cmd": "powerfail"})
                self.w_durable = self.w_ram()
                self.warned = True
            except _DEAD:
                self.bad("powerfail control failed")
        if alive:
            proc.send_signal(signal.SIGKILL)
        if timer:
            timer.join()
        self._dead()

    def _kill_after(self, proc, delay, old=None):
        m = self.m

        def fire():
            p = proc
            if p is None:  # the process being started: wait until it exists
                deadline = time.time() + 5
                while (m.proc is old or m.proc is None) and time.time() < deadline:
                    time.sleep(0.001)
                p = m.proc
            if p is not None and p.poll() is None:
                try:
                    p.send_signal(signal.SIGKILL)
                except OSError:
                    pass
        t = threading.Timer(delay, fire)
        t.daemon = True
        t.start()
        return t

    def _dead(self):
        m = self.m
        m._close_sock()
        if m.proc is not None:
            try:
                rc = m.proc.wait(timeout=10)
            except Exception:
                m.proc.kill()
                rc = m.proc.wait()
                self.bad("meter did not die at the cut")
            if rc != -signal.SIGKILL:
                self.bad("meter exited with %r, not by the cut:\n%s" % (rc, "\n".join(m.log_lines[-15:])))

    # --- one thing the world does to the meter; False once the power is gone
    def _op(self):
        rng = self.rng
        r = rng.random()
        try:
            if r < 0.78:
                self._step(rng.choice(LOADS_W))
            elif r < 0.83:
                self._topup()
            elif r < 0.87:
                self._resend()
            elif r < 0.90:
                self._tariff()
            elif r < 0.93:
                self._token(keypad=rng.random() < 0.3)
            elif r < 0.94:
                self._token_replay()
            elif r < 0.98:
                self.m.control({"cmd": "press", "ms": 100})
                self.stats["presses"] += 1
            else:
                self.m.control({"cmd": "press", "ms": 1700})
                self.stats["long_presses"] += 1
            return True
        except _DEAD:
            return False

    def _step(self, w):
        self.inflight_wh = w * 1000 // 3600000 + 1
        r = self.m.control({"cmd": "step", "w": w, "ms": 1000})
        self.inflight_wh = 0
        if not r.get("ticked"):
            self.bad("the meter task did not tick within 3 s")
        self.stats["energy_wh"] += r["pulses"] - self.pulses
        self.pulses = r["pulses"]
        self.stats["steps"] += 1
        if not r["relay_closed"]:
            self.stats["relay_open_steps"] += 1

    def _topup(self):
        self.order += 1
        o = self.order
        amount = self.rng.randint(20, 200)  # less than the meter uses: credit runs out at times
        raw = self.command("topup", order=o, amount_minor=amount)
        self.sent[o] = (amount, raw)
        self.maybe[o] = amount
        self.stats["topups"] += 1
        ack = self.send(raw)
        del self.maybe[o]
        self._topup_ack(o, ack, fresh=True)

    def _topup_ack(self, o, ack, fresh):
        res = ack.get("result")
        if res == "credited":
            if o in self.applied:
                self.bad("order %d credited twice" % o)
            self.applied[o] = self.sent[o][0]
            self.ack[o] = (ack["balance_minor"], ack["seq"])
            self.unverified.add(o)
            self.recent.append(o)
            del self.recent[:-RESEND_RECENT]
            self.w_durable = self.w_ram()  # acked only after a commit
        elif res == "duplicate":
            if o not in self.applied:
                if fresh:
                    self.bad("a new order %d answered duplicate" % o)
                return "duplicate"
            if o in self.ack and (ack.get("balance_minor"), ack.get("seq")) != self.ack[o]:
                self.bad("duplicate of order %d answered %r, first ack %r"
                         % (o, (ack.get("balance_minor"), ack.get("seq")), self.ack[o]))
        elif ack.get("reason") not in ("order_forgotten", "order_too_old", "replayed"):
            self.bad("top-up %d rejected: %r" % (o, ack.get("reason")))
        return res

    def _resend(self):
        if not self.recent:
            return self._topup()
        o = self.rng.choice(self.recent)
        if self.rng.random() < 0.5:
            raw = self.sent[o][1]          # the same signed bytes (QoS 1 redelivery)
            self.stats["resend_same"] += 1
        else:
            raw = self.command("topup", order=o, amount_minor=self.sent[o][0])  # a reissue
            self.stats["resend_fresh"] += 1
        ack = self.send(raw)
        if ack.get("result") == "credited":
            self.bad("re-sent order %d credited again" % o)
        else:
            self._topup_ack(o, ack, fresh=False)

    def _tariff(self):
        v = self.version + 1
        self.version = v
        price = self.rng.choice(PRICES)
        raw = self.command("tariff", version=v, activate_utc_s=0,
                           tariff={"price_milli_per_kwh": price})
        self.maybe_tariff = (v, price, self.w_ram())
        self.stats["tariffs"] += 1
        ack = self.send(raw)
        self.maybe_tariff = None
        if ack.get("result") != "ok":
            self.bad("tariff %d refused: %r" % (v, ack.get("reason")))
            return
        self.prices[v] = price
        self.segs.append([v, self.w_ram()])
        self.w_durable = self.w_ram()

    def _token(self, keypad):
        amount = self.rng.randint(20, 200)
        self.tok_count, tok = openpaygo.generate_token(
            secret_key=TOKEN_KEY_HEX, count=self.tok_count, value=amount / TOKEN_DIVIDER,
            value_divider=TOKEN_DIVIDER)
        count = self.tok_count
        self.tok_sent[tok] = (amount, count)
        self.tok_maybe[tok] = amount
        self.stats["tokens"] += 1
        if keypad:
            # typed at the meter: its result shows on the core's last token
            # (the LCD's), which is set in the same call as the commit
            self.stats["token_keypad"] += 1
            self.m.control({"cmd": "keys", "keys": tok + "#"})
            deadline = time.time() + 10
            while True:
                last = self.m.state()["meter"].get("last_token")
                if last and last[2] == count:
                    res = (last[0], last[1])
                    break
                if time.time() > deadline:
                    self.bad("token %s typed on the keypad: no result in 10 s" % tok)
                    return
                time.sleep(0.01)
        else:
            ack = self.send(self.command("token", token=tok))
            if ack.get("result") != "ok":
                self.bad("token command %s rejected: %r" % (tok, ack.get("reason")))
                return
            res = (ack["data"]["result"], ack["data"]["amount_minor"])
        del self.tok_maybe[tok]
        self._token_result(tok, res, fresh=True)

    def _token_result(self, tok, res, fresh):
        code, amount = res
        if code == "add":
            if tok in self.tok_applied:
                self.bad("token %s credited twice" % tok)
            elif amount != self.tok_sent[tok][0]:
                self.bad("token %s credited %d, issued for %d" % (tok, amount, self.tok_sent[tok][0]))
            self.tok_applied[tok] = amount
            self.tok_recent.append(tok)
            del self.tok_recent[:-RESEND_RECENT]
            self.w_durable = self.w_ram()   # shown only after its commit
        elif code == "used":
            if tok not in self.tok_applied and fresh:
                self.bad("a new token %s answered used" % tok)
        else:
            self.bad("token %s answered %s" % (tok, code))
        return code

    def _token_replay(self):
        if not self.tok_recent:
            return self._token(False)
        tok = self.rng.choice(self.tok_recent)
        self.stats["token_replays"] += 1
        ack = self.send(self.command("token", token=tok))
        if ack.get("result") != "ok" or ack["data"]["result"] != "used":
            self.bad("replayed token %s answered %r" % (tok, ack))

    # --- power back: boot and audit
    def _boot_and_audit(self):
        m = self.m
        self._keep_image()
        for attempt in range(3):
            try:
                m.start()
                # the audit reads the events the meter sends: wait for its link
                # (on a loaded machine the first connects can fail and back off)
                m.wait_for(lambda st: st["meter"]["link_up"], timeout=60)
                cause = m.state().get("reset_cause")
                # What the head-end had before this boot: the dead meter's
                # last publishes arrived while it booted. Read before the
                # meter's seq, so nothing the meter sends after it counts;
                # _resolve() below may credit an order late, and its events
                # then carry seqs past the boot's, rightly.
                published = self.events.max_seq()
                r = m.control({"cmd": "meter_state"})
                if "state" not in r:
                    raise AssertionError("meter_state answered %r" % (r,))
                st = r["state"]
                break
            except (RuntimeError, TimeoutError) + _DEAD as e:
                self.bad("meter did not boot: %r\n%s" % (e, "\n".join(m.log_lines[-15:])))
                m.kill()
        else:
            raise Stop()
        self.stats["booted"] += 1
        if cause != "power":  # the meter restarted itself: watchdog, or a failed command
            self.bad("the meter reset itself (%s):\n%s" % (cause, "\n".join(m.log_lines[-20:])))
        self._audit(st)
        self.w_prev_boot = self.w_boot = self.w_durable = st["obis_1_8_0"]
        self.pulses = 0
        self.warned = False
        self._resolve()
        self._sync_events(st["seq"], published)

    def _audit(self, st):
        if "fault" in st:
            self.bad("store fault after the cut: %s" % st["fault"])
            raise Stop()
        w0 = st["obis_1_8_0"]
        # tariffs in flight: the meter's version says whether it landed
        if self.maybe_tariff:
            v, price, wh = self.maybe_tariff
            self.maybe_tariff = None
            if st["tariff_version"] == v:
                self.prices[v] = price
                self.segs.append([v, wh])
        if st["tariff_version"] != self.segs[-1][0]:
            self.bad("tariff version %r after the cut, expected %r" % (st["tariff_version"], self.segs[-1][0]))
        # energy
        known = self.w_ram()
        if w0 < self.w_prev_boot:
            self.bad("1.8.0 went backwards across restarts: %d < %d" % (w0, self.w_prev_boot))
        if w0 < self.w_durable:
            self.bad("durable energy lost: 1.8.0 %d < %d" % (w0, self.w_durable))
        if w0 > known + self.inflight_wh:
            self.bad("1.8.0 %d above what the board delivered (%d)" % (w0, known + self.inflight_wh))
        loss = max(0, known - w0)
        self.stats["lost_wh"] += loss
        self.stats["max_loss_wh"] = max(self.stats["max_loss_wh"], loss)
        if loss > MAX_LOSS_WH:
            self.bad("a cut lost %d Wh (at most %d)" % (loss, MAX_LOSS_WH))
        if getattr(self, "warned", False):
            self.stats["warned_loss_wh"] = max(self.stats["warned_loss_wh"], loss)
            if loss:
                self.bad("a warned cut lost %d Wh" % loss)
        self.inflight_wh = 0
        # money: resolve top-ups in flight first (a re-send says whether they
        # landed), then conservation on the balance read before the re-sends
        self._pending_balance = (st["balance_minor"], st["owed_minor"], w0)

    def _resolve(self):
        b0, owed0, w0 = self._pending_balance
        landed = 0
        late = []
        for o in sorted(self.maybe):
            try:
                ack = self._resend_until_answered(o)
            except _DEAD:
                self.bad("meter died while resolving orders")
                raise Stop()
            self.stats["resolved"] += 1
            if ack.get("result") == "duplicate":
                self.applied[o] = self.maybe[o]   # it had landed before the cut
                self.ack[o] = (ack["balance_minor"], ack["seq"])
                self.unverified.add(o)
                self.recent.append(o)
                landed += 1
            elif ack.get("result") == "credited":
                late.append((o, ack))              # credited now, after b0 was read
            else:
                self.bad("in-flight order %d refused on re-send: %r" % (o, ack.get("reason")))
        self.maybe = {}
        # tokens being entered at the cut: entered again, "used" says it had landed
        late_tokens = []
        for tok in sorted(self.tok_maybe):
            try:
                ack = self.send(self.command("token", token=tok))
            except _DEAD:
                self.bad("meter died while resolving tokens")
                raise Stop()
            self.stats["resolved"] += 1
            code = ack.get("result") == "ok" and ack["data"]["result"]
            if code == "used":
                self.tok_applied[tok] = self.tok_maybe[tok]
                self.tok_recent.append(tok)
            elif code == "add":
                late_tokens.append((tok, ack["data"]["amount_minor"]))
            else:
                self.bad("in-flight token %s answered %r" % (tok, ack))
        self.tok_maybe = {}
        if owed0 < 0:
            self.bad("negative emergency credit owed: %d" % owed0)
        credited = sum(self.applied.values()) + sum(self.tok_applied.values())
        want = INITIAL_MINOR + credited + owed0 - self.charge_minor(w0)
        if b0 != want:
            self.bad("balance %d, conservation says %d (credited %d, owed %d, charged %d for %d Wh)"
                     % (b0, want, credited, owed0, self.charge_minor(w0), w0))
        for tok, amount in late_tokens:
            self._token_result(tok, ("add", amount), fresh=False)
        for o, ack in late:
            self.applied[o] = self.sent[o][0]
            self.ack[o] = (ack["balance_minor"], ack["seq"])
            self.unverified.add(o)
            self.recent.append(o)
        del self.recent[:-RESEND_RECENT]

    def _resend_until_answered(self, o):
        # the same bytes first; a counter the meter has passed since (a
        # query bumps it) makes them "replayed": then a reissue, as the
        # head-end does
        ack = self.send(self.sent[o][1])
        if ack.get("result") == "rejected" and ack.get("reason") == "replayed":
            raw = self.command("topup", order=o, amount_minor=self.sent[o][0])
            self.sent[o] = (self.sent[o][0], raw)
            ack = self.send(raw)
        return ack

    def _sync_events(self, seq, published):
        # `published`: the highest seq the head-end had received before the
        # meter said `seq`. A seq published and then forgotten would be
        # reused for another event; were one missed here (still in flight
        # at the boot), the EventLog flags the reuse when it arrives.
        ev = self.events
        for msg in ev.take_bad():
            self.bad(msg)
        if published > seq:
            self.bad("event seq %d was published, the meter restarted at seq %d" % (published, seq))
        if seq < self.seq_boot:
            self.bad("event seq went back: %d < %d" % (seq, self.seq_boot))
        self.seq_boot = seq
        self.stats["max_seq"] = max(self.stats["max_seq"], seq)
        if ev.wait_upto(seq, 0.6):
            return self._check_topup_events(seq)
        # missing seqs: ask for a re-send of what the outbox holds
        self.stats["queries"] += 1
        try:
            ack = self.send(self.command("query", what="events", since=ev.contiguous()))
        except _DEAD:
            self.bad("meter died during the event query")
            raise Stop()
        # the re-sends go out at the publish task's pace, which four test
        # workers on two cores slow: a while to come, never a reason to miss
        if ack.get("result") != "ok" or not ev.wait_upto(seq, 15):
            missing = [s for s in range(ev.contiguous() + 1, seq + 1) if s not in ev.payload]
            # what the meter said it re-sends tells a slow link from a lost event
            self.bad("event seqs missing after a query: %r (the query's ack: %r; the subscriber's"
                     " disconnects: %d)" % (missing[:10], ack, ev.disconnects))
            ev._contig = seq  # report a gap once
        self._check_topup_events(seq)

    def _check_topup_events(self, seq):
        # one top-up event per credited order, at the seq its ack gave, for
        # the amount sent; none for an order that was never credited
        ev = self.events
        with ev.lock:
            contig = ev.contiguous()
            for ref, seqs in ev.token_topups.items():
                if len(seqs) > 1 and ref not in self.doubled:
                    self.doubled.add(ref)
                    self.bad("token %s has ledger top-ups %r" % (ref, sorted(seqs)))
            for o, seqs in ev.topups.items():
                if len(seqs) > 1 and o not in self.doubled:
                    self.doubled.add(o)
                    self.bad("order %d has top-up events %r" % (o, sorted(seqs)))
                if o not in self.applied and o not in self.doubled:
                    self.doubled.add(o)
                    self.bad("order %d has a top-up event but was never credited" % o)
            for o in sorted(self.unverified):
                aseq = self.ack[o][1]
                if aseq > contig:
                    continue
                self.unverified.discard(o)
                if o not in ev.topups or aseq not in ev.topups[o]:
                    self.bad("credited order %d: no top-up event at its seq %d" % (o, aseq))
                elif ev.topup_amount[aseq][1] != self.applied[o]:
                    self.bad("top-up event %d: amount %r, order %d was for %r"
                             % (aseq, ev.topup_amount[aseq][1], o, self.applied[o]))
            self.stats["events"] = len(ev.payload)

    def _final_sync(self):
        try:
            published = self.events.max_seq()
            st = self.m.control({"cmd": "meter_state"})["state"]
        except _DEAD:
            return
        self._sync_events(st["seq"], published)
        for o in sorted(self.unverified):
            self.bad("credited order %d: its top-up event never arrived" % o)


def flash_wear(workdir, load_w, hours, tick_ms=TICK_MS):
    """Run the real meter at a steady load for `hours` of meter time on the
    stepped clock, without cuts; return its flash write/erase counts."""
    m = SimMeter("wear", workdir, broker_port=1, step=True,
                 config={"initial_balance_minor": 10 ** 9, "price_milli_per_kwh": FIRST_PRICE},
                 extra_args=["--meter-every-ms", str(tick_ms)])
    m.start()
    try:
        m.control({"cmd": "step", "w": 0, "ms": 1000})
        before = m.control({"cmd": "flash_stats"})
        for _ in range(int(hours * 3600)):
            r = m.control({"cmd": "step", "w": load_w, "ms": 1000})
        after = m.control({"cmd": "flash_stats"})
        st = m.control({"cmd": "meter_state"})["state"]
    finally:
        m.stop()
    erases = after["erases"] - before["erases"]
    per_day = erases * 24.0 / hours
    free = max(1, after.get("free_blocks", after["blocks"] - 8))
    # LittleFS levels wear over the free blocks (docs/storage.md, "Flash wear")
    years = 100000 * free / per_day / 365.25 if per_day else float("inf")
    return {"load_w": load_w, "hours": hours, "wh": st["obis_1_8_0"], "pulses": r["pulses"],
            "writes": after["writes"] - before["writes"], "erases": erases,
            "erases_per_day": per_day, "max_block_erases": after["max_erases"],
            "free_blocks": free, "years": years}


def campaign(cuts, seed=1, workdir=None, broker_port=None, budget_s=None, log=None, config=None,
             progress=False):
    """Run the campaign in a fresh folder; start a broker unless given one.
    `progress`: True (cuts done / total, rate and ETA every 10 s on stderr)
    or a tools/progress.Progress."""
    from broker import Broker
    with tempfile.TemporaryDirectory(dir=workdir) as d:
        b = None
        if broker_port is None:
            b = Broker(os.path.join(d, "broker")).start()
            broker_port = b.port
        try:
            p = progress or None
            if p is True:
                from progress import Progress
                p = Progress("power cuts on the running meter", cuts)
            return Campaign(d, broker_port, seed=seed, log=log, config=config).run(cuts, budget_s, p)
        finally:
            if b:
                b.stop()


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cuts", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--wear", action="store_true", help="also measure flash wear")
    a = ap.parse_args()
    import children
    children.exit_on_signals()
    print(json.dumps(campaign(a.cuts, a.seed, progress=True), indent=1))
    if a.wear:
        with tempfile.TemporaryDirectory() as d:
            print(json.dumps(flash_wear(d, 10000, 1), indent=1))
