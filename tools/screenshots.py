"""`make screenshots` and `make golden`: every scenario of
tools/screen_scenarios.py run on sim meters, each frame written as a picture.

    python tools/screenshots.py                  # docs/screens/<name>.png (x4, LCD colours)
    python tools/screenshots.py --golden         # tests/golden/<name>.png (1 bit, 128x64)
    python tools/screenshots.py --both           # both, from one run (`make golden`)
    python tools/screenshots.py --only a,b ...   # just these scenarios (their meters run whole)

Pictures of scenarios no longer in the list are removed from the folder, so
a renamed screen leaves no stale picture behind. tests/test_lcd_golden.py
calls capture() and compares each frame with its golden bit for bit.
"""
import argparse
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lcd_png  # noqa: E402
from simmeter import ROOT, SIM_KEY_HEX, SimMeter, corrupt_store, ensure_compiled  # noqa: E402

DOCS_DIR = os.path.join(ROOT, "docs", "screens")
GOLDEN_DIR = os.path.join(ROOT, "tests", "golden")
# The app redraws the LCD at least once a second (firmware/app.py
# LCD_EVERY_MS) and at once on a press, a command or a relay change. Once an
# action is done, the first frame that differs from the one shown then was
# drawn after it; a frame that stays the same for longer than a refresh
# period already showed it (1.5 s: the period, and half of one more as
# margin on a loaded machine).
FRESH_S = 1.5
# The meter ticks once a real second even on a stepped clock (no time
# passes), and a tick re-measures the power: what a tick right after a
# stepped second shows (the pulses of that second) the next one replaces.
# After a scenario's actions the runner waits out this many zero-time
# ticks, so a picture never depends on where in a second it was taken.
SETTLE_TICKS = 2
METER_EVERY_MS = 100
PRESS_MS = 150          # a short press, well above the key's debounce
FAR_FUTURE = 4102444800


class Runner:
    """One sim meter and the scenarios that run on it, in order."""

    def __init__(self, name, spec, workdir, broker_port, count, epoch, idle_home_s=30):
        from headend import codec
        self.codec = codec
        cfg = dict(spec.get("config", {}))
        if not spec.get("broker"):
            cfg.setdefault("broker_port", 9)   # discard port: nothing listens
        # the meter ticks every METER_EVERY_MS of real time instead of every
        # second: on a stepped clock a tick meters only what a step gave it,
        # so this changes no figure, and steps and settling go faster
        args = ["--meter-every-ms", str(METER_EVERY_MS)] + list(spec.get("args", ()))
        self.meter = SimMeter("scr-" + name, workdir, broker_port=broker_port, config=cfg, step=True,
                              epoch=spec.get("epoch", epoch), extra_args=args)
        key = self.meter.config.get("key_hex") or SIM_KEY_HEX
        self.key = bytes.fromhex(key)
        self.count = count
        self.ctr = 0         # the signed commands' counter
        self.frame = None    # the frame of the last capture
        self.idle_home_s = idle_home_s

    def start(self):
        self.meter.start()
        self.settle()
        self.frame = self.fresh_frame()

    def stop(self):
        self.meter.stop()

    def lcd(self):
        return self.meter.control({"cmd": "lcd_frame"})["hex"]

    def fresh_frame(self, timeout=30):
        """A frame drawn after everything done so far (see FRESH_S)."""
        deadline = time.monotonic() + timeout
        f0 = self.lcd()
        while not f0:                    # nothing drawn yet since power-up
            if time.monotonic() > deadline:
                raise TimeoutError("%s drew no frame" % self.meter.meter_id)
            time.sleep(0.05)
            f0 = self.lcd()
        until = time.monotonic() + FRESH_S
        while time.monotonic() < until:
            time.sleep(0.03)
            now = self.lcd()
            if now != f0:
                return now
        return f0

    def settle(self):
        for _ in range(SETTLE_TICKS):
            r = self.meter.control({"cmd": "step", "ms": 0})
            if not r.get("ticked"):
                raise AssertionError("%s: the meter did not tick: %r" % (self.meter.meter_id, r))

    def panel(self):
        """(screen, mode) the front panel shows: the sim's state says it."""
        return tuple(self.meter.state()["meter"]["panel"])

    def press_next(self):
        """One short press, once the panel has taken it (the board latches
        every press, so one request is one press), then a frame drawn
        after it."""
        before = self.panel()
        self.meter.control({"cmd": "press", "ms": PRESS_MS})
        deadline = time.monotonic() + 10
        while self.panel() == before:
            if time.monotonic() > deadline:
                raise AssertionError("%s: a press did not move the panel" % self.meter.meter_id)
            time.sleep(0.02)
        return self.fresh_frame()

    def send(self, kind, fields):
        self.ctr += 1
        raw = self.codec.command(self.meter.meter_id, self.key, self.ctr, FAR_FUTURE, kind, **fields)
        reply = self.meter.control({"cmd": "command", "raw": raw.decode()})
        ack = reply.get("reply") or {}
        if ack.get("result") == "rejected":
            raise AssertionError("%s command %s %r rejected: %r" % (self.meter.meter_id, kind, fields, ack))

    def until(self, want, timeout=20):
        def ok(st):
            m = st.get("meter", {})
            return all(m.get(k) == v for k, v in want.items())
        self.meter.wait_for(ok, timeout=timeout)

    def corrupt(self, names):
        self.meter.kill()
        corrupt_store(os.path.join(self.meter.dir, "flash.img"), names)
        self.meter.start()
        # the power-up's self-test (all pixels on, then off) comes first:
        # wait for the screens (the sim's lcd lines are [] during it)
        self.meter.wait_for(lambda st: bool(st.get("lcd")), timeout=30)

    def act(self, step):
        if "control" in step:
            r = self.meter.control(step["control"])
            if r.get("ok") is False:
                raise AssertionError("control %r: %r" % (step["control"], r))
        elif "send" in step:
            fields = {k: v for k, v in step.items() if k != "send"}
            self.send(step["send"], fields)
        elif "press" in step:
            ms = int(step["press"])
            if ms < 1500:
                # a short press moves the screen on as well: count it
                self.settle()
                self.fresh_frame()
                self.press_next()
            else:
                self.meter.control({"cmd": "press", "ms": ms})
                time.sleep(ms / 1000 + 0.2)
        elif "until" in step:
            self.until(step["until"])
        elif "corrupt" in step:
            self.corrupt(step["corrupt"])
        else:
            raise ValueError("unknown scenario step %r" % (step,))

    def capture(self, sc):
        """Set up the scenario's state, go to its screen, return the frame (hex)."""
        for step in sc.get("do", ()):
            self.act(step)
        if sc.get("do"):
            self.settle()
        frame = self.fresh_frame() if sc.get("do") else self.frame
        # the panel goes home by itself after 30 s of meter time without a
        # press, and a stepped clock can pass that in one step: read where it
        # is instead of counting. A short press first dismisses a
        # confirmation or result screen (mode != 0).
        while self.panel() != (sc["screen"] % self.count, 0):
            frame = self.press_next()
        self.frame = frame
        return frame


