# The MQTT wire pieces under the session (firmware/link/session.py): the
# pipe umqtt's client writes into and reads one received packet from, the
# fixed header's length decoding, and the read-through of a PUBLISH too big
# to hold. No socket and no timing here: the session owns those.
from micropython import const

from firmware.link.protocol import HEAD_BYTES

TOPIC_MAX = const(64)        # meters/<id>/cmd is at most 43
_CAPTURE = 5 + 2 + TOPIC_MAX + 2 + HEAD_BYTES  # what is kept of an oversized PUBLISH


class NeedMore(Exception):
    # umqtt asked for bytes that have not arrived: it has finished writing its
    # request, and the reply will be handled by the session's receive loop
    pass


class Pipe:
    """What umqtt's client sees as its socket."""

    def __init__(self):
        self.tx = bytearray()
        self.rx = b""
        self.pos = 0

    def write(self, buf, n=None):
        if isinstance(buf, str):
            buf = buf.encode()
        if n is None:
            self.tx.extend(buf)
        else:
            self.tx.extend(memoryview(buf)[:n])
        return n if n is not None else len(buf)

    def read(self, n):
        end = self.pos + n
        if end > len(self.rx):
            raise NeedMore()
        if end == len(self.rx):
            # the packet's last read, a PUBLISH's payload: a view of the
            # session's receive buffer, not a copy (Session.run)
            b = memoryview(self.rx)[self.pos:]
        else:
            b = bytes(self.rx[self.pos:end])
        self.pos = end
        return b

    def load(self, packet):
        self.rx = packet
        self.pos = 0

    def setblocking(self, flag):
        pass

    def close(self):
        pass

    # umqtt.connect() calls socket.socket() and socket.getaddrinfo()
    def socket(self):
        return self

    def getaddrinfo(self, host, port):
        return [(0, 0, 0, "", None)]

    def connect(self, addr):
        pass


class Drop(Exception):
    pass


def packet_len(buf):
    """(length of the first MQTT packet in buf, length of its fixed header),
    or (0, 0) while its fixed header is incomplete."""
    n = 0
    shift = 0
    i = 1
    while True:
        if i >= len(buf):
            return 0, 0
        b = buf[i]
        n |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            break
        shift += 7
        if shift > 21:
            raise Drop("bad length")
    return i + n, i


class BigPublish:
    """An oversized PUBLISH, read through as it arrives and dropped: only its
    first _CAPTURE bytes (fixed header, topic, packet id, the head of the
    payload) and the packet id are kept, whatever its length."""

    def __init__(self, flags, total, hdr):
        self.qos = (flags >> 1) & 3
        self.total = total       # bytes of the whole packet
        self.hdr = hdr           # bytes of its fixed header
        self.seen = 0            # bytes of it consumed so far
        self.cap = bytearray(_CAPTURE)
        self.pid_off = -1        # offset of the packet id, once the topic length is in
        self.pid = 0

    @property
    def left(self):
        return self.total - self.seen

    def take(self, mv):
        """Consume the packet's next bytes (a memoryview no longer than left)."""
        at = self.seen
        n = len(mv)
        if at < _CAPTURE:
            k = min(n, _CAPTURE - at)
            self.cap[at:at + k] = mv[:k]
        self.seen = at + n
        if self.pid_off < 0 and self.seen >= self.hdr + 2:
            tl = self.cap[self.hdr] << 8 | self.cap[self.hdr + 1]
            self.pid_off = self.hdr + 2 + tl
        po = self.pid_off
        if self.qos and po >= 0:
            for k in (0, 1):  # the two bytes of the packet id, wherever they fall
                if at <= po + k < at + n:
                    self.pid = self.pid << 8 | mv[po + k - at]

    def topic(self):
        tl = self.pid_off - self.hdr - 2
        if tl > TOPIC_MAX:
            return None  # too long to have kept: not ours
        return bytes(self.cap[self.hdr + 2:self.hdr + 2 + tl])

    def head(self):
        start = self.pid_off + (2 if self.qos else 0)
        end = min(_CAPTURE, start + HEAD_BYTES, self.total)
        return bytes(self.cap[start:end]) if start < end else b""

    def size(self):
        """Bytes of the payload."""
        return self.total - self.pid_off - (2 if self.qos else 0)
