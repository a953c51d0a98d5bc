"""The meter's memory over a month and its heap floor (issue 16, "Memory
budget"; docs/benchmarks.md). The meter is the one a utility runs with
everything on: the 4G modem (the fake modem on a pty), the link through the
fault proxy (blackholes, drops, delays, RSTs, broker restarts), top-ups from
the reference head-end, offline tokens relayed by the signed `token` command,
the screens cycled by the button, a technician's REPL session in use, and
an over-the-air download of the whole compiled image early in the month
(docs/ota.md), through the same faults. The image is served 100 bytes
short, so the download runs to its last chunk, fails its hash and the meter
runs on: all of a download's heap use, without the switch's restart.

- heap_low_water_free_pct (/_bytes): the lowest free heap after a
  collection, sampled about every second of real time over a 30-day run
  (MONTH_S real seconds, the clock at 30 days / MONTH_S) at 108wk, as a
  share of the heap. Target >= 30.
- heap_largest_free_min_bytes: the smallest "largest free block" sampled;
  it must stay above the largest allocation a path makes after boot
  (LARGEST_ALLOC_BYTES: the MQTT message buffer, 2,560 B on this host).
- gc_pause_ms_p99: the pause of those full collections, 99th percentile.
- month_memory_errors / month_meter_restarts: MemoryErrors the meter logged,
  times it restarted (watchdog or crash). Target 0 each.
- month_ota_download_done: 1 when that download ran to its end (the
  meter's "ota failed chunk_hash" line); month_ota_download_s, how long.
- heap_floor_wk: the smallest heap, in 4wk steps, at which that meter
  credits every top-up and token, keeps its link and never restarts or logs
  a MemoryError over a simulated day (DAY_S real seconds). Target <= 84.
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import ota_bundle  # noqa: E402
import topup_rig  # noqa: E402
from fake_modem import FakeModem  # noqa: E402
from headend.ota import OtaPublisher  # noqa: E402
from simmeter import COMPILED, ConsoleError, ensure_compiled  # noqa: E402
from topup_rig import Rig, pct  # noqa: E402

TARGETS = {"heap_low_water_free_pct": (">=", 30), "heap_floor_wk": ("<=", 84),
           "month_memory_errors": ("==", 0), "month_meter_restarts": ("==", 0),
           "heap_largest_free_ok": ("==", 1), "month_ota_download_done": ("==", 1)}
MONTH_S = int(os.environ.get("MEM_MONTH_S", "240"))
DAY_S = int(os.environ.get("MEM_DAY_S", "40"))
LARGEST_ALLOC_BYTES = 2560
TOKEN_KEY_HEX = "5a" * 16
OTA_KEY_HEX = "6b" * 32
OTA_AT_STEP = 12          # the offer goes out at this step of the schedule (about 2 % into the month)
# MEM_OTA=0: the month without the download (the schedule before it was added)
WITH_OTA = os.environ.get("MEM_OTA", "1") != "0"
FLOOR_START_WK, FLOOR_STEP_WK, FLOOR_MAX_WK = 84, 4, 108


class EverythingMeter:
    """A Rig (head-end, broker, fault proxy, sim meter) whose meter is the
    modem meter with tokens, screens and a REPL, driven through a schedule."""

    def __init__(self, work, name, heap, span_s, seed, ota=True):
        self.modem = FakeModem(boot_ms=150, reg_ms=200, powered=False,
                               clock_utc=lambda: 1790000000).start()
        try:
            self.rig = Rig(work, meter_id=name, seed=seed, scale=max(1, 30 * 86400 // span_s),
                           config={"token_key_hex": TOKEN_KEY_HEX, "ota_key_hex": OTA_KEY_HEX},
                           meter_kw={"heap": heap,
                                     "extra_args": ["--modem", self.modem.path,
                                                    "--modem-pins", str(self.modem.pin_port)]})
        except BaseException:
            self.modem.stop()   # the rig stopped what it had started
            raise
        self.m = self.rig.m
        with open(COMPILED + ".romfs", "rb") as f:
            manifest, table, image = ota_bundle.build(f.read(), 2, "SIM.1", bytes.fromhex(OTA_KEY_HEX))
        self.ota_manifest = manifest
        # served short: see the module's docstring
        self.ota_pub = OtaPublisher([(manifest, table, ota_bundle.short(image))], port=self.rig.broker.port,
                                    keys={name: bytes.fromhex(topup_rig.KEY_HEX)}).start()
        self.ota = ota
        self.ota_offered_at = None
        self.ota_result = None
        self.ota_done_s = None
        self._ota_seen = 0
        self.tokens = 0
        self.token_results = []
        self.samples = []        # (free, largest_free, gc_ms)
        self.counts = {"topups": 0, "credited": 0, "tokens": 0, "tokens_added": 0, "presses": 0,
                       "repl": 0, "faults": 0, "refused": 0}

    def close(self):
        self.ota_pub.stop()
        self.rig.close()
        self.modem.stop()

    def offer_update(self):
        ctr = self.rig.he.send(self.rig.mid, "ota", manifest=self.ota_manifest)
        ack = self.rig.he.wait_ack(self.rig.mid, ctr, timeout_s=30)
        self.ota_result = ack and (ack.get("reason") or ack.get("result"))
        self.ota_offered_at = time.time()

    def watch_update(self):
        # the download's end, seen on the meter's log once per step
        if self.ota_offered_at is None or self.ota_done_s is not None:
            return
        lines = self.m.log_lines
        if any("ota failed chunk_hash" in line for line in lines[self._ota_seen:]):
            self.ota_done_s = round(time.time() - self.ota_offered_at, 1)
        self._ota_seen = len(lines)

    def token(self):
        import openpaygo
        # each token's count follows the last one's, as the utility's
        # generator keeps it (openpaygo returns the count it used)
        self.tokens, tok = openpaygo.generate_token(secret_key=TOKEN_KEY_HEX, count=self.tokens, value=5)
        ctr = self.rig.he.send(self.rig.mid, "token", token=str(tok))
        ack = self.rig.he.wait_ack(self.rig.mid, ctr, timeout_s=30)
        self.counts["tokens"] += 1
        result = ack and ((ack.get("data") or {}).get("result") or ack.get("reason") or ack.get("result"))
        self.token_results.append(result)
        self.counts["tokens_added"] += result == "add"

    def run(self, span_s, faults_every=7):
        self.m.control({"cmd": "load", "w": 800})
        end = time.time() + span_s
        i = 0
        while time.time() < end:
            i += 1
            try:
                self._step(i, faults_every)
            except (RuntimeError, ConsoleError, KeyError):
                # a request the meter could not answer (its own MemoryError,
                # in the log and counted there)
                self.counts["refused"] += 1
            except (OSError, TimeoutError):
                # the meter restarted under us (a MemoryError's reset: counted
                # below); the rig brings it back as a board would come back
                self._back()
            time.sleep(0.3)
        self.counts["topups"] = self.rig.stats["topups"]
        self.counts["credited"] = self.rig.stats["credited"]
        for _ in range(3):
            try:
                self._back()
                return self.rig.settle()
            except (KeyError, OSError):   # refused for want of heap, or restarting
                time.sleep(1)
        return {"link_up": False}

    def _step(self, i, faults_every):
        self.m.control({"cmd": "press", "ms": 120})
        self.counts["presses"] += 1
        if i % 3 == 0:
            fault = i % (3 * faults_every) == 0
            self.rig.topups(1, faults=int(fault), resend_every=0, timeout_s=30)
            self.counts["faults"] += int(fault)
        if i % 11 == 0:
            self.token()
        if i == OTA_AT_STEP and self.ota:
            self.offer_update()
        self.watch_update()
        if i % 5 == 0:
            self.m.console("status()")
            self.counts["repl"] += 1
        mem = self.m.mem(blocks=True)
        self.samples.append((mem["free"], mem["largest_free"], mem["gc_ms"], mem["total"]))

    def _back(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            if self.m.alive() and self.m.sock is not None:
                try:
                    self.m.state()
                    return
                except OSError:
                    pass
            time.sleep(0.2)
        raise TimeoutError("the meter did not come back")

    def memory_errors(self):
        return sum("MemoryError" in line for line in self.m.log_lines)

    def memory_error_sites(self):
        """Where each MemoryError struck: the innermost traceback line
        before it, and the allocation's size, counted."""
        sites = {}
        last = ""
        for line in self.m.log_lines:
            if line.lstrip().startswith("File "):
                last = line.strip()
            elif "MemoryError" in line and "allocating" in line:
                key = "%s: %s" % (last, line.split("allocating")[-1].strip(" ')\""))
                sites[key] = sites.get(key, 0) + 1
                last = ""
        return sites

    def restarts(self):
        return len(self.m.exits)   # the rig restarts a meter that died, as a board does


