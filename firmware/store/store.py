# Power-safe state on LittleFS. The scheme (docs/storage.md has the why):
#
#   <root>/store/a/snap, b/snap   the full state, one framed record each: a
#                                 commit writes one copy, mirror() brings the
#                                 other level at the next quiet moment
#   <root>/store/ha/hot, hb/hot   small "hot" checkpoints (energy, balance)
#                                 written alternately; each names the snapshot
#                                 seq it builds on and overrides its keys
#
# What LittleFS guarantees and we rely on: a file's new contents become
# visible only when it is closed, all at once; a directory rename is atomic.
# What we add: a CRC and a sequence number per record, so damage at rest is
# detected and the other copy used. Every copy has its own directory, hence
# its own LittleFS metadata pair: small files live inline in that metadata,
# and damage to one metadata block must not take both copies with it. Hot
# records stay inline, so a checkpoint costs a metadata append, not a 4 KB
# block erase.
#
# One erase per commit. A snapshot copy does not fit inline: each rewrite
# erases a 4 KB block (45 ms of stalled CPU on an ESP32, docs/storage.md,
# "Flash timing"). So commit() writes one copy, the one that does not hold
# the newest commit, and returns: that copy alone is durable. The other is
# then exactly one commit behind (`behind`) until mirror() copies the newest
# over it, byte for byte, at the meter tick (core/durable.py, tidy()). A
# second commit before that writes the older copy again, so the copies are
# never more than one commit apart, and nothing is brought level on a
# commit's path. That keeps load()'s rule: a copy one commit behind is what
# a cut leaves (ok, repaired), anything else is damage (recovered). The
# window it costs: damage to the newest copy while the other is behind
# falls back to the commit before, reported as recovered.
import json
import os
from micropython import const

from firmware.store import record
from firmware.transient import once

HOT_MAX = const(128)  # LittleFS inline limit with MicroPython's 128-byte cache
# The file layout, here once: build.py is handed the names it needs.
_NEW = "/store.new"   # a first build, not yet renamed into place as /store
_SNAP = ("a/snap", "b/snap")
_HOT = ("ha/hot", "hb/hot")
_DIRS = ("a", "b", "ha", "hb")
_SEP = (",", ":")
_CHUNK = const(256)   # mirror()'s copy buffer

# fault code -> number shown on the LCD as "E<n>"
FAULT_LCD = {
    "fs": 51,            # the data filesystem did not mount
    "snap_missing": 52,  # store directory present, both snapshot files gone
    "snap_crc": 53,      # no snapshot copy passes its CRC
    "snap_lost": 54,     # a hot record builds on a snapshot no copy holds
    "hot_lost": 55,      # neither hot record is readable: energy since the
                         # last snapshot is unknown
}


class StoreFault(Exception):
    """Raised by writes while the store is in fault (or not yet loaded)."""


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _write(path, buf):
    # LittleFS commits the new contents at close(), atomically.
    with open(path, "wb") as f:
        f.write(buf)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


