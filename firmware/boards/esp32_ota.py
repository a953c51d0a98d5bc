# The ESP32 board's side of an over-the-air update (docs/ota.md): the two
# romfs partitions and romslot.py's record, loaded only while an update (or
# its report) runs and dropped after it (firmware/ota/cleanup.py), so that
# neither this module nor romslot sits in the heap at rest.
import esp32

import romslot   # frozen into the board's MicroPython: its code costs no heap

_BLOCK = 4096


class Slots:
    """The romfs pair as an update sees it. Slot 0 is the `romfs`
    partition, slot 1 `romfs_b` (boards/METER_ESP32/partitions.csv);
    `running` is the one this boot runs (boot.py's board.slots)."""
    hw = "METER_ESP32.1"   # the hardware revision a bundle must name

    def __init__(self, running):
        self.running = running
        self._dev = None

    def dev(self):
        """The slot this boot does not run from, which the update writes:
        esp32.Partition speaks the block protocol (4 KB blocks, erase by
        ioctl 6)."""
        if self._dev is None:
            self._dev = esp32.Partition("romfs_b" if self.running == 0 else "romfs")
        return self._dev

    def size(self):
        return self.dev().ioctl(4, 0) * _BLOCK

    def record(self):
        return romslot.record()

    def switch(self, version):
        romslot.switch(self.running, version)

    def confirm(self):
        romslot.confirm()
