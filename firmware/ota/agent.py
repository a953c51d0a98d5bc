# The download of an accepted update into the inactive romfs slot, then the
# switch (docs/ota.md). An asyncio task beside the meter's, started by the
# app when an offer is accepted or a job is found at boot; loaded only then,
# and at its end it lets go of everything it held (the app's references,
# its subscription, the modules: firmware/ota/cleanup.py), so that none of
# it stays in the heap but the names it interned (the pools never shrink).
#
# The meter asks for what it lacks: it requests frames (1 KB each, four to a
# 4 KB chunk) on meters/<id>/otareq and the head-end answers on
# meters/<id>/ota. Nothing about the progress is written: after a link drop
# or a power cut the agent hashes the slot's chunks from the start against
# the signed chunk table and asks again from the first one that is not
# right, so the flash it spends is the image's own.
#
# Flash budget: one flash operation (a block erase, or a 1 KB program) and
# then at least GAP_MS of nothing, so the meter task, which shares the
# loop, runs between any two; on the ESP32 an erase stalls the CPU for
# 40-80 ms, well inside the meter's 1 s tick.
import asyncio
import binascii
import hashlib
import os
import time

from firmware.link import protocol as P
from firmware.ota import offer as O

FRAME = 1024
_PER_CHUNK = 4            # frames per chunk
GAP_MS = 100              # quiet time after each flash operation
WAIT_MS = 3000            # nothing came for this long: ask again
_TRIES = 5                # requests with the link up and no answer: give up
# frames asked for at once: one. Each arrives as a message of its own, in
# the session's receive buffer, and waits for its flash write in the
# agent's one frame buffer (made with the agent, at the download's start),
# so a download allocates no 1 KB piece per frame, late in a month when the
# heap's holes are small (docs/benchmarks.md, "Memory budget")
_AHEAD = 1
_CHUNK_TRIES = 3          # a chunk that will not hash right: give up
_READ = 256               # read-back piece (the only buffer the check needs)


class Failed(Exception):
    pass


_app = None   # the app whose download this module runs (restart() needs it)


def start(app):
    """The download's task, for an offer just taken or a job found at boot."""
    global _app
    _app = app
    app.ota = a = Agent(app)
    app.tasks["ota"] = asyncio.create_task(a.run())


def restart():
    """A new job replaced the one the running download works from
    (offer.py): that download stops at its next wait and one starts on the
    new job (what the slot already holds of it is kept by the rehash)."""
    app = _app
    if app is not None and isinstance(app.ota, Agent):
        app.tasks.pop("ota").cancel()
        start(app)


