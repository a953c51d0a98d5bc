# Buzzer patterns for credit warnings. The pattern is a pure function of
# (warning level, milliseconds into the pattern); the UI task applies it.
from micropython import const

QUIET = const(0)
BEEP_ONCE = const(1)   # one short beep (level 1, once a day)
REPEAT = const(2)      # beep 200 ms every 2 s until silenced (level 2)


def should_sound(pattern, ms_into):
    if pattern == BEEP_ONCE:
        return ms_into < 200
    if pattern == REPEAT:
        return ms_into % 2000 < 200
    return False
