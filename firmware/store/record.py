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
