"""The modem link task (firmware/link/modem.py): bring-up, health figures and
stepwise recovery (redial -> reset -> power cycle), against the fake modem.

The meter side runs in MicroPython with a board whose modem lines go to the
fake modem (firmware/boards/sim_uart.py), and a 100 ms "metering" task that
reports the longest the program held its loop (linkrig.LOOP_PROBE, net of
the machine's load): the link must never hold up the loop.
"""
import time

import pytest

from fake_modem import FakeModem
from linkrig import LOOP_PROBE, MpyProc
from wait import wait_for

# the loop is held when the program itself stalls it (linkrig.LOOP_PROBE)
MAX_HELD_MS = 250

LINK_SCRIPT = LOOP_PROBE + r"""
import sys, json, time, asyncio
from firmware.boards.sim_uart import PtyUart, ModemLines
from firmware.link.modem import ModemLink

class Board:
    def __init__(self, path, port):
        self.uart = PtyUart(path)
        self.lines = ModemLines(int(port))
    def modem_uart(self): return self.uart
    def modem_pwrkey(self, level): self.lines.pwrkey(level)
    def modem_reset(self, level): self.lines.reset(level)
    def modem_power(self, on): self.lines.power(on)

def ev(name, **kw):
    kw["ev"] = name
    print("EV " + json.dumps(kw))

ModemLink.BOOT_MS = 1500
ModemLink.REGISTER_MS = 1500
ModemLink.REG_POLL_MS = 200
ModemLink.DIAL_MS = 2000
ModemLink.WATCH_MS = 100
ModemLink.BACKOFF_MIN_MS = 100
ModemLink.BACKOFF_MAX_MS = 800
ModemLink.OFF_MS = 100
ModemLink.PWRKEY_MS = 100
times = []
link = ModemLink(Board(sys.argv[1], sys.argv[2]), "internet.test", on_time=times.append)
probe = LoopProbe()

def health():
    h = link.health()
    return dict((k, v.decode() if isinstance(v, bytes) else v) for k, v in h.items())

async def meter():
    while True:
        await asyncio.sleep_ms(100)
        probe.beat()

async def watch():
    was = False
    states = []
    t_end = time.ticks_add(time.ticks_ms(), int(sys.argv[3]))
    while time.ticks_diff(t_end, time.ticks_ms()) > 0:
        if link.up != was:
            was = link.up
            ev("up" if was else "down", h=health(), ticks=probe.beats, max_gap_ms=probe.gap_ms, held_ms=probe.held_ms)
        if not states or states[-1] != link.state:
            states.append(link.state)
        await asyncio.sleep_ms(20)
    ev("done", h=health(), ticks=probe.beats, max_gap_ms=probe.gap_ms, held_ms=probe.held_ms, times=times, states=states)

async def main():
    asyncio.create_task(meter())
    asyncio.create_task(link.run())
    await watch()
asyncio.run(main())
"""


@pytest.fixture
def modem():
    # starts powered off: the link must power it on with PWRKEY
    m = FakeModem(boot_ms=150, reg_ms=200, powered=False).start()
    yield m
    m.stop()


def start(modem, run_ms):
    return MpyProc(LINK_SCRIPT, [modem.path, str(modem.pin_port), str(run_ms)])


def test_the_link_powers_the_modem_on_registers_sets_the_clock_and_opens_the_data_call(modem):
    p = start(modem, 1500)
    try:
        up = p.wait("up", timeout=20)["h"]
        done = p.wait("done", timeout=20)
    finally:
        p.stop()
    assert modem.counts["boots"] == 1 and modem.counts["dials"] == 1
    assert up["state"] == "data" and up["sim"] == "READY" and up["reg"] == 1
    assert up["rssi_dbm"] == -73 and up["operator"] == "TestNet"
    assert up["imei"] == "867962041234567" and up["iccid"] == "89860012345678901234"
    assert len(done["times"]) == 1 and abs(done["times"][0] - time.time()) < 5
    assert done["states"][0] == "off" and done["states"][-1] == "data"
    assert done["held_ms"] < MAX_HELD_MS


def test_a_dropped_carrier_is_redialled_without_resetting_the_module(modem):
    p = start(modem, 30000)
    try:
        p.wait("up", timeout=20)
        modem.drop_carrier()
        down = p.wait("down", timeout=5)["h"]
        last = p.wait("up", timeout=10)
    finally:
        p.stop()
    up = last["h"]
    assert down["fail_reason"] == "carrier lost"
    assert modem.counts["dials"] == 2 and modem.counts["boots"] == 1
    assert up["redial"] == 1 and up["reset"] == 0 and up["power"] == 1
    assert last["held_ms"] < MAX_HELD_MS


def test_a_hung_modem_is_recovered_by_reset_then_power_cycle(modem):
    p = start(modem, 30000)
    try:
        p.wait("up", timeout=20)
        modem.hang()            # the AT interpreter dies and the call with it
        with modem.lock:
            modem.data_mode = False
            modem._send(b"\r\nNO CARRIER\r\n")
        ticks0 = p.wait("down", timeout=5)["ticks"]
        last = p.wait("up", timeout=30)
    finally:
        p.stop()
    up = last["h"]
    # redial got no answer, so the RESET line rebooted the module
    assert up["redial"] >= 1 and up["reset"] >= 1
    assert modem.counts["resets"] >= 1 and modem.counts["boots"] == 2
    # metering went on through the whole outage, never held by the link
    assert last["ticks"] > ticks0 and last["held_ms"] < MAX_HELD_MS


def test_a_module_dead_through_a_reset_is_power_cycled(modem):
    p = start(modem, 30000)
    try:
        p.wait("up", timeout=20)
        modem.fault = "silence"          # dead, and a reset does not help
        modem.drop_carrier()
        p.wait("down", timeout=5)
        wait_for(lambda: modem.counts["power_cycles"] >= 1, 20, "a power cycle")
        modem.fault = None               # the power cycle brought it back
        up = p.wait("up", timeout=20)["h"]
    finally:
        p.stop()
    assert up["redial"] >= 1 and up["reset"] >= 1 and up["power"] >= 2
    assert modem.counts["power_cycles"] >= 1 and modem.counts["resets"] >= 1


def test_without_a_sim_the_link_stays_down_climbs_the_ladder_and_says_why(modem):
    modem.fault = "nosim"
    p = start(modem, 4000)
    try:
        done = p.wait("done", timeout=20)
    finally:
        p.stop()
    h = done["h"]
    assert not any(e["ev"] == "up" and e["h"]["up"] for e in p.events)
    assert h["fail_reason"] == "sim ABSENT" and h["sim"] == "ABSENT"
    assert h["fails"] >= 2 and h["rung"] == "power" and h["power"] >= 2
    assert modem.counts["dials"] == 0
    assert done["held_ms"] < MAX_HELD_MS


def test_without_registration_the_link_backs_off_and_never_dials(modem):
    modem.fault = "noreg"
    p = start(modem, 4000)
    try:
        done = p.wait("done", timeout=20)
    finally:
        p.stop()
    h = done["h"]
    assert h["fail_reason"] == "not registered" and h["reg"] == 2
    assert h["backoff_ms"] > 0 and modem.counts["dials"] == 0
