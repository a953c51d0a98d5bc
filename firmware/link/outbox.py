# Persistent, bounded event outbox with the per-meter event seq.
# Events wait here until the broker has taken them (QoS 1 PUBACK, noted by
# link/delivery.py); delivery is at least once and the head-end de-duplicates
# by seq. Sent events stay as
# history until space is needed, so a "query events since" can replay them.
#
# When the outbox is full it makes room in this order:
#   1. the oldest already-sent event (telemetry first, credit and relay last);
#   2. the oldest unsent TELEMETRY event;
#   3. the oldest unsent _EVENT-class event (warnings, faults, tariff, frozen);
#   CRITICAL events (credit, relay) are never dropped: they may fill up to
#   hard_cap, beyond which add() refuses and the app must raise a fault.
# Dropped seqs are remembered (recent ones listed, all counted) for the state
# snapshot, so the head-end can tell a dropped event from a lost one.
#
# Persistence: the whole outbox is one small text file on LittleFS, written to
# "<path>.new" and renamed over "<path>" (rename is atomic on LittleFS). The
# file ends with a CRC32 line. "sent" marks are saved lazily (with the next
# save): after a cut an event may be sent twice, never lost. The meter adds
# events without saving (add(save=False)): its snapshot holds the events the
# file does not (tail()) until the file is next written, so a top-up's commit
# rewrites the snapshot alone, not the outbox's block as well (docs/storage.md,
# "What a top-up writes"); merge() takes them back at boot.
import os
from binascii import crc32

from micropython import const

from firmware.link import protocol as P

TELEMETRY = const(0)
_EVENT = const(1)
CRITICAL = const(2)

# Priority class of each event kind (docs/protocol.md, "Events").
PRIORITY = {
    "telemetry": TELEMETRY,
    "topup": CRITICAL,
    "ledger": CRITICAL,     # emergency-credit loans, repayments, adjustments
    "relay": CRITICAL,
    "warning": _EVENT,
    "fault": _EVENT,
    "tamper": _EVENT,
    "tariff": _EVENT,
    "mode": _EVENT,
    "frozen_daily": _EVENT,
    "frozen_monthly": _EVENT,
}
_CAP = const(24)
_HARD_CAP = const(48)
_DROPPED_KEPT = const(16)

_PRIO = const(0)
_SENT = const(1)
_SEQ = const(2)
_BODY = const(3)


