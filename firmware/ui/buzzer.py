# The buzzer: which tone sounds now, as a pure function of what the credit
# policy asks (credit/policy.py: its level, alarm request and one-off beep
# count), the relay, the meter's fault, the local time (quiet hours) and the
# real-time milliseconds the UI task polls at. The UI hands the answer, a
# pitch in Hz or 0, to board.buzzer(). Patterns and rules in words:
# docs/buzzer.md.
#
# Patterns, each six (pitch / 100 Hz, duration / 10 ms) steps, pitch 0 =
# silence, in one bytes constant (it stays in the code image):
#   low        level 1             2400 Hz, two 150 ms beeps every 3 s
#   very low   levels 2 .. last-1  2700 Hz, 200 ms every 2 s
#   last       the last level      3200 Hz, three 100 ms beeps every 1.5 s
#   cut        the relay opened    2000 Hz, two 800 ms tones, once
#   back       the relay closed    2700 Hz then 3500 Hz, once
#   fault      a store fault       1500 Hz, 500 ms every 1 s
# A one-off beep of the policy (once a local day at level >= 1) and a rise
# of the level play their level's pattern once; the alarm REPEAT loops it.
import time

from micropython import const

from firmware.credit.policy import REPEAT

_LOW = const(0)
_VERY = const(1)
_LAST = const(2)
_CUT = const(3)
_BACK = const(4)
_FAULT = const(5)
_STEPS = const(6)     # steps per pattern (zero-length steps pad a short one)
_DAY_S = const(86400)

# (private consts: they cost the heap no interned name)
_PATTERNS = const(b"\x18\x0f\x00\x0f\x18\x0f\x00\xff\x00\x00\x00\x00"  # low: 150, 150 off, 150, 2550 off
                  b"\x1b\x14\x00\xb4\x00\x00\x00\x00\x00\x00\x00\x00"  # very low: 200, 1800 off
                  b"\x20\x0a\x00\x0a\x20\x0a\x00\x0a\x20\x0a\x00\x64"  # last: 3 x 100 / 100 off, 1000 off
                  b"\x14\x50\x00\x14\x14\x50\x00\x00\x00\x00\x00\x00"  # cut: 800, 200 off, 800
                  b"\x1b\x0a\x00\x05\x23\x0f\x00\x00\x00\x00\x00\x00"  # back: 100, 50 off, 150 higher
                  b"\x0f\x32\x00\x32\x00\x00\x00\x00\x00\x00\x00\x00")  # fault: 500, 500 off
_CYCLES = const(b"\x96\x64\x4b\x5a\x0f\x32")   # each pattern's cycle, in 20 ms: the sums above


class Tones:
    """The buzzer's decision. Rules, in order:
    - a relay change plays "cut" or "back" once, whatever a press silenced;
    - a rise of the warning level, or a one-off beep of the policy, plays
      that level's pattern once; the policy's REPEAT loops it (a press
      silences that in the policy, until the level changes);
    - the fault state loops "fault";
    - no warning sounds while the supply is off (the cut said it once);
    - in quiet hours (local time) nothing sounds but the last level's
      warning while the supply is still on: the last warning before a cut."""

    def __init__(self, cfg):
        # quiet hours: cfg "quiet_hours", "HH:MM-HH:MM" local meter time,
        # wrapping midnight when the start is after the end; a value not of
        # that form means none (docs/buzzer.md). Kept as (start, end)
        # seconds of the day, in a tuple of windows like friendly credit's.
        self.windows = ()
        try:
            se = []
            for hm in cfg.get("quiet_hours").split("-"):
                h, m = hm.split(":")
                h, m = int(h), int(m)
                if not (0 <= h < 24 and 0 <= m < 60):
                    raise ValueError(hm)
                se.append(h * 3600 + m * 60)
            if len(se) == 2:
                self.windows = ((se[0], se[1]),)
        except (AttributeError, ValueError):
            pass
        self.level = None          # what the last call saw (None: no call yet)
        self.relay_closed = True
        self.beeps_seen = 0
        self.pattern = _LOW        # the pattern playing once, until chirp_until
        self.chirp_until = 0

    def on(self, now_ms, local_s, policy, fault):
        """Hz the buzzer sounds at real time now_ms (0: silent). `policy`:
        the credit policy (level, alarm, beeps, relay_closed, warn_minor);
        `fault`: the meter's store fault (None when healthy); `local_s`: the
        local meter time, for quiet hours. Allocates nothing."""
        p = policy
        closed = p.relay_closed
        level = p.level
        n = len(p.warn_minor)
        mine = _LAST if (n and level >= n) else (_LOW if level <= 1 else _VERY)
        if self.level is None:     # the first call: what was before boot is no news
            self.level = level
            self.relay_closed = closed
            self.beeps_seen = p.beeps
        once = -1
        if closed != self.relay_closed:
            self.relay_closed = closed
            once = _BACK if closed else _CUT
        elif closed and (level > self.level or p.beeps != self.beeps_seen):
            once = mine
        self.level = level
        self.beeps_seen = p.beeps
        if once >= 0:
            self.pattern = once
            self.chirp_until = time.ticks_add(now_ms, _CYCLES[once] * 20)
        left = time.ticks_diff(self.chirp_until, now_ms)
        if left > 0:
            pat = self.pattern
            ms = _CYCLES[pat] * 20 - left
        elif fault:
            pat = _FAULT
            ms = now_ms % (_CYCLES[_FAULT] * 20)
        elif closed and p.alarm == REPEAT:
            pat = mine
            ms = now_ms % (_CYCLES[mine] * 20)
        else:
            return 0
        if self.windows and not (pat == _LAST and closed):
            a, b = self.windows[0]
            sod = local_s % _DAY_S
            if (a <= sod < b) if a <= b else (sod >= a or sod < b):
                return 0           # quiet hours
        # the pitch at `ms` into the pattern's cycle
        k = pat * 2 * _STEPS
        end = k + 2 * _STEPS
        t = 0
        while k < end:
            t += _PATTERNS[k + 1] * 10
            if ms < t:
                return _PATTERNS[k] * 100
            k += 2
        return 0
