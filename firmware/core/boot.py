# The meter's parts at power-up: from the flash (docs/storage.md), from the
# provisioning on a factory flash, or the fault state when the store (or the
# provisioning) cannot be trusted. Runs once per boot: firmware/meter.py
# loads this module for the occasion and drops it, so its code does not sit
# in the heap for good.
import array

from firmware.credit.engine import CreditEngine
from firmware.metering.registers import Registers
from firmware.metering.revenue import Revenue

ADC_SAMPLES = 640

# config keys the credit engine takes from the provisioning config
_CREDIT_KEYS = ("initial_balance_minor", "mode", "tariff", "warn_minor", "repeat_level",
                "silence_s", "reconnect", "emergency_minor", "emergency_below_minor",
                "friendly", "unsynced_friendly_s", "protection", "warn_days")


def start(core, held):
    """Load the store and build core.engine, .regs and .revenue (and the ADC
    buffers). `held`: (code, LCD number) of a fault found outside the store
    (the provisioning), held as the store's. Returns (status, event seq) with
    status as Store.load() gives it."""
    store = core.durable.store
    state, status = store.load()
    if held and not status.startswith("fault:"):
        store.hold(held[0], held[1])
        status = "fault:" + held[0]
    if status.startswith("fault:"):
        return status, _enter_fault(core, status[6:], state)
    return status, _build(core, state or {})


class Hot:
    """One hot record with named fields, from its on-flash list (the order
    of firmware/core/durable.py's Durable.hot())."""

    def __init__(self, h):
        (self.import_wh, self.balance_minor, self.rem_micro, self.pulse_rem, self.seq,
         self.local_s) = h


def _credit_cfg(cfg):
    c = {}
    for k in _CREDIT_KEYS:
        if k in cfg:
            c[k] = cfg[k]
    if "tariff" not in c:
        c["tariff"] = {"version": 1, "price_milli_per_kwh": cfg["price_milli_per_kwh"]}
    return c


def _build(core, state):
    cfg = core.cfg
    board = core.board
    clock_lost = core.clock.restore(state.get("clock"))
    if "eng" in state:
        core.engine = CreditEngine.from_dict(state["eng"])
    else:
        core.engine = CreditEngine(_credit_cfg(cfg))
    core.regs = Registers.from_dict(state["regs"]) if "regs" in state else Registers()
    core.revenue = Revenue(cfg.get("metering_source", "pulse"), cfg["imp_per_kwh"],
                           board.ADC_RATE_HZ, state.get("cal"),
                           cfg.get("crosscheck_pct", 3), on_event=core.events.metering,
                           pulse_base=board.pulse_count())
    if "rev" in state:
        core.revenue.restore(state["rev"])
    if core.revenue.adc:
        core.vbuf = array.array("h", bytes(2 * ADC_SAMPLES))
        core.ibuf = array.array("h", bytes(2 * ADC_SAMPLES))
    core.durable.keep(state, state.get("cal"))
    if clock_lost:
        core.commlog.add("clk", "rtc lost")
    return _replay_hot(core, state)


def _replay_hot(core, state):
    """Apply a hot checkpoint newer than the snapshot to the parts just built
    from that snapshot, each by its own method; returns the event seq the
    state holds."""
    h, s = state.get("h"), state.get("snap_h")
    if not (h and s and h != s):
        return state.get("seq", 0)
    hot, snap = Hot(h), Hot(s)
    wh = hot.import_wh - snap.import_wh
    core.engine.apply_hot(hot.balance_minor, hot.rem_micro, wh, hot.local_s)
    core.revenue.apply_hot(hot.pulse_rem)
    core.regs.add(wh, 0, core.engine.ledger.open_period, hot.local_s)
    return hot.seq


def _enter_fault(core, code, evidence):
    # Safe state (docs/storage.md): relay open, E5x on the LCD, a live
    # fault event, energy counted in RAM only, nothing written.
    from firmware.credit.policy import STORE_FAULT
    core.fault = code
    core.engine = CreditEngine(_credit_cfg(core.cfg))
    core.regs = Registers()
    core.revenue = Revenue("pulse", core.cfg["imp_per_kwh"], pulse_base=core.board.pulse_count())
    core.durable.keep(evidence, None)
    core.board.relay_set(False)
    live = core.events.link_events   # sent live, never stored (core/events.py)
    live.append({"kind": "fault", "code": code, "lcd": core.durable.store.lcd_code()})
    # the opening has its reason, as every other opening does (no balance:
    # the stored one cannot be trusted)
    live.append({"kind": "relay", "closed": 0, "reason": STORE_FAULT})
    return (evidence or {}).get("seq", 0)