class Store:
    def __init__(self, root="/flash"):
        self.root = root
        self.dir = root + "/store"
        self.snap_seq = 0
        self.hot_seq = 0
        self._cur = 0       # index into _SNAP of the copy holding the newest commit
        self.behind = False  # the other copy is a commit behind (or damaged): mirror() is due
        self._hot_next = 0
        self._factory = False
        self.ready = False
        self.fault = None  # fault code while in fault, else None
        self._held_lcd = 0  # LCD number of a fault from outside the store (hold())

    def _faulted(self, code, evidence):
        self.fault = code
        self.ready = False
        return evidence, "fault:" + code

    def lcd_code(self):
        """The error number the LCD shows while in fault, else 0."""
        return FAULT_LCD.get(self.fault, self._held_lcd) if self.fault else 0

    def hold(self, code, lcd):
        """Fault for a reason found outside the store (a provisioning file the
        app cannot use, firmware/config.py): the same safe state, nothing
        written, until the next boot."""
        self.fault = code
        self.ready = False
        self._held_lcd = lcd

    def load(self):
        """Read the newest intact state. Returns (state, status):
        - (None, "factory"): no store on this flash yet; build the state from
          provisioning and commit() it;
        - (state, "ok"): as last committed/checkpointed;
        - (state, "recovered"): a damaged or missing copy was detected and
          the state came from the redundant one (emit an event);
        - (evidence, "fault:<code>"): no trustworthy state. `evidence` is the
          best partial state or None, for a technician, never for billing.
          Writes raise StoreFault until restore()."""
        self.ready = False
        self.fault = None
        self._factory = False
        if not _exists(self.root):
            return self._faulted("fs", None)
        if not _exists(self.dir):
            # A first commit cut short leaves store.new behind: still factory.
            once("firmware.store.build").remove_tree(self.root + _NEW)
            self.snap_seq = self.hot_seq = self._hot_next = 0
            self._factory = self.ready = True
            return None, "factory"
        raw = [_read(self.dir + "/" + n) for n in _SNAP]
        recs = [record.decode(b, record.KIND_SNAP) for b in raw]
        if not recs[0] and not recs[1]:
            missing = raw[0] is None and raw[1] is None
            return self._faulted("snap_missing" if missing else "snap_crc", None)
        best = 0 if recs[0] and (not recs[1] or recs[0][0] >= recs[1][0]) else 1
        seq = recs[best][0]
        state = json.loads(recs[best][2])
        other = recs[1 - best]
        self.snap_seq = seq
        # A cut after a commit, before mirror() brought the other copy level
        # (or during that copy), leaves it exactly one commit behind:
        # expected, repaired, not news. Anything else is.
        status = "ok" if other and other[0] >= seq - 1 else "recovered"
        if not other or other[0] != seq:
            _write(self.dir + "/" + _SNAP[1 - best], raw[best])
        self._cur = best
        self.behind = False

        hot = [record.decode(_read(self.dir + "/" + n), record.KIND_HOT) for n in _HOT]
        if not hot[0] and not hot[1]:
            return self._faulted("hot_lost", state)
        if not hot[0] or not hot[1]:
            status = "recovered"
        newest = None
        use = None
        for i in (0, 1):
            h = hot[i]
            if not h:
                continue
            if h[1] > seq:
                return self._faulted("snap_lost", state)
            if newest is None or h[0] > hot[newest][0]:
                newest = i
            if h[1] == seq and (use is None or h[0] > use[0]):
                use = h
        self.hot_seq = hot[newest][0]
        self._hot_next = 1 - newest
        if use:
            state.update(json.loads(use[2]))
        self.ready = True
        return state, status

    def commit(self, state):
        """Write the whole state (a JSON-able dict, or a function giving its
        members: record.dump) to one snapshot copy, the one that does not
        hold the newest commit. Durable when it returns; the other copy is
        then one commit behind until mirror(). Later hot checkpoints build
        on it. A commit that raises leaves the newest commit as it was (the
        copy it was writing may be damaged: `behind` stays set)."""
        if not self.ready:
            raise StoreFault(self.fault or "not loaded")
        seq = self.snap_seq + 1
        if self._factory:
            # The whole store is built in store.new and renamed into place
            # (build.py): a cut before the rename is still a factory flash.
            b = once("firmware.store.build")
            tmp = self.root + _NEW
            b.new_tree(tmp, _DIRS)
            self._write_fresh(tmp, state, seq)
            b.install(tmp, self.dir, self.root)
            self._factory = False
            return
        i = 1 - self._cur
        self.behind = True
        self._write_snaps(self.dir, state, seq, _SNAP[i:i + 1])
        self._cur = i
        self.snap_seq = seq

    def mirror(self):
        """Bring the copy that is a commit behind level with the newest, at a
        quiet moment (the meter tick: core/durable.py, tidy()): the newest
        copy's bytes, same seq, streamed through one small buffer. The
        newest is checked (CRC, seq) before anything is written, so damage
        it took since its commit is never copied over the older copy, the
        one good state left. Returns True when the copies are level (or
        nothing was due), False when the newest copy failed that check: the
        caller commits its state from RAM again, which writes the older copy.
        Its buffers are allocated before the copy it writes is opened: a
        MemoryError there leaves both copies as they were."""
        if not self.ready or not self.behind:
            return True
        d = self.dir + "/"
        buf = bytearray(_CHUNK)
        try:
            f = open(d + _SNAP[self._cur], "rb")
        except OSError:
            return False   # the newest copy is gone
        with f:
            if record.check(f, record.KIND_SNAP, buf) != self.snap_seq:
                return False
            tail = memoryview(buf)[:f.tell() % _CHUNK]
            f.seek(0)
            with open(d + _SNAP[1 - self._cur], "wb") as g:
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    g.write(buf if n == _CHUNK else tail)
        self.behind = False
        return True

    def _write_fresh(self, d, state, seq):
        # Both snapshots, and empty hot records as placeholders, so a missing
        # hot file later means damage.
        self._write_snaps(d, state, seq, _SNAP)
        self._cur = 0
        self.behind = False
        self.snap_seq = seq
        self.hot_seq += 1
        empty = record.encode(record.KIND_HOT, self.hot_seq, 0, b"{}")
        _write(d + "/" + _HOT[0], empty)
        _write(d + "/" + _HOT[1], empty)
        self._hot_next = 0

    def _write_snaps(self, d, state, seq, names):
        # Each copy is streamed (record.dump), so the encoded state is never
        # held in RAM. One copy at a time: LittleFS makes a file's new
        # contents visible at close(), so whatever stops a write (a cut, an
        # error halfway) damages at most the copy being written, and load()
        # takes the other.
        n = record.measure(state, _SEP)  # may raise: before any file is touched
        for name in names:
            with open(d + "/" + name, "wb") as f:
                record.dump(f, record.KIND_SNAP, seq, 0, state, _SEP, n)

    def checkpoint(self, patch):
        """Durably record a small dict whose keys override the last committed
        state on load (energy registers, remainder, balance). The encoded
        patch must stay within HOT_MAX - 18 bytes: that keeps it inside
        LittleFS metadata, where a write does not erase a block."""
        if not self.ready or self._factory:
            raise StoreFault(self.fault or "commit the factory state first")
        payload = json.dumps(patch, separators=_SEP).encode()
        if len(payload) + record.OVERHEAD > HOT_MAX:
            raise ValueError("hot patch too big: %d bytes" % len(payload))
        self.hot_seq += 1
        buf = record.encode(record.KIND_HOT, self.hot_seq, self.snap_seq, payload)
        _write(self.dir + "/" + _HOT[self._hot_next], buf)
        self._hot_next ^= 1

    def restore(self, state):
        """Leave a fault with a state the server or a technician vouches for.
        Damaged files are kept beside as *.bad for a post-mortem."""
        if self.fault == "fs":
            raise StoreFault("fs")
        b = once("firmware.store.build")
        b.set_aside(self.dir, _DIRS, _SNAP + _HOT)
        self._write_fresh(self.dir, state, self.snap_seq + 1)
        b.seal(self.root)
        b.seal(self.dir)
        self.fault = None
        self._factory = False
        self.ready = True
