# A fake of MicroPython's `esp32` module (docs.micropython.org: library/esp32,
# classes PCNT and Partition), with the documented signatures, constants and
# behaviour the board relies on:
# - PCNT: a 16-bit unit that resets to 0 on reaching `max` (raising IRQ_MAX and
#   IRQ_ZERO), whose handler runs later via the scheduler with events
#   coalesced into flags(), and whose value() first runs a pending handler.
# - Partition: a flash partition with the simple and extended block protocol,
#   NOR semantics (a program only clears bits, erase sets 0xFF), backed by a
#   host file so a real vfs.VfsLfs2 can format and mount it.
# Test side: add_partition(), pcnt_unit(id), PCNT.pulses(n, deliver),
# PCNT.deliver(), PCNT.on_value (a hook run inside value() after the read).

HEAP_DATA = 4
HEAP_EXEC = 1
WAKEUP_ALL_LOW = 0
WAKEUP_ANY_HIGH = 1

_units = {}


def reset_fakes():
    _units.clear()
    del _table[:]


def pcnt_unit(id):
    """The PCNT unit the board configured (the hardware unit is a singleton)."""
    return _units[id]


class _PCNTIRQ:
    def __init__(self, unit):
        self._unit = unit

    def flags(self):
        # reading the flags clears them (documented)
        f = self._unit._flags
        self._unit._flags = 0
        return f

    def trigger(self):
        return self._unit._trigger


class PCNT:
    IGNORE = 0
    INCREMENT = 1
    DECREMENT = 2
    NORMAL = 0
    REVERSE = 1
    HOLD = 2
    IRQ_THRESHOLD1 = 0x04
    IRQ_THRESHOLD0 = 0x08
    IRQ_MIN = 0x10
    IRQ_MAX = 0x20
    IRQ_ZERO = 0x40

    def __init__(self, id, **kw):
        if not (0 <= id <= 7):
            raise ValueError("invalid id")
        self.id = id
        self._count = 0
        self._min = 0
        self._max = 0
        self._filter = 0
        self._pin = None
        self._rising = PCNT.IGNORE
        self._falling = PCNT.IGNORE
        self._running = False
        self._handler = None
        self._trigger = 0
        self._flags = 0
        self._irq = _PCNTIRQ(self)
        self.on_value = None
        _units[id] = self
        self.init(**kw)

    def init(self, *, channel=0, pin=None, rising=None, falling=None, mode_pin=None,
             mode_low=None, mode_high=None, filter=None, min=None, max=None,
             threshold0=None, threshold1=None, value=None):
        if pin is not None:
            self._pin = pin
        if rising is not None or falling is not None:
            self._rising = PCNT.IGNORE if rising is None else rising
            self._falling = PCNT.IGNORE if falling is None else falling
        if filter is not None:
            if not (0 <= filter <= 1023):
                raise ValueError("filter")
            self._filter = filter
        if min is not None:
            if not (-32768 <= min <= 0):
                raise ValueError("min")
            self._min = min
            self._count = 0
        if max is not None:
            if not (0 <= max <= 32767):
                raise ValueError("max")
            self._max = max
            self._count = 0       # setting a limit implies value=0 (documented)
        if value is not None:
            if value != 0:
                raise ValueError("value")
            self._count = 0

    def start(self):
        self._running = True

    def stop(self):
        self._running = False

    def deinit(self):
        self._running = False
        self._handler = None

    def irq(self, handler=None, trigger=IRQ_ZERO, **kw):
        if handler is not None or kw or trigger != PCNT.IRQ_ZERO:
            self._handler = handler
            self._trigger = trigger if handler is not None else 0
        return self._irq

    def _flush(self):
        if self._flags and self._handler is not None:
            self._handler(self)
            if self._flags:
                # the firmware's value() loops until the flags are clear
                raise RuntimeError("PCNT handler did not read irq().flags(): value() would spin")

    def value(self, value=None):
        self._flush()
        v = self._count
        if self.on_value is not None:
            hook = self.on_value
            self.on_value = None
            hook()
        if value is not None:
            if value != 0:
                raise ValueError("value")
            self._count = 0
        return v

    # --- test side
    def pulses(self, n, deliver=True):
        """`n` rising edges on the input. With deliver, the scheduler runs the
        handler right after each IRQ; without, events wait (and coalesce)."""
        if not self._running or self._rising != PCNT.INCREMENT:
            return
        while n > 0:
            step = n
            if self._max and self._max - self._count < step:
                step = self._max - self._count
            self._count += step
            n -= step
            if self._max and self._count >= self._max:
                self._count = 0
                self._flags |= (PCNT.IRQ_MAX | PCNT.IRQ_ZERO) & self._trigger
                if deliver:
                    self.deliver()

    def deliver(self):
        """The scheduler runs the pending handler (nothing if none pending)."""
        if self._flags and self._handler is not None:
            self._handler(self)


# --- flash partitions ----------------------------------------------------------
_table = []     # [type, subtype, addr, size, label, path]


def add_partition(label, size, path, type=1, subtype=0x83, addr=0x300000):
    """Add a partition backed by host file `path` (created erased if missing).
    Subtype 0x83 is ESP-IDF's "littlefs" data subtype."""
    try:
        open(path, "rb").close()
    except OSError:
        with open(path, "wb") as f:
            blank = b"\xff" * 4096
            for _ in range(size // 4096):
                f.write(blank)
    _table.append([type, subtype, addr, size, label, path])


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=4096):
        if id in (Partition.BOOT, Partition.RUNNING):
            row = None
            for r in _table:
                if r[0] == Partition.TYPE_APP:
                    row = r
                    break
        else:
            row = None
            for r in _table:
                if r[4] == id:
                    row = r
                    break
        if row is None:
            raise OSError(2)   # ENOENT
        self._open(row, block_size)

    def _open(self, row, block_size):
        self._row = row
        self.block_size = block_size
        self.erases = 0
        self.progs = 0
        self._f = open(row[5], "r+b")

    @classmethod
    def find(cls, type=0, subtype=0xff, label=None, block_size=4096):
        out = []
        for r in _table:
            if r[0] == type and (subtype == 0xff or r[1] == subtype) and (label is None or r[4] == label):
                out.append(cls(r[4], block_size))
        return out

    def info(self):
        r = self._row
        return (r[0], r[1], r[2], r[3], r[4], False)

    def readblocks(self, block_num, buf, offset=0):
        self._f.seek(block_num * self.block_size + offset)
        self._f.readinto(buf)

    def writeblocks(self, block_num, buf, offset=None):
        if offset is None:
            # simple protocol: erase each whole block first
            for i in range(len(buf) // self.block_size):
                self.ioctl(6, block_num + i)
            offset = 0
        pos = block_num * self.block_size + offset
        old = bytearray(len(buf))
        self._f.seek(pos)
        self._f.readinto(old)
        for i in range(len(buf)):
            old[i] &= buf[i]          # NOR flash: a program only clears bits
        self._f.seek(pos)
        self._f.write(old)
        self._f.flush()
        self.progs += 1

    def ioctl(self, cmd, arg):
        if cmd == 4:
            return self._row[3] // self.block_size
        if cmd == 5:
            return self.block_size
        if cmd == 6:
            self._f.seek(arg * self.block_size)
            self._f.write(b"\xff" * self.block_size)
            self._f.flush()
            self.erases += 1
            return 0
        if cmd in (1, 2, 3):
            return 0
        return None

    def set_boot(self):
        pass

    def get_next_update(self):
        raise OSError(2)

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        pass
