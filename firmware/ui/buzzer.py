# The buzzer: which tone sounds now, as a pure function of what the credit
# policy asks (credit/policy.py: its level, alarm request and one-off beep
# count), the relay, the meter's fault, the local time (quiet hours) and the
# real-time milliseconds the UI task polls at. The UI hands the answer, a
# pitch in Hz or 0, to board.buzzer(). Patterns and rules in words:
# docs/buzzer.md.
#
# Patterns, each a few (pitch / 100 Hz, duration / 10 ms) steps, pitch 0 =
# silence, in one bytes object (it stays in the code image):
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

_PATTERNS = (b"\x18\x0f\x00\x0f\x18\x0f\x00\xff\x00\x00\x00\x00"  # low: 150, 150 off, 150, 2550 off
             b"\x1b\x14\x00\xb4\x00\x00\x00\x00\x00\x00\x00\x00"  # very low: 200, 1800 off
             b"\x20\x0a\x00\x0a\x20\x0a\x00\x0a\x20\x0a\x00\x64"  # last: 3 x 100 / 100 off, 1000 off
             b"\x14\x50\x00\x14\x14\x50\x00\x00\x00\x00\x00\x00"  # cut: 800, 200 off, 800
             b"\x1b\x0a\x00\x05\x23\x0f\x00\x00\x00\x00\x00\x00"  # back: 100, 50 off, 150 higher
             b"\x0f\x32\x00\x32\x00\x00\x00\x00\x00\x00\x00\x00")  # fault: 500, 500 off


def tone(pattern, ms_into):
    """Hz of `pattern` at `ms_into` its cycle (0: silent there)."""
    k = pattern * 2 * _STEPS
    end = k + 2 * _STEPS
    t = 0
    while k < end:
        t += _PATTERNS[k + 1] * 10
        if ms_into < t:
            return _PATTERNS[k] * 100
        k += 2
    return 0


def cycle_ms(pattern):
    """Length of one cycle of `pattern`."""
    k = pattern * 2 * _STEPS
    t = 0
    for j in range(1, 2 * _STEPS, 2):
        t += _PATTERNS[k + j] * 10
    return t


def _clock(text):
    # "HH:MM" -> second of day
    h, m = text.split(":")
    h, m = int(h), int(m)
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(text)
    return h * 3600 + m * 60


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

    def __init__(self, quiet_hours=None):
        # quiet_hours: "HH:MM-HH:MM" local meter time, wrapping midnight when
        # the start is after the end; an unreadable value means none
        # (docs/buzzer.md)
        self.quiet = None
        try:
            a, b = quiet_hours.split("-")
            self.quiet = (_clock(a), _clock(b))
        except (AttributeError, ValueError):
            pass
        self.level = None          # what the last call saw (None: no call yet)
        self.relay_closed = True
        self.beeps_seen = 0
        self.pattern = _LOW        # the pattern playing once, until chirp_until
        self.chirp_until = 0

    def quiet_at(self, local_s):
        q = self.quiet
        if q is None:
            return False
        sod = local_s % _DAY_S
        if q[0] <= q[1]:
            return q[0] <= sod < q[1]
        return sod >= q[0] or sod < q[1]

    def on(self, now_ms, local_s, policy, fault):
        """Hz the buzzer sounds at real time now_ms (0: silent). `policy`:
        the credit policy (level, alarm, beeps, relay_closed, warn_minor);
        `fault`: the meter's store fault (None when healthy)."""
        p = policy
        closed = p.relay_closed
        level = p.level
        n = len(p.warn_minor)
        mine = _LAST if (n and level >= n) else (_LOW if level <= 1 else _VERY)
        if self.level is None:     # the first call: what was before boot is no news
            self.level = level
            self.relay_closed = closed
            self.beeps_seen = p.beeps
        if closed != self.relay_closed:
            self.relay_closed = closed
            self._once(_BACK if closed else _CUT, now_ms)
        elif closed and (level > self.level or p.beeps != self.beeps_seen):
            self._once(mine, now_ms)
        self.level = level
        self.beeps_seen = p.beeps
        left = time.ticks_diff(self.chirp_until, now_ms)
        if left > 0:
            playing = self.pattern
            hz = tone(playing, cycle_ms(playing) - left)
        elif fault:
            playing = _FAULT
            hz = tone(_FAULT, now_ms % cycle_ms(_FAULT))
        elif closed and p.alarm == REPEAT:
            playing = mine
            hz = tone(mine, now_ms % cycle_ms(mine))
        else:
            return 0
        if hz and self.quiet_at(local_s) and not (playing == _LAST and closed):
            return 0
        return hz

    def _once(self, pattern, now_ms):
        self.pattern = pattern
        self.chirp_until = time.ticks_add(now_ms, cycle_ms(pattern))
