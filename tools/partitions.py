"""The meter board's ESP-IDF partition table (boards/METER_ESP32/partitions.csv),
read on the host: the one place that says how big the romfs and data
partitions are, for tools/compile_mpy.py (the ROMFS image must fit), the
board stand-in of the tests, and tests/test_board_image.py.

It reads the CSV as ESP-IDF's gen_esp32part.py documents it: one partition a
line, `name, type, subtype, offset, size, flags`, `#` comments; numbers in
decimal or 0x hex, with an optional K or M suffix; an empty offset follows
the previous partition, rounded up to the alignment of its type (app 64 KB,
data 4 KB). It does not generate the binary table; ESP-IDF does that.
"""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARD_DIR = os.path.join(ROOT, "boards", "METER_ESP32")
TABLE = os.path.join(BOARD_DIR, "partitions.csv")

FLASH_BYTES = 4 * 1024 * 1024       # the module's flash (ESP32-WROOM-32, 4 MB)
TABLE_OFFSET = 0x8000               # ESP-IDF's default place of the table itself
TABLE_BYTES = 0x1000
ALIGN = {"app": 0x10000, "data": 0x1000}
ROMFS_LABEL = "romfs"               # the partition MicroPython mounts at /rom
ROMFS_SPARE_LABEL = "romfs_b"       # the other slot of the A/B pair (OTA stages here)


class Partition:
    def __init__(self, name, type_, subtype, offset, size, flags, line):
        self.name, self.type, self.subtype = name, type_, subtype
        self.offset, self.size, self.flags, self.line = offset, size, flags, line

    @property
    def end(self):
        return self.offset + self.size

    def __repr__(self):
        return "<%s %s/%s 0x%x+0x%x>" % (self.name, self.type, self.subtype, self.offset, self.size)


def number(text):
    """'0x1F0000', '64K', '1M', '4096' -> int."""
    t = text.strip().upper()
    mult = 1
    if t.endswith("K"):
        mult, t = 1024, t[:-1]
    elif t.endswith("M"):
        mult, t = 1024 * 1024, t[:-1]
    return int(t, 16 if t.startswith("0X") else 10) * mult


def read(path=TABLE):
    """The partitions of the table, in file order. Raises ValueError naming
    the line for a line that is not a partition."""
    parts = []
    nxt = TABLE_OFFSET + TABLE_BYTES
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            cells = [c.strip() for c in line.split(",")]
            if len(cells) < 5:
                raise ValueError("%s:%d: a partition needs name, type, subtype, offset, size: %r"
                                 % (path, n, raw.strip()))
            name, type_, subtype, offset, size = cells[:5]
            if type_ not in ALIGN:
                raise ValueError("%s:%d: type %r is neither app nor data" % (path, n, type_))
            align = ALIGN[type_]
            off = number(offset) if offset else (nxt + align - 1) // align * align
            p = Partition(name, type_, subtype, off, number(size), cells[5] if len(cells) > 5 else "", n)
            parts.append(p)
            nxt = p.end
    return parts


def problems(parts, flash_bytes=FLASH_BYTES):
    """What ESP-IDF would refuse, or what would break the board: misaligned
    offsets or sizes, overlaps (with each other or the bootloader and the
    table), partitions past the end of flash, duplicate names."""
    out = []
    names = [p.name for p in parts]
    for p in parts:
        align = ALIGN[p.type]
        if p.offset % align:
            out.append("%s: offset 0x%x is not a multiple of 0x%x (%s partitions)" % (p.name, p.offset, align, p.type))
        if p.size % 0x1000:
            out.append("%s: size 0x%x is not a whole number of 4 KB flash sectors" % (p.name, p.size))
        if p.offset < TABLE_OFFSET + TABLE_BYTES:
            out.append("%s: starts at 0x%x, inside the bootloader or the partition table" % (p.name, p.offset))
        if p.end > flash_bytes:
            out.append("%s: ends at 0x%x, past the %d-byte flash" % (p.name, p.end, flash_bytes))
        if names.count(p.name) > 1:
            out.append("%s: the name is used twice" % p.name)
        if len(p.name) > 16:
            out.append("%s: names have at most 16 characters" % p.name)
    by_offset = sorted(parts, key=lambda p: p.offset)
    for a, b in zip(by_offset, by_offset[1:]):
        if a.end > b.offset:
            out.append("%s and %s overlap (0x%x > 0x%x)" % (a.name, b.name, a.end, b.offset))
    return out


def find(label, parts=None):
    for p in parts if parts is not None else read():
        if p.name == label:
            return p
    raise KeyError("no partition %r in %s" % (label, TABLE))


def romfs_bytes():
    """Room for a ROMFS image: the size of the romfs partition."""
    return find(ROMFS_LABEL).size


if __name__ == "__main__":
    table = read()
    for p in table:
        print("%-10s %-4s %-8s 0x%06x %7d bytes" % (p.name, p.type, p.subtype, p.offset, p.size))
    bad = problems(table)
    for line in bad:
        print("problem:", line)
    raise SystemExit(1 if bad else 0)
