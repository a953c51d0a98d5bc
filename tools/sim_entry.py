# Power-on sequence of the simulated board: run boot.py, then main.py, in one
# set of globals, exactly as the ESP32's MicroPython does after a reset.
# Usage: micropython tools/sim_entry.py [--romfs IMG] --flash DIR --control PORT [--config FILE] ...
#
# --romfs IMG: the firmware's code comes from a ROMFS image, mounted at /rom
# with /rom and /rom/lib on sys.path, as the ESP32 firmware built with ROMFS
# does at power-up; its bytecode then runs in place instead of being copied
# into the heap (docs/deploy.md, "ROMFS"). The board maps the image from
# flash; here it has to sit in the heap, so it is read first, into one
# block, and its size printed ("SIM-ROM <bytes>"): tools/simmeter.py gives
# the process that much more heap and takes it off the heap figures, so the
# firmware has the board's heap to itself.
import sys

if "--romfs" in sys.argv:
    import gc
    import os
    import vfs
    _i = sys.argv.index("--romfs")
    _img = sys.argv[_i + 1]
    del sys.argv[_i:_i + 2]
    gc.collect()
    _before = gc.mem_alloc()
    _rom = bytearray(os.stat(_img)[6])
    with open(_img, "rb") as _f:
        _f.readinto(_rom)
    vfs.mount(vfs.VfsRom(_rom), "/rom")
    sys.path[:0] = ["/rom", "/rom/lib"]
    gc.collect()
    print("SIM-ROM", gc.mem_alloc() - _before)
    del _i, _img, _f, _before, gc, os, vfs

_g = {"__name__": "__main__"}
for _f in ("boot.py", "main.py"):
    with open(_f) as _src:
        exec(_src.read(), _g)
# the REPL after it (micropython -i, the maintenance mode's plain REPL) sees
# boot.py's names (_board, SKIP_APP), as on the ESP32
globals().update(_g)
