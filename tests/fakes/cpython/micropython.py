# CPython stand-in for MicroPython's `micropython` module, only so that
# tools/esp32_coverage.py can run boards/esp32.py under `coverage` (MicroPython
# has no settrace). Never on MicroPython's path: there the real module is used.
# Allocation cannot be locked in CPython; the heap_lock proofs are made by the
# MicroPython run of the same exercise (tests/test_esp32_board.py).

_lock_depth = [0]


def const(x):
    return x


def native(f):
    return f


def viper(f):
    return f


def schedule(fn, arg):
    # the MicroPython scheduler runs it soon after; here, at once
    fn(arg)


def heap_lock():
    _lock_depth[0] += 1


def heap_unlock():
    _lock_depth[0] -= 1
    return _lock_depth[0]


def heap_locked():
    return _lock_depth[0]


def alloc_emergency_exception_buf(size):
    pass


def mem_info(verbose=False):
    pass


_kbd_intr = [3]


def kbd_intr(chr):
    # the interrupt character: -1 makes Ctrl-C an ordinary byte on the console
    # (the REPL's board.console_io); the ESP32's UART interrupt reads it
    _kbd_intr[0] = chr
