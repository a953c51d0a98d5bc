# Buzzer patterns for credit warnings. The pattern is a pure function of
# (the policy's alarm request, milliseconds into the pattern); the UI task
# applies it. The requests are the credit policy's (credit/policy.py):
#   BEEP_ONCE  one 200 ms beep
#   REPEAT     200 ms every 2 s until silenced
import time

from firmware.credit.policy import BEEP_ONCE, REPEAT


def should_sound(pattern, ms_into):
    if pattern == BEEP_ONCE:
        return ms_into < 200
    if pattern == REPEAT:
        return ms_into % 2000 < 200
    return False


class Tones:
    """What the buzzer does now: the credit policy's alarm pattern, a 200 ms
    chirp for each one-off beep it counts (a press acknowledged, a warning
    crossed), and the repeating alarm while the meter is in fault."""

    def __init__(self, beeps):
        self.beeps_seen = beeps
        self.chirp_until = 0

    def on(self, now_ms, alarm, beeps, fault):
        """True while the buzzer should sound at real time now_ms."""
        if beeps != self.beeps_seen:
            self.beeps_seen = beeps
            self.chirp_until = time.ticks_add(now_ms, 200)
        if time.ticks_diff(self.chirp_until, now_ms) > 0:
            return True
        if fault or alarm == REPEAT:
            return should_sound(REPEAT, now_ms % 2000)
        return False
