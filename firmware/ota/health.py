# After a switch or a roll-back (the romslot record says so), once the meter
# is healthy (link up and a state published: the app calls settle() then),
# report what happened and close the record: a trial becomes confirmed.
# Loaded only on such a boot, and dropped after it. docs/ota.md, "Flow".
from micropython import const

_SWITCHED = const(1)      # romslot.NOTE_SWITCHED
_ROLLED_BACK = const(2)   # romslot.NOTE_ROLLED_BACK


def settle(app):
    try:
        _settle(app, app.board.ota())
    finally:
        from firmware.ota import cleanup
        cleanup.unload()   # this module, the board's side, romslot


def _settle(app, slots):
    rec = slots.record()
    if rec is None:
        return
    active, trial, boots, note, ver, prev = rec
    if note == _ROLLED_BACK:
        # boots: how many the bad version had without becoming healthy
        fields = {"result": "rolled_back", "ver": ver, "bad_ver": prev, "reason": "not_healthy",
                  "boots": boots}
    elif trial or note == _SWITCHED:
        fields = {"result": "installed", "ver": ver, "prev_ver": prev, "boots": boots}
    else:
        return
    core = app.core
    # the event is durable before the record closes: a cut in between
    # reports it again (at least once), never not at all
    core.begin()
    try:
        core.events.add("ota", fields)
        core.durable.commit()
    finally:
        core.end()
    slots.confirm()
    app.log("ota", fields["result"], "version %d" % ver)
    app.state_dirty = True
