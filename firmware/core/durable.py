# The meter's durability: what the flash holds of the meter's state, and when
# it is written (docs/storage.md, "The meter's records").
#
# - A full snapshot is committed after anything that is not plain charging:
#   a command, a press, any engine or metering event, a closed charge entry,
#   a day change (`dirty`). Top-ups are acknowledged only after that commit.
# - Between snapshots, plain charging is saved in small hot checkpoints
#   (CheckpointPolicy: at most 10 Wh or 60 s at risk). A hot checkpoint holds
#   the exact money (balance, sub-unit remainder) and energy totals, so a cut
#   never changes the balance the customer saw at the last checkpoint.
# - `seq` is the highest event seq the flash holds (a snapshot or a hot
#   record carries it): the app publishes no event above it.
#
# - A commit writes one snapshot copy, one 4 KB block erase; the meter tick
#   brings the other copy level (tidy(), Store.mirror()).
# - Events are not written to the outbox file as they are added: the
#   snapshot carries those the file does not hold yet ("obt"), so a top-up's
#   commit erases the snapshot copy's block, not the outbox's as well. The
#   meter tick writes the file (tidy()) once _TAIL_SAVE events wait, and a
#   commit first writes it when _TAIL_MAX do, so the snapshot stays in one
#   4 KB block (docs/storage.md, "What a top-up writes").
#
# The snapshot's keys: "eng" (credit engine), "regs" (registers), "rev"
# (revenue source), "seq", "clock", "cal" (kept as loaded), "disp" (the
# command dispatcher's counters and order record, committed with the ledger
# they guard), "snap_h"/"h": the hot record at the snapshot, and the
# newest one (a hot checkpoint overrides "h" on load); "tok" (the offline
# tokens' replay window and lockout, firmware/tokens/entry.py), from the
# first token on; and "obt" (only when there are any): outbox events as
# [class, seq, body] rows (Outbox.tail()).
from micropython import const

from firmware.store.store import StoreFault

_TAIL_SAVE = const(4)
_TAIL_MAX = const(6)

# The hot record is a JSON list on flash: positional, because a checkpoint
# must stay within the store's 110-byte inline budget (store.HOT_MAX), and
# every firmware so far wrote and reads this form. Durable.hot() gives the
# order; firmware/core/boot.py reads it back into named fields (Hot).