def month():
    ensure_compiled()
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as work:
        e = EverythingMeter(work, "MEM30", "108wk", MONTH_S, seed=30, ota=WITH_OTA)
        try:
            e.run(MONTH_S)
            total = e.samples[0][3]
            low = min(s[0] for s in e.samples)
            largest = min(s[1] for s in e.samples)
            return {"heap_low_water_free_bytes": low,
                    "heap_low_water_free_pct": round(100.0 * low / total, 1),
                    "heap_largest_free_min_bytes": largest,
                    "heap_largest_free_ok": int(largest > LARGEST_ALLOC_BYTES),
                    "gc_pause_ms_p99": round(pct([s[2] for s in e.samples], 99), 2),
                    "gc_pause_ms_p50": round(pct([s[2] for s in e.samples], 50), 2),
                    "month_memory_errors": e.memory_errors(),
                    "month_meter_restarts": e.restarts(),
                    "month_memory_error_sites": e.memory_error_sites(),
                    "month_topups_credited": e.counts["credited"],
                    "month_topups_sent": e.counts["topups"],
                    "month_tokens_added": e.counts["tokens_added"],
                    "month_tokens_sent": e.counts["tokens"],
                    "month_link_faults": e.counts["faults"],
                    "month_repl_statements": e.counts["repl"],
                    "month_ota_offer": e.ota_result,
                    "month_ota_download_done": int(e.ota_done_s is not None),
                    "month_ota_download_s": e.ota_done_s,
                    "month_samples": len(e.samples)}
        finally:
            e.close()


