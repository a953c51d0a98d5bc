# Runs first after every reset. Keep it tiny and safe: if the query button is
# held at power-up, skip the application so a technician can still reach the
# REPL on a board whose config or firmware is broken.
import sys

try:
    # which romfs slot to run, and its boot counter (docs/ota.md): outside
    # both slots, frozen into MicroPython on the board
    import romslot
    romslot.boot()
except ImportError:  # firmware deployed as files: there are no slots
    romslot = None
except Exception as e:  # no record to read: the slot mapped at start-up runs
    sys.print_exception(e)
try:
    from firmware.boards.select import make_board
    _board = make_board()
    if romslot:
        # all the firmware keeps of romslot (docs/ota.md): the slot this
        # boot runs, and whether a switch or a roll-back waits to be
        # reported. On the board's class, which has the entry already: on
        # the instance it would grow the board's dict (a few hundred bytes)
        type(_board).slots = (romslot.running, romslot.due)
    SKIP_APP = _board.maintenance_held()
except Exception as e:  # a broken board module must not lock us out
    sys.print_exception(e)
    if romslot:
        romslot.failed()  # a version on trial that cannot boot: restart, counted
    _board = None
    SKIP_APP = True
if SKIP_APP:
    print("boot: maintenance mode, application not started")
    if _board is not None:
        try:   # the LCD self-test: every pixel on, then off (a dead pixel shows)
            import time
            from firmware.ui.render import selftest
            selftest(_board, 1)
            time.sleep_ms(800)
            selftest(_board, 0)
        except Exception as e:
            sys.print_exception(e)
elif romslot:
    try:   # main.py imports it next; a version on trial whose app will not load restarts, counted
        from firmware import app
    except Exception as e:
        sys.print_exception(e)
        romslot.failed()
if romslot:   # its functions and globals out of the heap (an update loads it again)
    del sys.modules["romslot"]
del romslot
