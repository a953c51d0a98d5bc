"""The screens and states that `make screenshots` pictures and the golden
test checks (tools/screenshots.py runs them; docs/simulator.md, "Screenshots
and golden frames").

METERS names the sim meters the scenarios run on: each is started once, on
a stepped clock at a fixed epoch, so the same scenarios always draw the same
pixels. The meters run at the same time, one thread each; the scenarios of
one meter run in list order, each starting from the state and the screen the
one before left.

A meter:
    "config"     provisioning keys (docs/provisioning.md), over SimMeter's own
    "broker"     True: connect it to a local broker (the link matters)
    "epoch"      meter time at power-up, UTC seconds (default EPOCH)
    "args"       extra tools/sim_entry.py options ("--rtc-lost", "--no-cf1")

A scenario:
    "name"       the picture's file name: docs/screens/<name>.png and
                 tests/golden/<name>.png
    "meter"      which of METERS it runs on
    "about"      one line: the state and the screen, for docs and failures
    "do"         actions, in order, that set the state up (may be empty):
        {"control": {...}}          a sim control request as it is
                                    (docs/simulator.md: load, step, advance...)
        {"send": KIND, ...fields}   a server command, signed with the meter's
                                    key, through the control socket; it must
                                    not be rejected
        {"press": MS}               the query button held MS ms (>= 1500: a
                                    long press). A short press also moves to
                                    the next screen: the runner counts it
        {"until": {field: value}}   wait until the meter's state (the `meter`
                                    fields of docs/simulator.md) has them
        {"corrupt": [file, ...]}    power cut, flip a bit in the middle of
                                    each /flash/store/<file>, power back
    "screen"     the screen to picture, counted from home (0) in short
                 presses; the runner presses from wherever the meter is
                 (wrapping round SCREEN_COUNT). Mind that a short press is
                 also the customer's reconnect and lockout-reset gesture:
                 picture a state that a press would end before moving away
                 from the screen it is on.

When the screens change, edit this list (names, "screen" numbers, new states)
and run `make golden` (the goldens and docs/screens/ from one run).
"""
EPOCH = 1772443800      # 2026-03-02 09:30:00 UTC, a Monday (flat period in TOU_TARIFF)
# The screens a short press cycles through
SCREEN_COUNT = 12   # firmware/ui/panel.py _N_SCREENS (private: the firmware cannot be asked)
# The display returns home after this many real seconds without a press
# (firmware/app.py); the runner counts on it when a scenario takes that long
IDLE_HOME_S = 30

# Each Wh costs 0.15 at the default 1.50/kWh; 1000 imp/kWh, so a pulse is a Wh.
# Pulses go in at one a second (3.6 kW), below the over-power limit, with
# the simulated load off ("w": 0) so that they are the only energy.
_MAIN = {"initial_balance_minor": 6000, "warn_minor": [5000, 1000], "reconnect": "press",
         "emergency_minor": 500, "emergency_below_minor": 100, "currency": "EUR",
         "protection": {"over_power": {"limit": 8000, "hold_s": 2, "retry_s": 600, "tries": 3}}}

TOU_TARIFF = {"version": 7, "tiers_wh": [200000, 400000],
              "periods": ["sharp", "peak", "flat", "valley"],
              "prices_milli_per_kwh": [[300000, 250000, 150000, 80000],
                                       [350000, 300000, 200000, 100000],
                                       [450000, 400000, 300000, 150000]],
              "days": {"weekday": [[0, 3], [28800, 2], [36000, 1], [64800, 0], [75600, 2]],
                       "weekend": [[0, 3], [32400, 2]]}}
TIERED_TARIFF = {"version": 3, "tiers_wh": [50000, 100000],
                 "prices_milli_per_kwh": [[120000], [180000], [250000]]}

METERS = {
    # the customer's meter through a month of states, on the link
    "main": {"config": _MAIN, "broker": True},
    # a meter whose link cannot come up (nothing listens on its broker port)
    # and whose clock was never set
    "offline": {"config": {"initial_balance_minor": 2500, "broker_port": 9}, "broker": False,
                "args": ["--rtc-lost"]},
    # a pulse-only board (no CF1: the voltage is unknown) without its key:
    # meters and bills, starts no link (E61)
    "nokey": {"config": {"initial_balance_minor": 1234, "key_hex": None}, "broker": False,
              "args": ["--no-cf1"]},
    # friendly credit 20:00-08:00, clock set inside it; later a store fault
    "friendly": {"config": {"initial_balance_minor": 300, "friendly": {"windows": [[72000, 28800]]}},
                 "broker": False},
}

_SYNC = {"send": "time", "utc_s": EPOCH}

