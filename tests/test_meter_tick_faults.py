"""A MemoryError anywhere in a tick after the energy was read loses nothing
and doubles nothing: in MicroPython, on the sim board's LittleFS, with the
compiled firmware in the ESP32-sized heap.

The test wraps every step the tick takes after the pulse counter is read
(the revenue, the credit engine and its ledger, policy and protection, the
registers, the outbox, the store, the meter core's own steps, its events and
durability) and makes
the k-th step boundary fail, for every k, in two ways: by raising
MemoryError there ("raise"), or by locking the heap there so that the next
allocation fails, wherever it is, inside the step or in a later one
("lock"). After the failed tick, one ordinary tick runs; then the energy
in the registers and the ledger must equal what the pulses delivered (or
what the ADC integrated), the money must match the energy at the tariff, and
nothing may be left waiting. No hook in the firmware: all of it is done from
the test script.

Not wrapped: the reads themselves. PulseEnergy.feed and Analyzer.accumulate
turn the counter and the samples into Wh; a MemoryError can only come from
an allocation, and they allocate nothing (checked here for feed under
micropython.heap_lock, and for the ADC path in test_metering_waveform.py)."""
import json
import os

from mpy import run_mpy
from simmeter import COMPILED, ensure_compiled

IMP = 3200            # imp/kWh: a pulse is 0.3125 Wh, so remainders are carried
PRICE = 150000        # the default flat price, milli-minor per kWh
INITIAL = 10 ** 8

SCRIPT = r"""
import json, gc, micropython
from firmware.boards.sim import SimBoard
from firmware.meter import MeterCore
from firmware.metering.pulse import PulseEnergy
from firmware import config

SRC = %(src)r
IMP = %(imp)d

# feed() allocates nothing: it cannot be where a MemoryError comes from
def feed_locked():
    pe = PulseEnergy(IMP)
    pe.feed(1)
    micropython.heap_lock()
    try:
        a = pe.feed(7)
        b = pe.feed(12345)
    finally:
        micropython.heap_unlock()
    return a == 2 and b == 3858
feed_ok = feed_locked()

WORLD = %(world)s

def boot():
    board = SimBoard(["--flash", %(dir)r, "--step", "--imp", str(IMP)])
    if WORLD:
        # a restart: the flash is kept, the outside world goes on where it was
        board._pulses = WORLD[0]
        board._base_ms = board._last_sim_ms = WORLD[1]
        board._energy_wms = WORLD[2]
    cfg = config.load({"meter_id": "MF-1", "initial_balance_minor": %(initial)d,
                       "imp_per_kwh": IMP, "metering_source": SRC})
    return board, MeterCore(board, cfg)

board, core = boot()
board.set_load(%(watts)d)

armed = [False]
want = [False]
count = [0]
K = [0]
MODE = ["raise"]
hit = [None]
locked = [False]

def point(label):
    count[0] += 1
    if count[0] == K[0]:
        hit[0] = label
        if MODE[0] == "raise":
            raise MemoryError(label)
        locked[0] = True
        micropython.heap_lock()

def wrap(obj, name, label):
    f = getattr(obj, name)
    def w(*a):
        if armed[0]:
            point(label + ">")
        r = f(*a)
        if armed[0]:
            point(label + "<")
        return r
    setattr(obj, name, w)

def wrap_all(core, board):
    orig = board.pulse_count
    def pulse_count():
        v = orig()
        if want[0]:
            armed[0] = True     # the counter has been read: from here on, fail
        return v
    board.pulse_count = pulse_count
    e = core.engine
    rev = core.revenue
    steps = [(rev, "tick"), (rev, "_event"),
             (core, "_bill"), (core, "_register"), (core.events, "from_engine"),
             (core.events, "frozen"), (core, "drive_relay"), (core.durable, "commit"),
             (core.durable, "checkpoint"), (core.events, "add"), (e.ledger, "open_key"),
             (e, "tick"), (e, "_advance"), (e, "_charge"), (e, "_settle"), (e, "_friendly_now"),
             (e, "pop_events"), (e.ledger, "charge"), (e.ledger, "close_charge"),
             (e.policy, "settle"), (e.protection, "update"), (e.tariff, "tier_of"),
             (e.tariff, "period_at"),
             (core.regs, "add"), (core.regs, "_advance"), (core.regs, "_close_window"),
             (core.regs, "_end_day"), (core.regs, "_end_month"),
             (core.events.outbox, "add"), (core.events.outbox, "flush"),
             (core.durable.store, "commit"), (core.durable.store, "checkpoint"),
             (core.durable.policy, "due"), (core.durable, "due"), (board, "relay_set")]
    if rev.adc:
        steps.append((rev.adc, "analyze"))
    if rev.cross:
        steps.append((rev.cross, "feed"))
    for obj, name in steps:
        if hasattr(obj, name):
            wrap(obj, name, type(obj).__name__ + "." + name)

wrap_all(core, board)

def expected():
    if SRC == "adc":
        a = core.revenue.adc
        return a.import_wh, a.export_wh
    return board._pulses * 1000 // IMP, 0

def check(tag):
    led = core.engine.ledger
    imp_wh, exp_wh = expected()
    bad = []
    if core.regs.import_wh != imp_wh:
        bad.append("registers %%d Wh, metered %%d" %% (core.regs.import_wh, imp_wh))
    if core.regs.export_wh != exp_wh:
        bad.append("export %%d Wh, metered %%d" %% (core.regs.export_wh, exp_wh))
    if led.charged_wh != imp_wh:
        bad.append("charged %%d Wh, metered %%d" %% (led.charged_wh, imp_wh))
    if led.charges_minor != %(price)d * led.charged_wh // 1000000:
        bad.append("charged %%d minor for %%d Wh" %% (led.charges_minor, led.charged_wh))
    if not led.conserved() or led.balance_minor != %(initial)d - led.charges_minor:
        bad.append("money not conserved")
    if core.revenue.untaken():
        bad.append("left untaken")
    return [tag, bad] if bad else None

LOOP = %(loop)r
FAIL_AT = %(fail_at)r
failures = []
n_failed = 0
points = {}
fired = 0
if LOOP:
    # the failing tick of each kind: a second, a day's step (midnight: a frozen
    # record, a closed charge entry, a snapshot), one with a snapshot due, and
    # 15 s at 3 kW (12.5 Wh: a hot checkpoint is due)
    KINDS = [("second", 1000, False), ("day", 86400000, False), ("commit", 1000, True),
             ("checkpoint", 15000, False)]
    board.advance(1000); core.tick()
    for mode in ("raise", "lock"):
        MODE[0] = mode
        for kind, ms, dirty in KINDS:
            k = 1
            while True:
                gc.collect()
                board.advance(ms)
                core.durable.dirty = core.durable.dirty or dirty
                K[0] = k; count[0] = 0; hit[0] = None
                want[0] = True
                err = None
                try:
                    core.tick()
                except MemoryError:
                    err = "MemoryError"
                finally:
                    if locked[0]:   # (unlocking an unlocked heap would lock it)
                        micropython.heap_unlock()
                        locked[0] = False
                    want[0] = armed[0] = False
                if hit[0] is None:
                    break          # k beyond the last step of this tick
                fired += 1
                points[hit[0]] = points.get(hit[0], 0) + 1
                board.advance(1000)
                try:
                    core.tick()     # the next tick takes what the failed one left
                except MemoryError:
                    n_failed += 1
                    if len(failures) < 10:
                        failures.append(["the tick after %%s %%s k=%%d failed" %% (mode, kind, k)])
                    gc.collect()
                    continue
                bad = check("%%s %%s k=%%d at %%s (%%s)" %% (mode, kind, k, hit[0], err))
                if bad:
                    n_failed += 1
                    if len(failures) < 10:
                        failures.append(bad)
                k += 1

# a snapshot between a failed tick and the next (a command commits), then a
# restart (the next process) without that next tick: the Wh left waiting
# must be in the snapshot
restarted = None
if WORLD:
    core.tick()          # no time has passed: only what the snapshot kept
    restarted = check("restart")
waiting = None
if FAIL_AT:
    MODE[0] = "raise"
    board.advance(3000)
    hit[0] = None
    def point(l):
        if l == FAIL_AT and hit[0] is None:
            hit[0] = l
            raise MemoryError(l)
    want[0] = True
    try:
        core.tick()
    except MemoryError:
        pass
    want[0] = armed[0] = False
    waiting = core.revenue.untaken()
    core.durable.commit()

print(json.dumps({"feed_ok": feed_ok, "fired": fired, "points": points,
                  "failures": failures, "n_failures": n_failed,
                  "restarted": restarted, "hit": hit[0], "waiting": waiting,
                  "world": [board._pulses, board._base_ms, board._energy_wms],
                  "wh": core.regs.import_wh}))
"""


