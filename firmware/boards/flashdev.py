# A LittleFS block device backed by a host file, for the simulated board.
# It speaks the extended block protocol that vfs.VfsLfs2 uses on the ESP32
# (readblocks/writeblocks with an offset, erase via ioctl 6), with the ESP32's
# 4096-byte erase blocks, so the filesystem behaves as it would on the board.
#
# It behaves like NOR flash, because power-cut tests are only honest if the
# sim fails the way the chip does:
# - a program can only clear bits (new = old AND data); erase sets all to 0xFF;
# - every program and erase is counted per block, for the flash-wear budget;
# - a power cut can be armed at the Nth write operation (program or erase).
#   That operation is torn: only its first `torn_bytes` bytes land (0 = none).
#   From then on the device is dead (`dead` is True): every read, program
#   and erase fails with -EIO and changes nothing, until the image is mounted
#   again on a new device. Failing with an error code, not an exception,
#   is what a real block device does (vfs turns exceptions into errors
#   anyway); the filesystem call in progress raises OSError(EIO), and the
#   caller that simulates the meter checks `dead` to tell a cut from a bug.
#   `on_cut` (optional) runs at the cut: the sim can end its process there
#   (e.g. os.system("kill -9 $PPID")), as the CPU would stop.
# - optionally (`timing`), each erase and program takes as long as on the
#   board's flash chip, and nothing else runs meanwhile: on the ESP32 the
#   caches are off during a flash operation, so the CPU and interrupts stall;
#   time.sleep_us here stalls the whole MicroPython process the same way (no
#   task, scheduled callback or control request runs). Figures and their
#   source: docs/storage.md, "Flash timing". Off by default (tests run fast).
# The unix port's files are unbuffered (each write is a write(2) into the
# host's page cache), so a SIGKILL of the process also leaves the image as
# the chip would be after a cut; no fsync is needed, the host stays up.
import time
from array import array

from micropython import const

_BLOCK_SIZE = const(4096)
_CHUNK = const(256)  # scratch size: LittleFS programs at most its 128-byte cache
_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_ERASE = const(6)


_EIO = const(-5)

# Flash timing, microseconds, from the Winbond W25Q32JV datasheet (the 4 MB
# SPI NOR class of an ESP32-WROOM-32): a 4 KB sector erase (tSE) and a
# 256-byte page program (tPP), typical and maximum.
_ERASE_TYP_US = const(45000)
_ERASE_MAX_US = const(400000)
_PAGE_TYP_US = const(400)
_PAGE_MAX_US = const(3000)
_PAGE = const(256)


def timing(mode, n=1):
    """The (erase_us, page_us) a device stalls for in `mode` ("typ" or
    "max"; None or "" for no stall), each multiplied by `n`: the slowdown a
    board sees with PPP active (docs/storage.md, "Flash timing")."""
    if not mode:
        return None
    if mode == "max":
        return (_ERASE_MAX_US * n, _PAGE_MAX_US * n)
    return (_ERASE_TYP_US * n, _PAGE_TYP_US * n)


