"""One progress line every few seconds for a long count (a soak's power cuts):

    p = Progress("power cuts", total=10000)
    for i in range(10000):
        ...
        p.update(i + 1)
    p.done()

prints, at most every `every_s` seconds and once at the end,

    power cuts: 1200/10000 (12.0 %), 3.4/s, ETA 0:43:08

The rate is the whole run's average (the cuts are alike, and an average over
the run does not jump about). Lines go to stderr, which `make soak` leaves on
the terminal (pytest -s).
"""
import sys
import time


def hms(seconds):
    seconds = int(round(seconds))
    return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


def line(label, done, total, elapsed_s):
    """The progress line for `done` of `total` after `elapsed_s` seconds."""
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    pct = 100.0 * done / total if total else 100.0
    eta = hms((total - done) / rate) if rate > 0 else "?"
    return "%s: %d/%d (%.1f %%), %.1f/s, ETA %s" % (label, done, total, pct, rate, eta)


class Progress:
    def __init__(self, label, total, every_s=10.0, out=None, clock=time.monotonic):
        self.label, self.total, self.every_s = label, total, every_s
        self.out = out or sys.stderr
        self.clock = clock
        self.t0 = self.last = clock()
        self.done_n = 0

    def update(self, done):
        self.done_n = done
        now = self.clock()
        if now - self.last >= self.every_s:
            self.last = now
            self._print(now)

    def done(self):
        elapsed = self.clock() - self.t0
        self._write("%s: %d/%d done in %s" % (self.label, self.done_n, self.total, hms(elapsed)))

    def _print(self, now):
        self._write(line(self.label, self.done_n, self.total, now - self.t0))

    def _write(self, text):
        self.out.write(text + "\n")
        self.out.flush()