class Agent:
    def __init__(self, app):
        self.app = app
        self.board = app.board
        self.slots = app.board.ota()   # the romfs pair: boards/*_ota.py
        self.root = app.board.flash_root()
        self.m = O.job(self.root)
        self.frame = bytearray(8 + FRAME)   # the received frame not yet written
        self.held = 0         # its bytes; 0: none held
        self.want = None      # (object, frame index) the next frame must be
        self.status = "idle"
        self.chunk = 0        # chunks in place (progress, for the state view)
        self.flash_ops = 0
        t = "meters/" + app.meter_id + "/"
        self.topic_in = (t + "ota").encode()
        self.topic_req = (t + "otareq").encode()
        self._buf = bytearray(_READ)
        self._want = bytearray(32)   # a chunk's hash, read from the table file

    # --- frames from the head-end (App.on_message): header 8 bytes,
    # 1, object (0 table, 1 image), tag (4 bytes of the image's sha256),
    # frame index (big-endian), then the data
    def on_message(self, p):
        # p: a view of the session's receive buffer, copied if it is the frame wanted
        if self.want is None or len(p) < 9 or len(p) > len(self.frame) or p[0] != 1 or self.held:
            return
        if bytes(p[2:6]) != self.tag or (p[1], p[6] << 8 | p[7]) != self.want:
            return   # another bundle's, a repeat, or out of order: asked again later
        self.frame[:len(p)] = p
        self.held = len(p)
        self.want = (p[1], self.want[1] + 1)

    async def run(self):
        """The whole update; it ends (and the app forgets the agent) with
        the switch, a failure reported, or no job to do."""
        m = self.m
        try:
            if m is not None:
                self.tag = binascii.unhexlify(m["sha"][:8])
                await self._update(m)
        except Failed as e:
            self._end("failed", str(e))
        except Exception as e:   # a bug: reported, never left half done
            import sys
            sys.print_exception(e)
            self._end("failed", "internal")
        finally:
            if self.app.ota is self:   # not replaced by a restart on a new job
                self._release()

    def _release(self):
        app = self.app
        app.ota = None
        app.tasks.pop("ota", None)
        s = app.session
        if s and (self.topic_in, 0) in s.subs:
            s.subs.remove((self.topic_in, 0))   # frames that still come are dropped by the app
        import sys
        sys.modules.pop(__name__, None)
        from firmware.ota import cleanup
        cleanup.unload()   # offer.py (the app's sign of a new offer), boards/*_ota.py, the rest

    async def _update(self, m):
        dev = self.slots.dev()
        self.status = "table"
        if not self._have_table(m):
            await self._fetch_table(m)
        # resume: the first chunk that does not hash right
        self.status = "scan"
        k = 0
        while k < m["chunks"] and self._chunk_ok(dev, k):
            k += 1
            await asyncio.sleep_ms(0)
        self.status = "fetch"
        while k < m["chunks"]:
            self.chunk = k
            for _ in range(_CHUNK_TRIES):
                await self._fill(dev, k)
                if self._chunk_ok(dev, k):
                    break
            else:
                raise Failed("chunk_hash")
            k += 1
        self.chunk = k
        self.status = "verify"
        if not self._image_ok(dev):
            raise Failed("image_hash")
        self._switch(m)

    def _size(self, k):
        return min(O.CHUNK, self.m["size"] - k * O.CHUNK)

    async def _fill(self, dev, k):
        dev.ioctl(6, k)          # erase the block
        await self._gap()
        n = (self._size(k) + FRAME - 1) // FRAME

        async def program(i, data):
            dev.writeblocks(k, data, (i - k * _PER_CHUNK) * FRAME)
            await self._gap()
        await self._fetch(1, k * _PER_CHUNK, n, program)

    async def _gap(self):
        self.flash_ops += 1
        await asyncio.sleep_ms(GAP_MS)

    async def _fetch(self, obj, first, n, sink):
        """Frames first .. first+n-1 of `obj`, each handed to sink(i, data)
        in order; asks again from the first one missing."""
        i, end, tries = first, first + n, 0
        while i < end:
            self.want = (obj, i)
            self.held = 0
            s = self.app.session
            if s and (self.topic_in, 0) not in s.subs:
                s.subscribe(self.topic_in, 0)   # made again by the session on every connect
            stop = min(end, i + _AHEAD)
            asked = bool(s and s.up and s.publish(self.topic_req, self._request(obj, i, stop - i), False, 0))
            t0 = time.ticks_ms()
            while i < stop and time.ticks_diff(time.ticks_ms(), t0) < WAIT_MS:
                if self.held:
                    await sink(i, memoryview(self.frame)[8:self.held])
                    self.held = 0
                    i += 1
                    t0 = time.ticks_ms()
                    tries = 0
                else:
                    await asyncio.sleep_ms(20)
            if i < stop and asked:
                tries += 1
                if tries >= _TRIES:
                    raise Failed("timeout")
        self.want = None

    def _request(self, obj, first, n):
        return P.sign(P.Signer(self.app.key), {"v": 1, "meter": self.app.meter_id, "kind": "otareq",
                                               "tag": self.m["sha"][:8], "obj": obj, "first": first, "n": n})

    def _hash_chunk(self, dev, k, h):
        mv = memoryview(self._buf)
        n, off = self._size(k), 0
        while off < n:
            c = min(_READ, n - off)
            dev.readblocks(k, mv[:c], off)
            h.update(mv[:c])
            off += c
        return h

    def _chunk_ok(self, dev, k):
        with open(self.root + O.TABLE, "rb") as f:   # chunk k's hash, 32 B at k * 32
            f.seek(k * 32)
            f.readinto(self._want)
        return self._hash_chunk(dev, k, hashlib.sha256()).digest() == self._want

    def _image_ok(self, dev):
        h = hashlib.sha256()
        for k in range(self.m["chunks"]):
            self._hash_chunk(dev, k, h)
        return binascii.hexlify(h.digest()).decode() == self.m["sha"]

    def _have_table(self, m):
        # the table file is there only once checked (renamed into place)
        try:
            return os.stat(self.root + O.TABLE)[6] == m["chunks"] * 32
        except OSError:
            return False

    async def _fetch_table(self, m):
        """The chunk hashes (32 B a chunk: 1.2 KB for a whole image),
        streamed to the flash and hashed on the way, so that they are never
        one piece of the heap (late in a month the 1.2 KB block was not
        there: stop 22); renamed into place once their hash is right."""
        tlen = m["chunks"] * 32
        path = self.root + O.TABLE
        h = hashlib.sha256()
        got = [0]
        with open(path + ".new", "wb") as f:
            async def keep(i, data):
                n = min(len(data), tlen - i * FRAME)
                if n > 0:
                    f.write(data[:n])
                    h.update(data[:n])
                got[0] += len(data)
            await self._fetch(0, 0, (tlen + FRAME - 1) // FRAME, keep)
        if got[0] != tlen or binascii.hexlify(h.digest()).decode() != m["tsha"]:
            raise Failed("table_hash")
        os.rename(path + ".new", path)

    def _switch(self, m):
        """The image is whole and checked: the job goes, then one record
        write makes the other slot the one to boot, on trial; the meter
        commits its state and restarts into it. A cut before the record
        write leaves the old slot (and a re-offer finds every chunk in
        place); after it, the new slot boots on trial."""
        O.drop(self.root)
        self.status = "switch"
        self.slots.switch(m["ver"])
        app = self.app
        app.log("ota", "switching to version %d" % m["ver"])
        core = app.core
        core.begin()
        try:
            core.durable.commit()
        finally:
            core.end()
        self.board.reset()

    def _end(self, result, reason):
        """A download that cannot finish: the job goes, the slot stays
        inactive, and the head-end hears why (an outbox event)."""
        O.drop(self.root)
        self.status = result + " " + reason
        self.want = None
        app = self.app
        app.log("ota", result, reason)
        app.core.events.add("ota", {"result": result, "reason": reason, "ver": self.m["ver"]})
        app.state_dirty = True