SCENARIOS = [
    # --- main: credit fine, then down through the warnings to the cut and back
    {"name": "unsynced-clock-meter-info", "meter": "main", "screen": 10, "about": "meter id, version, time: unsynced",
     "do": [{"until": {"link_up": True}}]},
    {"name": "credit-ok-home", "meter": "main", "screen": 0, "about": "home, credit fine, 1 kW load",
     "do": [_SYNC, {"control": {"cmd": "step", "w": 1000, "ms": 1000}},
            {"control": {"cmd": "step", "n": 1234, "ms": 1234000}}]},
    {"name": "remaining-electricity", "meter": "main", "screen": 1, "about": "kWh the balance buys", "do": []},
    {"name": "days-left", "meter": "main", "screen": 2, "about": "days left, no whole day of history yet",
     "do": []},
    {"name": "today-and-month", "meter": "main", "screen": 3, "about": "energy and cost today and this month",
     "do": []},
    {"name": "live-power", "meter": "main", "screen": 4, "about": "W, V, A, PF (-- where unknown)", "do": []},
    {"name": "flat-tariff", "meter": "main", "screen": 5, "about": "flat tariff price", "do": []},
    {"name": "link-up", "meter": "main", "screen": 8, "about": "link up: signal, last exchange, pending",
     "do": []},
    {"name": "totals", "meter": "main", "screen": 9, "about": "1.8.0, 1.8.1-1.8.4, 2.8.0, max demand",
     "do": []},
    {"name": "meter-info", "meter": "main", "screen": 10, "about": "meter id, version, time: synced",
     "do": []},
    {"name": "low-credit-warning-1", "meter": "main", "screen": 0, "about": "home, first low-credit warning",
     "do": [{"control": {"cmd": "step", "w": 0, "n": 10000, "ms": 10000000}}, {"until": {"warning": 1}}]},
    {"name": "low-credit-warning-2", "meter": "main", "screen": 0, "about": "home, second warning",
     "do": [{"control": {"cmd": "step", "w": 0, "n": 23000, "ms": 23000000}}, {"until": {"warning": 2}}]},
    {"name": "why-off-no-credit", "meter": "main", "screen": 7, "about": "why the supply is off: no credit",
     "do": [{"control": {"cmd": "step", "w": 0, "n": 8000, "ms": 8000000}},
            {"until": {"relay_closed": False, "relay_reason": "credit"}}]},
    # home last: the presses on the way there end no state here, but the
    # next scenario's would end its "press to reconnect"
    {"name": "cut-no-credit", "meter": "main", "screen": 0, "about": "home, supply cut for no credit",
     "do": []},
    {"name": "awaiting-press", "meter": "main", "screen": 0,
     "about": "home, topped up, waiting for the customer's press",
     "do": [{"send": "topup", "order": 1, "amount_minor": 2000}, {"until": {"relay_reason": "await_press"}}]},
    {"name": "after-topup-reconnected", "meter": "main", "screen": 0,
     "about": "home after the reconnect press",
     "do": [{"press": 150}, {"until": {"relay_closed": True}}]},
    {"name": "last-topup", "meter": "main", "screen": 6, "about": "last top-up: amount, time, ref",
     "do": []},
    {"name": "emergency-credit", "meter": "main", "screen": 0, "about": "home, on emergency credit",
     "do": [{"control": {"cmd": "step", "w": 0, "n": 11000, "ms": 11000000}},
            {"until": {"relay_closed": False}}, {"press": 2000},   # the confirmation screen
            {"press": 2000}, {"until": {"owed_minor": 500}}]},   # held again: taken
    {"name": "remote-disconnect", "meter": "main", "screen": 0, "about": "home, disconnected by the utility",
     "do": [{"send": "topup", "order": 2, "amount_minor": 5000},
            {"send": "relay", "action": "disconnect"}, {"until": {"relay_reason": "remote_disconnect"}}]},
    {"name": "why-off-remote", "meter": "main", "screen": 7, "about": "why the supply is off: the utility",
     "do": []},
    {"name": "over-power", "meter": "main", "screen": 0, "about": "home, over-power trip",
     "do": [{"send": "relay", "action": "connect"}, {"control": {"cmd": "step", "w": 9500, "ms": 1000}},
            {"control": {"cmd": "step", "ms": 1000}}, {"control": {"cmd": "step", "ms": 1000}},
            {"control": {"cmd": "step", "ms": 1000}}, {"control": {"cmd": "step", "ms": 1000}},
            {"until": {"relay_reason": "over_power"}}]},
    {"name": "tiered-tariff", "meter": "main", "screen": 5, "about": "tiered tariff price",
     "do": [{"control": {"cmd": "load", "w": 0}}, {"send": "tariff", "version": 3, "activate_utc_s": 0,
                                                    "tariff": TIERED_TARIFF}]},
    {"name": "tou-tariff", "meter": "main", "screen": 5, "about": "tiered + time-of-use price",
     "do": [{"send": "tariff", "version": 7, "activate_utc_s": 0, "tariff": TOU_TARIFF}]},
    {"name": "postpaid-tariff", "meter": "main", "screen": 5, "about": "postpaid mode",
     "do": [{"send": "mode", "mode": "postpaid"}]},
    # --- offline: no link, clock lost
    {"name": "link-down-home", "meter": "offline", "screen": 0, "about": "home, no link",
     "do": [{"control": {"cmd": "step", "w": 500, "ms": 1000}}, {"control": {"cmd": "step", "ms": 1000}}]},
    {"name": "link-down", "meter": "offline", "screen": 8, "about": "link screen, link down, RTC lost",
     "do": []},
    # --- nokey: provisioning fault E61, voltage unknown
    {"name": "no-key-home", "meter": "nokey", "screen": 0, "about": "home, E61 (no key), voltage --",
     "do": [{"control": {"cmd": "step", "w": 500, "ms": 1000}}, {"control": {"cmd": "step", "ms": 1000}}]},
    {"name": "no-key-error-codes", "meter": "nokey", "screen": 11, "about": "error codes: E61", "do": []},
    # --- friendly credit at night, then a store fault
    {"name": "friendly-credit", "meter": "friendly", "screen": 0, "about": "home, negative balance at night",
     "do": [{"send": "time", "utc_s": EPOCH + 12 * 3600}, {"control": {"cmd": "step", "w": 0, "n": 3000, "ms": 3000000}},
            {"until": {"relay_reason": "friendly"}}]},
    {"name": "meter-fault", "meter": "friendly", "screen": 0, "about": "home, both state copies damaged",
     "do": [{"corrupt": ["a/snap", "b/snap"]}, {"until": {"fault": "snap_crc"}}]},
    {"name": "meter-fault-error-codes", "meter": "friendly", "screen": 11, "about": "error codes: E53",
     "do": []},
]
