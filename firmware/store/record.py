# One framed record: the unit the store writes into a slot file.
#
#   0  2  magic b"PR"
#   2  1  format version (1)
#   3  1  kind: 0 = snapshot, 1 = hot checkpoint
#   4  4  seq, little-endian u32, grows by one per record of that kind
#   8  4  base: the snapshot seq a hot record builds on (0 for snapshots)
#  12  2  payload length
#  14  n  payload (UTF-8 JSON)
#  14+n 4 CRC-32 of bytes 0 .. 14+n
#
# The CRC covers the header too, so a flipped bit anywhere, a truncation, a
# zeroed or erased (0xFF) block all fail decode() instead of yielding a value.
import binascii
import io
import json
import struct
from micropython import const

KIND_SNAP = const(0)
KIND_HOT = const(1)
OVERHEAD = const(18)
_HEAD = "<2sBBIIH"
_HEAD_LEN = const(14)
_VERSION = const(1)
_MAGIC = b"PR"


def encode(kind, seq, base, payload):
    head = struct.pack(_HEAD, _MAGIC, _VERSION, kind, seq, base, len(payload))
    crc = binascii.crc32(payload, binascii.crc32(head))
    return head + payload + struct.pack("<I", crc)


class _Sink(io.IOBase):
    # json.dump() target: counts the bytes and folds them into a CRC, and
    # passes them on to the open files, if any.
    def __init__(self, files=(), crc=0):
        self.files = files
        self.n = 0
        self.crc = crc

    def write(self, b):
        self.n += len(b)
        self.crc = binascii.crc32(b, self.crc)
        for f in self.files:
            f.write(b)
        return len(b)

    def emit(self, obj, separators):
        # obj: a JSON-able value; or a function giving the (key, value) pairs of
        # a JSON object, built one at a time as they are written
        # (core/durable.py), whose values may be such functions or generators
        # too; a generator's items are written as a JSON array, one at a time
        if callable(obj):
            sep = "{"
            for key, v in obj():
                self.write(sep)
                sep = separators[0]
                json.dump(key, self)
                self.write(separators[1])
                self.emit(v, separators)
                v = None   # garbage before the next member is built
            self.write("{}" if sep == "{" else "}")
        elif type(obj) is _GENERATOR:
            sep = "["
            for v in obj:
                self.write(sep)
                sep = separators[0]
                json.dump(v, self, separators=separators)
            self.write("[]" if sep == "[" else "]")
        else:
            json.dump(obj, self, separators=separators)


def _gen():
    yield


_GENERATOR = type(_gen())


def measure(obj, separators):
    """Length of `obj` as JSON (or a function giving its members: dump),
    found without building the text."""
    probe = _Sink()
    probe.emit(obj, separators)
    return probe.n


def dump(f, kind, seq, base, obj, separators, n):
    """Write `obj` as JSON in one framed record to the open file `f`, never
    holding the encoded record in RAM: a full state runs to several KB, and
    after days of running an ESP32-sized heap has no free block that large,
    while json.dump() emits small pieces. `n` is measure(obj): the header,
    which holds the length, goes first. `obj` may be a function giving the
    (key, value) pairs of a JSON object: it is called for each write and
    must give the same text each time (checked)."""
    head = struct.pack(_HEAD, _MAGIC, _VERSION, kind, seq, base, n)
    f.write(head)
    sink = _Sink((f,), binascii.crc32(head))
    sink.emit(obj, separators)
    if sink.n != n:
        raise ValueError("record changed while written")
    f.write(struct.pack("<I", sink.crc))


def check(f, kind, buf):
    """The seq of the whole, intact record of `kind` in the open file `f`
    (read from its start), else None: what decode() accepts, read through
    `buf` (a bytearray of at least 14 bytes) instead of held whole."""
    mv = memoryview(buf)
    if f.readinto(mv[:_HEAD_LEN]) != _HEAD_LEN:
        return None
    magic, ver, k, seq, _, n = struct.unpack_from(_HEAD, buf, 0)
    if magic != _MAGIC or ver != _VERSION or k != kind:
        return None
    crc = binascii.crc32(mv[:_HEAD_LEN])
    while n:
        got = f.readinto(mv[:min(n, len(buf))])
        if not got:
            return None
        crc = binascii.crc32(mv[:got], crc)
        n -= got
    # the CRC, and nothing after it
    if f.readinto(mv[:5]) != 4 or struct.unpack_from("<I", buf, 0)[0] != crc:
        return None
    return seq


def decode(buf, kind):
    """Return (seq, base, payload) for a whole, intact record of `kind`,
    else None (damaged, truncated, padded, foreign or of another kind)."""
    if buf is None or len(buf) < OVERHEAD:
        return None
    magic, ver, k, seq, base, n = struct.unpack_from(_HEAD, buf, 0)
    if magic != _MAGIC or ver != _VERSION or k != kind or len(buf) != OVERHEAD + n:
        return None
    end = _HEAD_LEN + n
    if struct.unpack_from("<I", buf, end)[0] != binascii.crc32(memoryview(buf)[:end]):
        return None
    return seq, base, bytes(memoryview(buf)[_HEAD_LEN:end])
