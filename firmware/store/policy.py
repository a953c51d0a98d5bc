# When the meter must write a checkpoint, so that a cut without warning loses
# at most `max_wh` of consumption or `max_s` seconds of it, whichever comes
# first. Pure: the meter task passes what it has counted since the last
# checkpoint, once per tick, and calls Store.checkpoint() when due() says so.
#
# A cut can land while that very checkpoint is being written, after the tick
# that made it due has already added its energy. So the policy fires one tick
# early: `tick_wh` is the most one tick can add (rated load for one tick, plus
# one Wh for the carried sub-Wh remainder) and `tick_ms` the tick period.
from micropython import const

_MS_PER_S = const(1000)


class CheckpointPolicy:
    def __init__(self, max_wh=10, max_s=60, tick_wh=4, tick_ms=1000):
        self.max_wh = max_wh
        self.max_ms = max_s * _MS_PER_S
        self.tick_wh = tick_wh
        self.tick_ms = tick_ms

    def due(self, wh_since, ms_since, dirty=None):
        """True when the next tick could take the unsaved consumption to
        `max_wh` or its age to `max_s`. `dirty` says whether anything at all
        is unsaved (pass True when only a sub-Wh remainder moved); it defaults
        to wh_since > 0. Nothing unsaved: never due, so an idle meter does
        not wear the flash."""
        if dirty is None:
            dirty = wh_since > 0
        if not dirty:
            return False
        return (wh_since + self.tick_wh >= self.max_wh
                or ms_since + self.tick_ms >= self.max_ms)
