# Runs first after every reset. Keep it tiny and safe: if the query button is
# held at power-up, skip the application so a technician can still reach the
# REPL on a board whose config or firmware is broken.
import sys

try:
    from firmware.boards.select import make_board
    _board = make_board()
    SKIP_APP = _board.maintenance_held()
except Exception as e:  # a broken board module must not lock us out
    sys.print_exception(e)
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
