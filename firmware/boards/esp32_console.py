# The ESP32 board's console guard (Esp32Board.console_guard), loaded with the
# technician's REPL (firmware/repl/session.py) rather than at boot.
import micropython
from machine import Timer

from firmware.boards import pins


class Guard:
    """While a technician's statement runs: the UART's Ctrl-C raises
    KeyboardInterrupt in it (kbd_intr(3), the UART interrupt does it), and a
    one-shot timer raises one when the statement outlives its budget. The
    timer's callback runs scheduled, where an exception would be caught, so
    it schedules the interrupt itself: micropython.schedule(kbd_intr, None)
    (MicroPython v1.29 and later) raises it in the main program."""

    def __init__(self, budget_ms):
        self.budget_ms = budget_ms
        self.timer = Timer(pins.CONSOLE_TIMER_ID)
        self.fired = False
        self.why = None

    def _fire(self, _t):
        self.fired = True
        self.why = "budget"
        micropython.schedule(micropython.kbd_intr, None)

    def arm(self):
        self.fired = False
        self.why = None
        micropython.kbd_intr(3)
        self.timer.init(mode=Timer.ONE_SHOT, period=self.budget_ms, callback=self._fire)

    def disarm(self):
        self.timer.deinit()
        micropython.kbd_intr(-1)
        return self.fired

    typed = b""   # the UART buffers what is typed meanwhile; the REPL reads it next
