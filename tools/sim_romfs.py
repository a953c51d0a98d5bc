# The ROMFS half of tools/sim_entry.py's power-on sequence (docs/ota.md, "In
# the sim"), run by it with exec() only when the code comes from a ROMFS
# image, so that a meter run from .mpy files (the files route) carries none
# of its bytecode in the heap. It runs in sim_entry's globals.
# The board's romslot.py (frozen into its MicroPython) picks the slot at
# power-up; here tools/sim_romslot.py does, in a process of its own, and
# leaves in the board's folder the slot's image and its size, and whether
# the firmware has a switch to report. boot.py sees a stand-in for romslot
# (below) and drops it, as it drops the board's, once it has put what it
# chose on the board; an update runs tools/sim_romslot.py itself
# (firmware/boards/sim_ota.py). Every name left here would stay in this
# process's heap, which the board's has not: they are all deleted.
import gc
import os
import vfs
_i = sys.argv.index("--romfs")
_img = sys.argv[_i + 1]
del sys.argv[_i:_i + 2]
_f = sys.argv[sys.argv.index("--flash") + 1]
# tools/sim_romslot.py's command line up to the slot running (the names
# and short strings here cost this heap: as few as can be)
_img = " ".join((sys.executable, sys.argv[0][:-8] + "romslot.py", _f, _img,
                 open("/proc/self/stat").read().split()[0]))
if os.system(" ".join((_img, "0", "boot") + tuple(sys.argv))):
    raise SystemExit("sim_entry: the slot choice failed")
with open(_f + "/romslot.boot") as _src:
    _i = _src.read().split()

class romslot:
    """romslot as boot.py sees it: the choice tools/sim_romslot.py made,
    and failed() run there."""
    running, due = int(_i[0]), _i[1] == "1"
    cmd = " ".join((_img, _i[0], "failed"))

    def boot(self):
        pass   # made by tools/sim_romslot.py, mounted below

    def failed(self):
        import os
        os.system(self.cmd)   # on trial it ends this process, as the board's reset

sys.modules["romslot"] = romslot()
# the slot's image into the heap, in one block (the board maps it from
# flash), its size printed: tools/simmeter.py gives the process that
# much more heap and takes it off the heap figures
gc.collect()
_before = gc.mem_alloc()
_rom = bytearray(int(_i[4]))
with open(_i[3], "rb") as _f:
    _f.readinto(_rom)
vfs.mount(vfs.VfsRom(_rom), "/rom")
sys.path[:0] = ["/rom", "/rom/lib"]
gc.collect()
print("SIM-ROM", gc.mem_alloc() - _before)
del _i, _img, _f, _before, gc, os, vfs, romslot
