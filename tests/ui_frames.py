# Renders every screen of a real App (sim board, no tasks running) in many
# meter states, each frame under micropython.heap_lock(), and prints one
# JSON line per frame: {"case", "screen", "rows", "error"}. Driven by
# tests/test_ui_render.py, with the case list as JSON on stdin.
import json
import sys

import micropython

from firmware.boards.sim import SimBoard
from firmware import app as A

args = json.loads(sys.stdin.readline())
board = SimBoard(["--flash", args["flash"], "--config", args["cfg"]])
a = A.App(board)
core = a.core
e = core.engine
panel = a.ui


class _At:
    rssi_dbm = -75
    reg = 1


class _Modem:
    at = _At()


class _Session:
    up = True
    heard_s = 1767229200


def frames(case):
    out = []
    panel.poll(board.mono_ms())   # as the loop does before each frame
    for mode in range(3):
        screens_here = range(12) if mode == 0 else (0,)
        for k in screens_here:
            panel.mode = mode
            panel.screen = k
            panel.result = 2 if mode == 2 else 0   # the emergency credit taken
            err = None
            micropython.heap_lock()
            try:
                panel.draw()
            except Exception as x:
                err = x
            micropython.heap_unlock()
            out.append({"case": case, "mode": mode, "screen": k, "error": repr(err) if err else None,
                        "forecast": list(core.forecast()), "charges_minor": e.ledger.charges_minor,
                        "rows": board.lcd_text(), "lit": sum(1 for b in board._lcd if b)})
    panel.mode = 0
    return out


for case in args["cases"]:
    if case == "topup":
        e.topup(7001, 2500)
    elif case == "friendly":     # no credit, in the night's friendly window
        e.ledger.balance_minor = 0
        e.tick(0, e.now_s + 1, 1)
    elif case == "credit_cut":
        e.configure({"friendly": None})
        e.tick(0, e.now_s + 1, 1)
    elif case == "await_press":
        e.topup(7002, 100)
    elif case == "emergency":
        e.long_press()
    elif case == "link":
        a.modem = _Modem()
        a.session = _Session()
    elif case == "remote":
        e.remote("disconnect")
    elif case == "over_power":
        e.remote("auto")
        e.configure({"protection": {"over_power": {"limit": 10, "hold_s": 1, "retry_s": 30}}})
        e.tick(0, e.now_s + 2, 2, True, 230, 5000)
    elif case == "technician":   # the REPL's relay("open"): firmware/repl/admin.py
        e.remote("auto")
        e.manual("open")
    elif case == "used":         # 2 kWh metered and charged this month
        e.tick(2000, e.now_s + 60, 60)
    elif case == "token":        # what tokens/entry.py leaves after an accepted ADD token
        core.last_token = ("add", 1200, 5, 5521)
    elif case == "fault":
        core.fault = "snap_crc"
        core.durable.store.fault = "snap_crc"
    for f in frames(case):
        print(json.dumps(f))
