# Bounded communication log: the last N link happenings, so a technician or the
# head-end ("query" what=commlog) can see why a meter was unreachable.
# Entries: [utc_s, code, detail]. Codes in use (docs/protocol.md):
#   conn  session up (detail: connect count)
#   disc  session down (detail: cause)
#   sig   signal strength (detail: dBm)
#   cmd   command received (detail: "<kind>:<ctr>")
#   ack   ack sent (detail: result or reason)
#   big   oversized command read through and dropped (detail: payload bytes,
#         then " ?" when it could not be answered)
# RAM only, fixed size: a ring of preallocated slots, oldest overwritten.
from micropython import const

from firmware.link.protocol import encodable

_SIZE = const(32)
_DETAIL_MAX = const(24)


def _clean(s):
    # Details go into signed canonical JSON: what the codec cannot spell as it
    # is becomes "?".
    if encodable(s, _DETAIL_MAX):
        return s
    return "".join(c if encodable(c, 1) else "?" for c in s)


class CommLog:
    def __init__(self, now_s=None, size=_SIZE):
        # now_s() -> utc seconds, or 0/None before the clock is set
        self._now = now_s or (lambda: 0)
        self._t = [0] * size
        self._code = [""] * size
        self._detail = [""] * size
        self._next = 0
        self.count = 0   # entries ever written, so readers can tell what scrolled off

    def add(self, code, detail=""):
        i = self._next
        self._t[i] = self._now() or 0
        self._code[i] = code
        if type(detail) is str:
            detail = _clean(detail[:_DETAIL_MAX])
        self._detail[i] = detail
        self._next = (i + 1) % len(self._t)
        self.count += 1

    def note_log(self, parts, connects):
        """Keep what of one meter log line (App.log's words) the head-end
        may need: the link's and the modem's happenings, a short detail
        each. connects: the session's connect count (None without one)."""
        if len(parts) < 2:
            return
        if parts[0] == "link":
            what = parts[1]
            if what == "up":
                self.add("conn", "" if connects is None else str(connects))
            elif what == "down":
                self.add("disc", str(parts[2] if len(parts) > 2 else ""))
            elif what == "connect failed" and len(parts) > 3:  # rate-limited by the session
                self.add("fail", str(parts[3]))
        elif parts[0] == "modem":
            self.add("modem", " ".join(str(p) for p in parts[1:]))

    def entries(self):
        """Oldest first, as lists ready for a canonical ack."""
        size = len(self._t)
        n = min(self.count, size)
        start = (self._next - n) % size
        out = []
        for k in range(n):
            i = (start + k) % size
            out.append([self._t[i], self._code[i], self._detail[i]])
        return out
