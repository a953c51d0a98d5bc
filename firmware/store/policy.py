# When the meter must write a checkpoint, so that a cut without warning loses
# at most `max_wh` of consumption or `max_s` seconds of it, whichever comes
# first. Pure: the meter task passes what it has counted since the last
# checkpoint and calls Store.checkpoint() when due() says so.
from micropython import const

_MS_PER_S = const(1000)


class CheckpointPolicy:
    def __init__(self, max_wh=10, max_s=60):
        self.max_wh = max_wh
        self.max_ms = max_s * _MS_PER_S

    def due(self, wh_since, ms_since, dirty=None):
        """True when the unsaved consumption has reached `max_wh`, or when any
        consumption has stayed unsaved for `max_s`. `dirty` says whether
        anything at all is unsaved (pass True when only a sub-Wh remainder
        moved); it defaults to wh_since > 0. Nothing unsaved: never due, so an
        idle meter does not wear the flash."""
        if dirty is None:
            dirty = wh_since > 0
        if not dirty:
            return False
        return wh_since >= self.max_wh or ms_since >= self.max_ms