def _run(tmp_path, src, loop=True, fail_at=None, world=None):
    ensure_compiled()
    script = SCRIPT % {"dir": str(tmp_path / "sim"), "src": src, "imp": IMP, "initial": INITIAL,
                       "price": PRICE, "watts": 3000, "loop": loop, "fail_at": fail_at,
                       "world": repr(world)}
    # The modules load here as .mpy files, into the heap: 54.6 KB more than
    # from the board's ROMFS (tests/test_modem_meter.py). A first process
    # fits 108wk; a restart that loads the hundreds of events the injected
    # days queued needs that difference back.
    heap = "108wk" if world is None else "170wk"
    out = run_mpy(script, heap=heap, timeout=600,
                  extra_path=(COMPILED, os.path.join(COMPILED, "lib")))
    return json.loads(out.strip().splitlines()[-1])


RESTART_AT = ("Registers.add>", "CreditEngine.tick>", "Ledger.charge<")


def _assert_conserved(tmp_path, src):
    res = _run(tmp_path, src, fail_at=RESTART_AT[0])
    assert res["feed_ok"]
    assert res["n_failures"] == 0, res["failures"]
    # the injection reached every taker and the durable writes after them
    for step in ("CreditEngine.tick>", "CreditEngine.tick<", "Ledger.charge>", "Ledger.charge<",
                 "Registers.add>", "Registers.add<", "Events.from_engine>",
                 "Outbox.add>", "Store.commit>", "Store.checkpoint>"):
        assert step in res["points"], (step, sorted(res["points"]))
    assert res["fired"] > 100
    # then restarts, each from a snapshot taken while energy was waiting
    for k, label in enumerate(RESTART_AT):
        assert res["hit"] == label and res["waiting"], res
        nxt = RESTART_AT[k + 1] if k + 1 < len(RESTART_AT) else None
        res = _run(tmp_path, src, loop=False, fail_at=nxt, world=res["world"])
        assert res["restarted"] is None, res["restarted"]
    assert res["wh"] > 0


def test_a_memory_error_at_any_step_after_the_pulse_read_loses_and_doubles_no_energy(tmp_path):
    _assert_conserved(tmp_path, "pulse")


def test_a_memory_error_at_any_step_after_the_adc_read_loses_and_doubles_no_energy(tmp_path):
    _assert_conserved(tmp_path, "adc")