def capture(scenarios_mod=None, only=None, workdir=None):
    """Run the scenarios; return {name: frame hex} in list order. Meters run
    in parallel threads (they spend most of their time waiting)."""
    if scenarios_mod is None:
        import screen_scenarios as scenarios_mod
    scenarios = list(scenarios_mod.SCENARIOS)
    names = [s["name"] for s in scenarios]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError("scenario names used twice: %s" % ", ".join(sorted(dup)))
    meters = scenarios_mod.METERS
    if only:
        wanted = {s["meter"] for s in scenarios if s["name"] in only}
        scenarios = [s for s in scenarios if s["meter"] in wanted]
    count = scenarios_mod.SCREEN_COUNT   # the screens a short press cycles through
    ensure_compiled()   # once, before the threads: two compiles at once trip over each other
    epoch = scenarios_mod.EPOCH
    out, errors = {}, []
    own = workdir is None
    work = tempfile.mkdtemp(prefix="screens-") if own else workdir
    broker = None
    try:
        if any(meters[s["meter"]].get("broker") for s in scenarios):
            from broker import Broker
            broker = Broker(os.path.join(work, "broker"))
            broker.start()

        def one(meter_name):
            r = Runner(meter_name, meters[meter_name], work, broker.port if broker else 9, count, epoch,
                       getattr(scenarios_mod, "IDLE_HOME_S", 30))
            try:
                r.start()
                for sc in scenarios:
                    if sc["meter"] == meter_name:
                        out[sc["name"]] = r.capture(sc)
            except Exception as e:   # reported with the scenario it stopped at
                errors.append("meter %s: %s: %s\n%s" % (meter_name, type(e).__name__, e,
                                                       "\n".join(r.meter.log_lines[-15:])))
            finally:
                r.stop()
        threads = [threading.Thread(target=one, args=(m,), daemon=True)
                   for m in dict.fromkeys(s["meter"] for s in scenarios)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        if broker:
            broker.stop()
        if own:
            import shutil
            shutil.rmtree(work, ignore_errors=True)
    if errors:
        raise RuntimeError("\n\n".join(errors))
    return {n: out[n] for n in names if n in out and (not only or n in only)}


def golden_path(name):
    return os.path.join(GOLDEN_DIR, name + ".png")


def write_golden(frame, path):
    """A golden frame: 128x64, one bit a pixel (on = black), no metadata."""
    from PIL import Image
    img = Image.new("1", (lcd_png.WIDTH, lcd_png.HEIGHT), 1)
    img.putdata([0 if v else 1 for row in lcd_png.frame_bits(frame) for v in row])
    img.save(path, format="PNG", optimize=True)


def read_golden(path):
    from PIL import Image
    img = Image.open(path).convert("1")
    if img.size != (lcd_png.WIDTH, lcd_png.HEIGHT):
        raise ValueError("%s is %dx%d, not 128x64" % ((path,) + img.size))
    px = img.load()
    return [[0 if px[x, y] else 1 for x in range(lcd_png.WIDTH)] for y in range(lcd_png.HEIGHT)]


def write_all(frames, folder, writer, prune=True):
    os.makedirs(folder, exist_ok=True)
    for name, frame in frames.items():
        writer(frame, os.path.join(folder, name + ".png"))
    if prune:
        for f in os.listdir(folder):
            if f.endswith(".png") and f[:-4] not in frames:
                os.remove(os.path.join(folder, f))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--golden", action="store_true", help="write tests/golden/ instead of docs/screens/")
    ap.add_argument("--both", action="store_true", help="write docs/screens/ and tests/golden/")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    a = ap.parse_args(argv)
    only = set(filter(None, a.only.split(",")))
    t0 = time.time()
    frames = capture(only=only or None)
    if a.golden or a.both:
        write_all(frames, GOLDEN_DIR, write_golden, prune=not only)
    if not a.golden or a.both:
        write_all(frames, DOCS_DIR, lcd_png.write_png, prune=not only)
    for name in frames:
        print(name)
    print("%d frames in %.1f s" % (len(frames), time.time() - t0))
    return 0


if __name__ == "__main__":
    import children
    children.exit_on_signals()
    sys.exit(main())
