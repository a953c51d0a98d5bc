# The keypad task: keys typed at the meter become an offline token
# (docs/tokens.md, "At the meter"). Digits gather; "#" enters them as a
# token, "*" clears them. The board reports the key held now
# (board.keypad_key()); a key counts once, when it goes down. Loaded by the
# app only on a board with a keypad.
#
# The digits typed so far are the core's keypad_digits, for the LCD, beside
# core.last_token (the result); both are in MeterCore.snapshot().
import asyncio
import gc

from micropython import const

_POLL_MS = const(40)      # keys are pressed by people: 25 polls a second is plenty
_MAX_DIGITS = const(16)   # more than any token (12): what is typed beyond is dropped


async def run(app):
    read = app.board.keypad_key
    core = app.core
    last = None
    while True:
        k = read()
        if k != last:
            last = k
            digits = core.keypad_digits
            if k == "*":
                core.keypad_digits = ""
            elif k == "#":
                core.keypad_digits = ""
                if digits:
                    # from a collected heap, as a command is (App.handle_command):
                    # the commit needs a few KB in one piece
                    gc.collect()
                    try:
                        app.log("token", core.facade.token(digits))
                    except Exception as e:
                        # a bug or no memory halfway: part of the change may
                        # be in RAM, none of it on the flash. Restart from
                        # the flash state, as after a command that raised
                        # halfway (firmware/failedcmd.py); the customer
                        # types the token again and it is credited once
                        app.log("token", "internal error", repr(e))
                        app.board.reset()
                        return
                    app.state_dirty = True
            elif k is not None and len(digits) < _MAX_DIGITS:
                core.keypad_digits = digits + k
            app.lcd_due = True
        await asyncio.sleep_ms(_POLL_MS)
