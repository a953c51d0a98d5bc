# Power-on sequence of the simulated board: run boot.py, then main.py, in one
# set of globals, exactly as the ESP32's MicroPython does after a reset.
# Usage: micropython tools/sim_entry.py --flash DIR --control PORT [--config FILE] ...
_g = {"__name__": "__main__"}
for _f in ("boot.py", "main.py"):
    with open(_f) as _src:
        exec(_src.read(), _g)
