"""firmware/transient.py: code loaded for an occasion leaves nothing loaded
behind, and sys.modules is grown at boot so that a late load never needs
the 1.5 KB block its table's next step takes (run in MicroPython)."""
from mpy import run_mpy

SCRIPT = r"""
import sys, gc, micropython
from firmware import transient

# once(): the module, not kept; drop_package(): the package and all under it
w = transient.once("firmware.tokens.window")
print("once", w.__name__, "firmware.tokens.window" in sys.modules)
import firmware.tokens.entry
transient.drop_package("firmware.tokens")
print("dropped", [m for m in sys.modules if m.startswith("firmware.tokens")])
transient.drop("firmware.not_loaded")   # a name not loaded is skipped

def adds_allocate(keys):
    # True when putting `keys` into sys.modules needs the heap
    gc.collect()
    micropython.heap_lock()
    try:
        for k in keys:
            sys.modules[k] = None
        grew = False
    except MemoryError:
        grew = True
    micropython.heap_unlock()
    return grew

# make_room(n): n modules then fit without the table growing
n = 90
keys = ["k%d" % i for i in range(n)]
transient.make_room(n)
todo = keys[:n - len(sys.modules)]
print("grew", adds_allocate(todo), len(sys.modules))
for k in todo:
    del sys.modules[k]
# and without make_room the same adds do need the heap (the test sees growth)
for i in range(len(sys.modules), 200):
    sys.modules["x%d" % i] = None
print("unprepared grew", adds_allocate(["y%d" % i for i in range(100)]))
"""


def test_transient_loads_leave_nothing_and_sys_modules_is_grown_ahead():
    out = run_mpy(SCRIPT).split("\n")
    assert out[0] == "once firmware.tokens.window False"
    assert out[1] == "dropped []"
    assert out[2] == "grew False 90"
    assert out[3] == "unprepared grew True"
