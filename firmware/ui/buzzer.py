# Buzzer patterns for credit warnings. The pattern is a pure function of
# (the policy's alarm request, milliseconds into the pattern); the UI task
# applies it. The requests are the credit policy's (credit/policy.py):
#   BEEP_ONCE  one 200 ms beep
#   REPEAT     200 ms every 2 s until silenced
from firmware.credit.policy import BEEP_ONCE, REPEAT


def should_sound(pattern, ms_into):
    if pattern == BEEP_ONCE:
        return ms_into < 200
    if pattern == REPEAT:
        return ms_into % 2000 < 200
    return False