class Durable:
    def __init__(self, core, store, policy):
        self.core = core             # whose parts are saved (engine, regs, revenue, clock, events)
        self.store = store
        self.policy = policy
        self.seq = 0                 # highest event seq on flash (saved())
        self.dirty = False           # a full snapshot is due at the end of this work
        self.unsaved_wh = 0          # import Wh registered since the last write
        self.unsaved_since_ms = 0
        self.mirror_waited = False   # the last tick wrote the outbox file while the mirror was due
        self.cal = None              # calibration, kept as loaded
        self.dispatcher = None
        self.disp_state = None       # the dispatcher's saved state until one is attached
        self.tok = None              # the offline tokens' state list (tokens/entry.py changes it in place)
        self.obt = None              # the loaded snapshot's outbox rows, until Events.open

    def keep(self, state, cal):
        """What the snapshot carries through unchanged from the loaded state."""
        self.disp_state = (state or {}).get("disp")
        self.tok = (state or {}).get("tok")
        self.obt = (state or {}).get("obt")
        self.cal = cal

    def attach_dispatcher(self, dispatcher):
        self.dispatcher = dispatcher
        if self.disp_state:
            dispatcher.load(self.disp_state)
            self.disp_state = None   # the dispatcher holds it now: one copy in RAM

    def hot(self):
        """The hot record in its on-flash form: [import Wh (1.8.0), balance
        (minor units), the ledger's sub-minor remainder (micro-minor), the
        pulse remainder (1/imp_per_kwh Wh), the highest event seq, local
        time (s)]."""
        c = self.core
        led = c.engine.ledger
        return [c.regs.import_wh, led.balance_minor, led.rem_micro, c.revenue.pulse_rem(),
                c.events.seq, c.clock.local_s()]

    def snapshot(self):
        """The whole state, as committed, as a dict."""
        d = dict(self.members(*self._moving()))
        d["regs"] = self.core.regs.to_dict()   # members() gives its builder, for commit()
        return d

    def _moving(self):
        # what changes while a commit writes (the clock, pulse remainders),
        # read once for it: members() is walked once to measure, once a copy
        c = self.core
        return self.hot(), c.clock.to_dict(), c.revenue.state()

    def members(self, h, clock, rev):
        # The snapshot's (key, value) pairs, in the order written. Each member
        # is built as the store writes it and is garbage after, so a commit
        # never holds the whole state as objects: built whole (12 KB of the
        # sim's heap for 3.6 KB of JSON), late in a month it left no hole for
        # the file the commit opens. What moves meanwhile (the clock, pulse
        # remainders) comes in read once, because the store builds the
        # members once to measure the record and once per copy.
        c = self.core
        yield "eng", c.engine.to_dict()
        yield "regs", c.regs.members   # its records a row at a time
        yield "rev", rev
        yield "seq", c.events.seq
        yield "clock", clock
        yield "snap_h", h
        yield "h", h
        yield "cal", self.cal
        if self.dispatcher:
            yield "disp", self.dispatcher.dump()
        elif self.disp_state:
            yield "disp", self.disp_state
        if self.tok:
            yield "tok", self.tok
        t = c.events.outbox.tail()
        if t:
            yield "obt", t

    def registered(self, wh):
        self.unsaved_wh += wh

    def commit(self):
        """Make everything durable now (full snapshot). Raises StoreFault."""
        c = self.core
        if c.fault:
            raise StoreFault(c.fault)
        ob = c.events.outbox
        if ob.next_seq - 1 - ob.saved_seq > _TAIL_MAX:
            ob.save()   # many events in one piece of work: the file takes them
        f = self._moving()
        self.store.commit(lambda: self.members(*f))
        self.saved(c.events.seq)
        self.dirty = False

    def checkpoint(self):
        if self.core.events.seq > self.seq:
            # events since the last write are in RAM alone (no snapshot holds
            # them yet): a hot record naming their seq needs the snapshot
            self.commit()
            return
        try:
            self.store.checkpoint({"h": self.hot()})
        except ValueError:  # patch too large for a hot record: take a full snapshot
            self.commit()
            return
        self.saved(self.core.events.seq)   # the hot record carries the seq

    def tidy(self):
        """At a quiet moment (the meter tick, after its own write), the
        writes that commits leave for later. Each erases a 4 KB block, so
        a tick does one at most, and no tick holds the CPU for two:
        - the outbox file, once _TAIL_SAVE events wait in the snapshot's
          tail, so that later snapshots need not carry them. It goes first:
          left waiting, a commit would write it on its own path (at
          _TAIL_MAX), a second erase before a top-up's ack;
        - else the snapshot's second copy, when commits left it a commit
          behind (Store.mirror()); after waiting one tick it goes first,
          so a mirror follows every commit within two ticks. Should the
          newest copy turn out damaged since its commit, the state is
          committed again from RAM."""
        c = self.core
        if c.fault:
            return
        st = self.store
        ob = c.events.outbox
        save = ob.next_seq - 1 - ob.saved_seq >= _TAIL_SAVE
        if save and not (st.behind and self.mirror_waited):
            self.mirror_waited = st.behind
            ob.save()
            return
        self.mirror_waited = False
        if not st.behind:
            return
        try:
            level = st.mirror()
        except MemoryError:
            return   # both copies as they were: the next tick tries again
        if not level:
            c.events.add("fault", {"code": "store_recovered"})
            self.commit()

    def due(self, now_ms, pulses):
        """True when a hot checkpoint is due (CheckpointPolicy). `pulses`:
        a pulse remainder may have moved even when no whole Wh did."""
        return self.policy.due(self.unsaved_wh, now_ms - self.unsaved_since_ms,
                               self.unsaved_wh > 0 or not pulses)

    def saved(self, seq):
        """The flash holds everything up to now, events up to `seq` (a
        write, or the state just loaded)."""
        self.seq = seq
        self.unsaved_wh = 0
        self.unsaved_since_ms = self.core.clock.mono_ms()