def _last_line(exc):
    # a console traceback or a start log ends with what went wrong
    lines = [l for l in str(exc).splitlines() if l.strip()] or [repr(exc)]
    return "%s: %s" % (type(exc).__name__, lines[-1][:100])


def day_ok(heap_wk):
    """Does the everything meter get through a simulated day at heap_wk?"""
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as work:
        try:
            e = EverythingMeter(work, "MEMF%d" % heap_wk, "%dwk" % heap_wk, DAY_S * 30, seed=heap_wk, ota=WITH_OTA)
        except Exception as exc:    # did not boot, or never linked
            print("  %dwk: no start (%s)" % (heap_wk, _last_line(exc)), flush=True)
            return False
        try:
            try:
                st = e.run(DAY_S)
            except Exception as exc:
                print("  %dwk: failed (%s)" % (heap_wk, _last_line(exc)), flush=True)
                return False
            c = e.counts
            ok = (c["credited"] == c["topups"] and c["tokens_added"] == c["tokens"]
                  and st.get("link_up", True) and e.m.state()["meter"]["link_up"]
                  and e.memory_errors() == 0 and e.restarts() == 0)
            print("  %dwk: %s (top-ups %d/%d, tokens %d/%d, MemoryErrors %d, restarts %d)"
                  % (heap_wk, "ok" if ok else "FAILS", c["credited"], c["topups"], c["tokens_added"],
                     c["tokens"], e.memory_errors(), e.restarts()), flush=True)
            for site, n in sorted(e.memory_error_sites().items(), key=lambda kv: -kv[1])[:3]:
                print("    %dx %s" % (n, site), flush=True)
            return ok
        finally:
            e.close()


def floor_wk():
    """Walk from FLOOR_START_WK: down while it works, up until it does."""
    wk = FLOOR_START_WK
    if day_ok(wk):
        while wk - FLOOR_STEP_WK > 0 and day_ok(wk - FLOOR_STEP_WK):
            wk -= FLOOR_STEP_WK
        return wk
    while wk < FLOOR_MAX_WK:
        wk += FLOOR_STEP_WK
        if day_ok(wk):
            return wk
    return FLOOR_MAX_WK + FLOOR_STEP_WK   # not even at the board's heap


def run():
    out = month()
    out["heap_floor_wk"] = floor_wk()
    return out


if __name__ == "__main__":
    import json
    which = sys.argv[1:] or ["month", "floor"]
    res = month() if "month" in which else {}
    if "floor" in which:
        res["heap_floor_wk"] = floor_wk()
    print(json.dumps(res, indent=1))
