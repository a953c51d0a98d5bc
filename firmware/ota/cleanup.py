# Over-the-air updates (docs/ota.md): none of firmware/ota/ is in the heap at
# rest. offer.py is loaded by an "ota" command, agent.py by an accepted offer
# (or a job found at boot) for the download, health.py once after a switch
# or a roll-back; unload() then drops them, this module, the board's side of
# an update (boards/*_ota.py) and romslot, so that their functions and
# globals are freed (their names stay interned: the pools never shrink).
# The board's side is found by its name's form, not listed: outside the
# boards nothing names a board module (tests/test_source_rules.py).
import sys

from firmware.transient import drop

_LOADED = ("firmware.ota.offer", "firmware.ota.health", "firmware.ota.cleanup", "firmware.ota")


def unload():
    """Drop what an update loaded, unless a download runs: its agent calls
    this at its end, once it has taken itself out of sys.modules."""
    if "firmware.ota.agent" in sys.modules:
        return
    boards = [n for n in sys.modules if n.startswith("firmware.boards.") and n.endswith("_ota")]
    drop(*(_LOADED + tuple(boards) + ("romslot",)))