class Outbox:
    def __init__(self, path, meter_id, cap=_CAP, hard_cap=_HARD_CAP, seq_floor=0):
        """seq_floor: the highest seq known from another record (e.g. the
        ledger), so seqs keep rising even if this file is lost."""
        self.path = path
        self.meter_id = meter_id
        self.cap = cap
        self.hard_cap = max(cap, hard_cap)
        self.entries = []         # [prio, sent, seq, canonical body bytes], oldest first
        self.next_seq = seq_floor + 1
        self.dropped = []         # most recent dropped seqs
        self.dropped_total = 0
        self.corrupt = False      # the file failed its CRC; it was kept as <path>.bad
        self._dirty = False
        self.saved_seq = 0        # the highest seq the file holds
        self._load()
        if self.next_seq <= seq_floor:
            self.next_seq = seq_floor + 1

    # -- producing
    def add(self, kind, fields, t, save=True):
        """Append an event; returns its seq, or None when it was not kept
        (telemetry with no room, or hard_cap full of critical events).
        save=False: the caller makes it durable (the meter's snapshot holds
        tail()) and the file is written later."""
        prio = PRIORITY.get(kind, _EVENT)
        dropped = self.dropped_total
        if not self._make_room(prio):
            return None
        seq = self.next_seq
        body = {"v": P.VERSION, "meter": self.meter_id, "seq": seq, "kind": kind, "t": t}
        for k in fields:
            body[k] = fields[k]
        data = P.canonical(body)
        self.next_seq = seq + 1
        self.entries.append([prio, 0, seq, data])
        # a dropped unsent event is news no snapshot's tail carries (it is
        # gone from the entries): the file is written at once (rare: only
        # an outbox full of unsent events drops one)
        if save or dropped != self.dropped_total:
            self.save()
        else:
            self._dirty = True
        return seq

    def tail(self):
        """The events the file does not hold, as [prio, seq, body text]
        rows for the meter's snapshot."""
        return [[e[_PRIO], e[_SEQ], e[_BODY].decode()] for e in self.entries if e[_SEQ] > self.saved_seq]

    def merge(self, rows):
        """Take back, unsent, the events a snapshot held beyond the file
        (tail()); rows the file already holds are skipped."""
        for prio, seq, body in rows or ():
            if seq > self.saved_seq and (not self.entries or seq > self.entries[-1][_SEQ]):
                self.entries.append([prio, 0, seq, body.encode()])
                if seq >= self.next_seq:
                    self.next_seq = seq + 1

    def can_add(self, prio):
        """True when an event of class `prio` would be kept now (add() makes
        room the same way). Lets a command be refused before it changes
        anything, rather than credited with no event to tell of it."""
        if len(self.entries) < self.cap:
            return True
        for e in self.entries:
            if e[_SENT] or e[_PRIO] == TELEMETRY or (prio != TELEMETRY and e[_PRIO] == _EVENT):
                return True
        return len(self.entries) < (self.hard_cap if prio == CRITICAL else self.cap)

    def _make_room(self, prio):
        limit = self.hard_cap if prio == CRITICAL else self.cap
        while len(self.entries) >= self.cap:
            if self._evict_sent() or self._evict_unsent(TELEMETRY):
                continue
            if prio == TELEMETRY:
                return False
            if self._evict_unsent(_EVENT):
                continue
            break
        return len(self.entries) < limit

    def _evict_sent(self):
        # Delivered history is kept for "query events since"; credit and relay
        # events are the ones a head-end most needs back, so they go last.
        for prio in (TELEMETRY, _EVENT, CRITICAL):
            for i in range(len(self.entries)):
                e = self.entries[i]
                if e[_SENT] and e[_PRIO] == prio:
                    self.entries.pop(i)
                    return True
        return False

    def _evict_unsent(self, prio):
        for i in range(len(self.entries)):
            e = self.entries[i]
            if e[_PRIO] == prio and not e[_SENT]:
                self.entries.pop(i)
                self.dropped.append(e[_SEQ])
                if len(self.dropped) > _DROPPED_KEPT:
                    self.dropped.pop(0)
                self.dropped_total += 1
                return True
        return False

    def forget_above(self, seq):
        """Drop every event above `seq` and go on from seq + 1: after a cut,
        the events the meter's durable state does not hold (their change was
        lost with the RAM), so none is published that the state contradicts."""
        if self.next_seq - 1 > seq:
            self.entries = [e for e in self.entries if e[_SEQ] <= seq]
            self.next_seq = seq + 1
            self.save()

    # -- consuming
    def peek(self, skip=()):
        """(seq, canonical body) of the oldest unsent event whose seq is not
        in `skip` (those on their way already), or None. Seal it with
        protocol.seal(signer, body) to publish."""
        for e in self.entries:
            if not e[_SENT] and e[_SEQ] not in skip:
                return e[_SEQ], e[_BODY]
        return None

    def mark_sent(self, seq):
        # sent = delivered: the broker has acknowledged it (link/delivery.py
        # is the one caller); until then an event counts as unsent
        for e in self.entries:
            if e[_SEQ] == seq:
                if not e[_SENT]:
                    e[_SENT] = 1
                    self._dirty = True
                return

    def rewind(self, since):
        """Mark every held event with seq > since unsent again. Returns
        (first, last) seq that will be re-sent, (0, 0) when none."""
        first = last = 0
        for e in self.entries:
            if e[_SEQ] > since:
                if e[_SENT]:
                    e[_SENT] = 0
                    self._dirty = True
                if not first:
                    first = e[_SEQ]
                last = e[_SEQ]
        return first, last

    def pending(self):
        n = 0
        for e in self.entries:
            if not e[_SENT]:
                n += 1
        return n

    def __len__(self):
        return len(self.entries)

    def flush(self):
        """Save lazy "sent" marks (call at a quiet moment, e.g. every minute)."""
        if self._dirty:
            self.save()

    # -- persistence
    def save(self):
        # Written piece by piece with a running CRC: joined, a full outbox is
        # several KB in one block, which a fragmented ESP32 heap may not have.
        tmp = self.path + ".new"
        with open(tmp, "wb") as f:
            crc = _put(f, b"OB1 %d %d " % (self.next_seq, self.dropped_total), 0)
            crc = _put(f, (",".join([str(s) for s in self.dropped]) or "-").encode(), crc)
            crc = _put(f, b"\n", crc)
            for e in self.entries:
                crc = _put(f, b"%d%d %d " % (e[_PRIO], e[_SENT], e[_SEQ]), crc)
                crc = _put(f, e[_BODY], crc)
                crc = _put(f, b"\n", crc)
            f.write(b"END %08x\n" % (crc & 0xFFFFFFFF))
        os.rename(tmp, self.path)
        self._dirty = False
        self.saved_seq = self.next_seq - 1

    def _load(self):
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError:
            return   # factory state: no outbox yet
        try:
            self._parse(data)
        except Exception:
            self.corrupt = True
            self.entries = []
            try:
                os.rename(self.path, self.path + ".bad")
            except OSError:
                pass

    def _parse(self, data):
        end = data.rfind(b"END ")
        if end < 0 or int(data[end + 4:end + 12], 16) != crc32(data[:end]) & 0xFFFFFFFF:
            raise ValueError("outbox crc")
        lines = data[:end].split(b"\n")
        head = lines[0].split(b" ")
        if head[0] != b"OB1":
            raise ValueError("outbox header")
        self.next_seq = int(head[1])
        self.saved_seq = self.next_seq - 1
        self.dropped_total = int(head[2])
        self.dropped = [] if head[3] == b"-" else [int(s) for s in head[3].split(b",")]
        entries = []
        for line in lines[1:]:
            if not line:
                continue
            sp1 = line.find(b" ")
            sp2 = line.find(b" ", sp1 + 1)
            entries.append([line[0] - 48, line[1] - 48, int(line[sp1 + 1:sp2]), line[sp2 + 1:]])
        self.entries = entries


def _put(f, b, crc):
    f.write(b)
    return crc32(b, crc)
