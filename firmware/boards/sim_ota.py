# The sim board's side of an over-the-air update (docs/ota.md): the two romfs
# slot files and romslot.py's record, loaded only while an update (or its
# report, or a control request about one) runs and dropped after it
# (firmware/ota/cleanup.py), so that it costs the meter nothing at rest.
# romslot.py itself runs in a process of its own, tools/sim_romslot.py, as
# on the board it runs from code frozen outside both slots.
import os
import sys

from firmware.boards import flashdev

_BLOCKS = 64   # 256 KB a slot


class Slots:
    """The romfs pair as an update sees it: romfs_a.img (slot 0) and
    romfs_b.img (slot 1) in the board's folder, `running` the one this boot
    runs (boot.py's board.slots). The hardware revision is SIM.1 unless the
    sim was started with --hw-rev."""

    def __init__(self, board):
        self.board = board
        self.running = board.slots[0]
        a = sys.argv
        self.hw = a[a.index("--hw-rev") + 1] if "--hw-rev" in a else "SIM.1"
        self._dev = None

    def dev(self):
        """The slot this boot does not run from, which the update writes: a
        256 KB NOR-flash file (flashdev, 4 KB blocks) on the same chip as
        the data flash, so it stalls as that one does (--flash-timing). A
        power cut armed by the "arm_ota_cut" control request before it was
        opened is armed on it now."""
        if self._dev is None:
            b = self.board
            d = self._dev = flashdev.FileBlockDev("%s/romfs_%s.img" % (b.dir, "ab"[1 - self.running]), _BLOCKS)
            d.timing = b.flash_dev.timing
            cut = getattr(b, "ota_cut", None)
            if cut:
                b.ota_cut = None
                arm(b, d, cut)
        return self._dev

    def size(self):
        return _BLOCKS * 4096

    def record(self):
        return self._call("record")

    def switch(self, version):
        self._call("switch", version)

    def confirm(self):
        self._call("confirm")

    def _call(self, op, *args):
        # tools/sim_romslot.py FLASH_DIR DEPLOYED_IMAGE METER_PID RUNNING OP
        # [ARG]; its answer is left in FLASH_DIR/romslot.out (the deployed
        # image matters only to the power-up's call, "-" here)
        d = self.board.dir
        pid = open("/proc/self/stat").read().split()[0]
        cmd = (sys.executable, sys.argv[0][:-8] + "romslot.py", d, "-", pid, str(self.running), op)
        if os.system(" ".join(cmd + tuple(str(a) for a in args))):
            raise OSError(5)   # as a failed NVS access on the board
        with open(d + "/romslot.out") as f:
            a = f.read().split()
        return tuple(int(x) for x in a) if a else None


def arm(board, dev, cut):
    dev.arm_cut(*cut)
    dev.on_cut = board._cut_now


def control(app, board, req):
    """The sim's control requests about an update (docs/simulator.md):
    "ota", the view as a list, not an object, whose field names would cost
    names (tests/test_ota.py's Rig.ota() names them: the slot running, the
    record, a job kept, the download's status); "arm_ota_cut", a power cut
    at the n-th write into the update's slot (as "arm_cut" for the data
    flash, with torn_bytes of that write landing): on the download's slot
    when one is open, else on the next one opened."""
    a = app.ota
    a = a if a not in (None, True) else None
    if req["cmd"] == "arm_ota_cut":
        cut = (int(req["after_writes"]), int(req.get("torn_bytes", 0)))
        if a and a.slots._dev:
            arm(board, a.slots._dev, cut)
        else:
            board.ota_cut = cut
        return {"ok": True}
    try:
        job = bool(os.stat(board.flash_root() + "/ota-job.json"))
    except OSError:
        job = False
    sl = board.slots
    rec = board.ota().record() if sl else None
    return {"ok": True, "ota": [sl and sl[0], rec, job, a and a.status]}