class FileBlockDev:
    def __init__(self, path, block_count=256, cut_at=0, torn_bytes=0, on_cut=None):
        self.block_count = block_count
        # wear and activity counters, per block, since this object was made
        self.erases = array("I", bytes(4 * block_count))
        self.progs = 0      # programs, all blocks (a per-block count was 1 KB of heap the board has not)
        self.writes = 0  # program + erase operations
        self.dead = False
        self.on_cut = on_cut
        self.timing = None   # (erase_us, page_us) to stall per operation, timing()
        self.stall_us = 0    # time stalled so far
        self._scratch = bytearray(_CHUNK)
        self._blank = b"\xff" * _CHUNK
        self.arm_cut(cut_at, torn_bytes)
        try:
            self.f = open(path, "r+b")
        except OSError:
            self.f = open(path, "w+b")
            for _ in range(block_count * _BLOCK_SIZE // _CHUNK):
                self.f.write(self._blank)

    # -- fault injection -------------------------------------------------

    def arm_cut(self, nth, torn_bytes=0):
        """Cut power at the `nth` write operation from now (1 = the next one);
        0 disarms. Only `torn_bytes` bytes of that operation reach the flash;
        for an erase they are the first bytes of the block set to 0xFF."""
        self._cut_left = nth
        self._torn = torn_bytes

    def _op(self):
        # Called before each write operation on a live device; returns how
        # many bytes of it may land, or -1 for all of them.
        self.writes += 1
        if self._cut_left:
            self._cut_left -= 1
            if not self._cut_left:
                self.dead = True
                return self._torn
        return -1

    # -- block protocol ----------------------------------------------------

    def readblocks(self, block, buf, offset=0):
        if self.dead:
            return _EIO
        self.f.seek(block * _BLOCK_SIZE + offset)
        self.f.readinto(buf)
        return 0

    def writeblocks(self, block, buf, offset=0):
        if self.dead:
            return _EIO
        land = self._op()
        self.progs += 1
        n = len(buf)
        if self.timing:
            # one page program per 256-byte page the write touches, taking
            # its share of tPP, but at least an eighth of it: the fixed cost
            # of a program command (the datasheet's first-byte time)
            us = 0
            pos = offset
            while pos < offset + n:
                k = min(offset + n, (pos // _PAGE + 1) * _PAGE) - pos
                us += max(self.timing[1] >> 3, self.timing[1] * k // _PAGE)
                pos += k
            self.stall_us += us
            time.sleep_us(us)   # the CPU stalls: nothing else runs
        if 0 <= land < n:
            n = land
        pos = block * _BLOCK_SIZE + offset
        done = 0
        # NOR program: bits only go from 1 to 0
        while done < n:
            k = min(_CHUNK, n - done)
            old = memoryview(self._scratch)[:k]
            self.f.seek(pos + done)
            self.f.readinto(old)
            for i in range(k):
                old[i] &= buf[done + i]
            self.f.seek(pos + done)
            self.f.write(old)
            done += k
        return self._after()

    def _after(self):
        if not self.dead:
            return 0
        if self.on_cut:
            self.on_cut()
        return _EIO

    def ioctl(self, op, arg):
        if op == _IOCTL_BLOCK_COUNT:
            return self.block_count
        if op == _IOCTL_BLOCK_SIZE:
            return _BLOCK_SIZE
        if op == _IOCTL_ERASE:
            if self.dead:
                return _EIO
            land = self._op()
            self.erases[arg] += 1
            if self.timing:
                self.stall_us += self.timing[0]
                time.sleep_us(self.timing[0])
            n = _BLOCK_SIZE if land < 0 else min(land, _BLOCK_SIZE)
            self.f.seek(arg * _BLOCK_SIZE)
            while n > 0:
                k = min(_CHUNK, n)
                self.f.write(memoryview(self._blank)[:k])
                n -= k
            return self._after()
        return 0 if op in (1, 2, 3) else None

    def blank_beyond_superblock(self):
        """True when no block past the superblock pair (0 and 1) was ever
        programmed: the flash holds no data, so formatting it loses nothing."""
        buf = self._scratch
        for b in range(2, self.block_count):
            for off in range(0, _BLOCK_SIZE, _CHUNK):
                self.readblocks(b, buf, off)
                if buf != self._blank:
                    return False
        return True

    # -- wear figures ------------------------------------------------------

    def max_erases(self):
        return max(self.erases)

    def total_erases(self):
        return sum(self.erases)

    def close(self):
        self.dead = True
        self.f.close()


def mount(path, mountpoint="/flash", block_count=256, cut_at=0, torn_bytes=0, on_cut=None):
    """Mount a LittleFS v2 image kept in a host file, formatting it only when it
    holds no data (first boot, or a cut during the first format).
    An image that holds data but does not mount is never formatted: the device
    is returned with `mount_error` set and nothing at `mountpoint`, so the
    store reports a fault instead of a silent factory reset.
    Returns the device, whose counters and arm_cut() the sim and tests use."""
    import vfs
    dev = FileBlockDev(path, block_count)
    dev.mount_error = None
    try:
        vfs.mount(vfs.VfsLfs2(dev), mountpoint)
    except OSError as e:
        if not dev.blank_beyond_superblock():
            dev.mount_error = e
            return dev
        vfs.VfsLfs2.mkfs(dev)
        vfs.mount(vfs.VfsLfs2(dev), mountpoint)
    # armed only after mounting, so a cut falls among the meter's own writes
    dev.arm_cut(cut_at, torn_bytes)
    dev.on_cut = on_cut
    return dev
