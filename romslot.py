# Which of the two romfs slots the meter boots, and the boot counter that
# rolls a new version back when it never becomes healthy (docs/ota.md).
#
# It runs before any firmware is imported, so it lives outside both slots:
# frozen into the board's MicroPython image on the ESP32
# (boards/METER_ESP32/manifest_base.py); neither slot can change it, so a
# bad image can never take away the way back. On the unix port
# tools/sim_romslot.py runs it in a process of its own, at each power-up and
# for each call the firmware makes (record, switch, confirm, failed).
#
# boot.py calls boot() (and failed()), puts what boot() found (running,
# due) on the board object, and drops this module: a frozen module's code
# stays in flash, but its functions and globals would sit in the heap for
# good. An update loads it again, through the board's side of it
# (boards/esp32_ota.py), for record(), switch() and confirm().
#
# The record is 20 bytes, kept where a write is all-or-nothing: a key in the
# ESP32's NVS (esp32.NVS commits atomically), a file replaced by rename on
# the sim. No record (a board fresh from `make deploy`) means slot 0,
# confirmed. A record that fails its CRC is treated the same way.
#
# At every power-up `choose()`:
# - confirmed: boot `active`;
# - on trial (just switched): count the boot and boot `active`, unless it
#   has already had MAX_TRIAL_BOOTS boots without being confirmed: then the
#   record goes back to the other slot, with note ROLLED_BACK, and that
#   slot boots. The firmware confirms a trial once it is healthy (link up,
#   state published: firmware/ota/health.py) and reports the note.
import struct
from binascii import crc32

MAX_TRIAL_BOOTS = 3
# a trial boot that is not healthy this long after power-up restarts (so a
# version that runs but never links is still counted out); the platform's
# timer does it, outside the slot's code
TRIAL_MS = 600000
NOTE_NONE = 0
NOTE_SWITCHED = 1      # on trial or confirmed after a switch: report "installed" once
NOTE_ROLLED_BACK = 2   # back on the old slot: report "rolled_back" once
_FMT = "<4sBBBBII"     # magic, active, trial, boots, note, version, previous version
_MAGIC = b"RSL1"

# the platform: load() -> bytes or None, save(bytes), mount(slot); set by
# the sim's launcher, else the ESP32's (below) at the first use
platform = None
running = 0            # the slot this boot runs from (boot() sets it, boot.py reads it)
due = False            # a switch or a roll-back the firmware has still to report


def parse(raw):
    """(active, trial, boots, note, version, prev_version), or None for no
    record or a torn one."""
    if not raw or len(raw) != 20 or crc32(raw[:16]) != struct.unpack("<I", raw[16:])[0]:
        return None
    r = struct.unpack(_FMT, raw[:16])
    return r[1:] if r[0] == _MAGIC else None


def pack(active, trial, boots, note, version, prev_version):
    body = struct.pack(_FMT, _MAGIC, active, trial, boots, note, version, prev_version)
    return body + struct.pack("<I", crc32(body))


def choose(rec):
    """(slot to boot, record to save first or None) for record `rec`."""
    if rec is None:
        return 0, None
    active, trial, boots, note, ver, prev = rec
    if not trial:
        return active, None
    if boots >= MAX_TRIAL_BOOTS:
        # the boots the bad version had stay in the record, for the report
        return 1 - active, pack(1 - active, 0, boots, NOTE_ROLLED_BACK, prev, ver)
    return active, pack(active, 1, boots + 1, note, ver, prev)


def _platform():
    global platform
    if platform is None:
        platform = Esp32Slots()
    return platform


def record():
    return parse(_platform().load())


def save(raw):
    _platform().save(raw)


def boot():
    """At power-up, before the firmware: pick the slot, count a trial boot
    (saved before the slot's code runs, so a crash still counts), mount it,
    and on a trial start the deadline."""
    global running, due
    rec = record()
    slot, new = choose(rec)
    if new is not None:
        save(new)
        rec = parse(new)
    p = _platform()
    p.mount(slot)
    running = slot
    due = bool(rec and (rec[1] or rec[3]))
    if rec and rec[1]:
        p.deadline(TRIAL_MS)
    return slot


def failed():
    """boot.py and main.py call this when the slot's code raised before the
    meter ran: on a trial boot the board restarts (and the boot counts);
    otherwise they go on as before (maintenance, the REPL)."""
    r = record()
    if r and r[1]:
        _platform().reset()


def switch(running, version):
    """The slot this boot does not run from (`running` is the one it
    does: this import may not be boot()'s) holds `version`, whole and
    checked (firmware/ota/agent.py): boot it from the next power-up on, on
    trial."""
    rec = record()
    save(pack(1 - running, 1, 0, NOTE_SWITCHED, version, rec[4] if rec else 0))


def confirm():
    """The switch or the roll-back is reported (firmware/ota/health.py): the
    record closes (a trial becomes confirmed) and the deadline stops."""
    rec = record()
    if rec:
        save(pack(rec[0], 0, 0, NOTE_NONE, rec[4], rec[5]))
    _platform().deadline(0)


class Esp32Slots:
    # The ESP32: the record in NVS; slot 0 is the `romfs` partition, which
    # MicroPython maps at /rom at start-up; slot 1 is `romfs_b`, ROMFS
    # segment 1 of the board's build (docs/ota.md, "On the ESP32").
    def __init__(self):
        import esp32
        self.nvs = esp32.NVS("romslot")

    def load(self):
        buf = bytearray(20)
        try:
            return bytes(buf[:self.nvs.get_blob("rec", buf)])
        except OSError:     # no record yet
            return None

    def save(self, raw):
        self.nvs.set_blob("rec", raw)
        self.nvs.commit()

    def mount(self, slot):
        if slot:
            import vfs
            vfs.umount("/rom")
            vfs.mount(vfs.VfsRom(vfs.rom_ioctl(2, slot)), "/rom")

    def deadline(self, ms):
        # hardware timer 3 (the ADC's is 0: boards/pins.py); its callback
        # runs in the scheduler, so a reset from it is clean
        import machine
        t = machine.Timer(3)
        if ms:
            t.init(mode=machine.Timer.ONE_SHOT, period=ms, callback=self.reset)
        else:
            t.deinit()

    def reset(self, _=None):
        import machine
        machine.reset()
