# Power-on sequence of the simulated board: run boot.py, then main.py, in one
# set of globals, exactly as the ESP32's MicroPython does after a reset.
# Usage: micropython tools/sim_entry.py [--romfs IMG] --flash DIR --control PORT [--config FILE] ...
#
# --romfs IMG: the firmware's code comes from a ROMFS image, mounted at /rom
# with /rom and /rom/lib on sys.path, as the ESP32 firmware built with ROMFS
# does at power-up; its bytecode then runs in place instead of being copied
# into the heap (docs/deploy.md, "ROMFS"). IMG is the romfs partition as
# deployed; boot.py's romslot.boot() picks the slot (the deployed one, or
# the one an over-the-air update switched to: docs/ota.md) and mounts it
# (tools/sim_romslot.py, which also reads --trial-ms N: the trial deadline of
# a just-switched version, romslot.TRIAL_MS on the board, shortened for tests).
import sys

# (execfile, not exec of the file's text: a text read whole can stay
# reachable from a stale pointer long after, kilobytes the board never has
# in its heap)
if "--romfs" in sys.argv:
    # the slot choice, the romslot stand-in and the image mounted at /rom:
    # tools/sim_romfs.py (its code in the heap only on this route)
    execfile(sys.argv[0][:-8] + "romfs.py")

_g = {"__name__": "__main__"}
for _f in ("boot.py", "main.py"):
    execfile(_f, _g)
# the REPL after it (micropython -i, the maintenance mode's plain REPL) sees
# boot.py's names (_board, SKIP_APP), as on the ESP32
globals().update(_g)
