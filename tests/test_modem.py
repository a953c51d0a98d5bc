"""The AT modem driver (lib/atmodem.py) against a simulated modem on a pty.

Firmware runs in the unix-port MicroPython; tools/fake_modem.py plays the
SIM7600-class module in this (CPython) process, with its fault modes.
"""
import calendar
import json
import time

import pytest
from hypothesis import given, settings, strategies as st

from fake_modem import FakeModem
from linkrig import LOOP_PROBE, MpyProc
from mpy import run_mpy_json

# Runs a list of driver calls against the pty given in argv and prints one
# JSON line with every result, the driver's health and the longest the
# program held a 10 ms ticker task (the driver must never block the loop):
# linkrig.LOOP_PROBE, net of the machine's load, as is each step's "_own_ms"
# (its duration less the time the process waited for a CPU).
DRIVER_SCRIPT = LOOP_PROBE + r"""
import sys, json, time, asyncio
import atmodem
from firmware.boards.sim_uart import PtyUart
uart = PtyUart(sys.argv[1])
urcs = []
m = atmodem.ATModem(uart, on_urc=lambda l: urcs.append(l.decode()))
probe = LoopProbe()
async def ticker():
    while True:
        await asyncio.sleep_ms(10)
        probe.beat()
def s(v):
    return v.decode() if isinstance(v, bytes) else v
async def main():
    t = asyncio.create_task(ticker())
    out = {}
    for step in sys.argv[2].split(","):
        t0, rq0 = time.ticks_ms(), _run_delay_ms()
        if step == "sync": r = await m.sync(3000)
        elif step == "setup": r = await m.setup()
        elif step == "sim": r = await m.read_sim()
        elif step == "signal": r = await m.read_signal()
        elif step == "reg": r = await m.read_registration()
        elif step == "op": r = await m.read_operator()
        elif step == "imei": r = await m.read_imei()
        elif step == "iccid": r = await m.read_iccid()
        elif step == "time": r = await m.read_time()
        elif step == "apn": r = await m.set_apn(b"internet.test")
        elif step == "dial": r = await m.dial(3000)
        elif step == "at": r = (await m.cmd(b"AT+CSQ", b"+CSQ:", 800))[0]
        elif step == "wait":
            print("EV " + json.dumps({"ev": "waiting"}))   # between commands: the test sends a URC now
            await asyncio.sleep_ms(700); m.poll(); r = None
        out[step] = s(r)
        out[step + "_ms"] = time.ticks_diff(time.ticks_ms(), t0)
        out[step + "_own_ms"] = out[step + "_ms"] - (_run_delay_ms() - rq0)
        out[step + "_timeouts"] = m.timeouts
    h = m.health()
    out["health"] = dict((k, s(v)) for k, v in h.items())
    out["urcs"] = urcs
    out["max_gap_ms"] = probe.gap_ms
    out["held_ms"] = probe.held_ms
    print("EV " + json.dumps({"ev": "done", "out": out}))
asyncio.run(main())
"""


def drive(modem, steps):
    p = MpyProc(DRIVER_SCRIPT, [modem.path, ",".join(steps)])
    try:
        return p.wait("done", timeout=30)["out"]
    finally:
        p.stop()


@pytest.fixture
def modem():
    m = FakeModem(boot_ms=0, reg_ms=0).start()   # the pty buffers what the driver sends first
    yield m
    m.stop()


ALL = ["sync", "setup", "sim", "signal", "reg", "op", "imei", "iccid", "time", "apn", "dial"]


def test_a_healthy_modem_reports_identity_signal_registration_time_and_connects(modem):
    out = drive(modem, ALL)
    assert out["sync"] is True and out["setup"] is True
    assert out["sim"] == "READY"
    assert out["signal"] == -113 + 2 * 20
    assert out["reg"] == 1
    assert out["op"] == "TestNet"
    assert out["imei"] == "867962041234567"
    assert out["iccid"] == "89860012345678901234"
    assert abs(out["time"] - time.time()) < 5          # +CCLK local time, back to UTC
    assert out["apn"] is True and out["dial"] is True
    assert b'AT+CGDCONT=1,"IP","internet.test"' in modem.log
    assert modem.counts["dials"] == 1 and modem.data_mode
    # sync's AT tries may time out while the line settles (what sync is for:
    # a booting module); once it answered, no command of a healthy one does
    assert out["health"]["rssi_dbm"] == -73 and out["health"]["at_timeouts"] == out["sync_timeouts"]


def test_echo_from_a_freshly_booted_module_is_not_mistaken_for_an_answer(modem):
    out = drive(modem, ["sync", "signal", "imei"])   # echo still on: no ATE0 sent
    assert modem.echo is True
    assert out["signal"] == -73 and out["imei"] == "867962041234567"


def test_no_sim_is_reported_as_absent_and_the_call_is_refused(modem):
    modem.fault = "nosim"
    out = drive(modem, ["sync", "setup", "sim", "reg", "dial"])
    assert out["sim"] == "ABSENT"
    assert out["reg"] == 0
    assert out["dial"] is False
    assert out["health"]["last_error"] == "ATD*99#: NO CARRIER" and out["health"]["at_errors"] >= 2


def test_no_registration_is_seen_as_searching_and_the_dial_fails(modem):
    modem.fault = "noreg"
    out = drive(modem, ["sync", "setup", "sim", "reg", "dial"])
    assert out["sim"] == "READY" and out["reg"] == 2 and out["dial"] is False


def test_error_replies_are_values_not_exceptions(modem):
    modem.fault = "error"
    out = drive(modem, ["sync", "setup", "sim", "signal", "apn"])
    assert out["sync"] is True
    assert out["setup"] is False and out["sim"] is None and out["signal"] is None
    assert out["apn"] is False
    assert out["health"]["at_errors"] >= 3


def test_garbage_bytes_on_the_line_do_not_corrupt_answers(modem):
    modem.fault = "garbage"
    out = drive(modem, ALL)
    assert out["sim"] == "READY" and out["signal"] == -73 and out["reg"] == 1
    assert out["imei"] == "867962041234567" and out["dial"] is True
    assert out["health"]["noise"] > 0


def test_a_silent_modem_times_out_within_the_bound_and_never_stalls_the_loop(modem):
    modem.fault = "silence"
    out = drive(modem, ["at", "sync"])
    # each waited its timeout, and not much more of its own (a loaded
    # machine may run it late: _own_ms leaves that out)
    assert out["at"] == "TIMEOUT"
    assert 800 <= out["at_ms"] and out["at_own_ms"] < 800 + 400
    assert out["sync"] is False and 3000 <= out["sync_ms"] and out["sync_own_ms"] < 3000 + 800
    assert out["health"]["at_timeouts"] >= 2
    assert out["held_ms"] < 100   # the 10 ms ticker kept running throughout


def test_unsolicited_lines_between_commands_reach_the_urc_handler(modem):
    p = MpyProc(DRIVER_SCRIPT, [modem.path, "sync,setup,wait,signal"])
    try:
        p.wait("waiting", timeout=30)   # setup answered, signal not yet asked
        with modem.lock:
            modem._send(b"\r\n+CEREG: 5\r\n")
        out = p.wait("done", timeout=30)["out"]
    finally:
        p.stop()
    assert "+CEREG: 5" in out["urcs"]
    assert out["signal"] == -73


# --- pure conversions, checked against CPython in one MicroPython process
CONV_SCRIPT = r"""
import sys, json, atmodem
cases = json.loads(sys.stdin.readline())
out = []
for kind, arg in cases:
    if kind == "cclk": out.append(atmodem.parse_cclk(arg.encode()))
    elif kind == "csq": out.append(atmodem.csq_to_dbm(arg))
    else: out.append(atmodem.reg_stat(arg.encode()))
print(json.dumps(out))
"""


def ref_cclk(yy, mo, dd, hh, mi, ss, tz):
    if yy < 24:
        return None
    return calendar.timegm((2000 + yy, mo, dd, hh, mi, ss)) - tz * 900


@settings(max_examples=1, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 99), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23),
                          st.integers(0, 59), st.integers(0, 59), st.integers(-48, 56)),
                min_size=300, max_size=300))
def test_network_time_converts_local_quarter_hour_offsets_to_utc(dates):
    cases, want = [], []
    for yy, mo, dd, hh, mi, ss, tz in dates:
        sign = "-" if tz < 0 else "+"
        cases.append(["cclk", '+CCLK: "%02d/%02d/%02d,%02d:%02d:%02d%s%02d"' % (yy, mo, dd, hh, mi, ss, sign, abs(tz))])
        want.append(ref_cclk(yy, mo, dd, hh, mi, ss, tz))
    for bad in ['+CCLK: "26/13/01,00:00:00+00"', '+CCLK: ', '+CCLK: "26/01/01,00:00:00*00"']:
        cases.append(["cclk", bad])
        want.append(None)
    for rssi in list(range(0, 32)) + [99]:
        cases.append(["csq", rssi])
        want.append(None if rssi == 99 else -113 + 2 * rssi)
    for line, stat in [("+CEREG: 0,1", 1), ("+CEREG: 5", 5), ("+CREG: 2,5,\"1A2B\",\"01C2\",7", 5),
                       ('+CEREG: 1,"1A2B","01C2",7', 1), ("+CREG: x", None)]:
        cases.append(["reg", line])
        want.append(stat)
    got = run_mpy_json(CONV_SCRIPT, cases)
    assert got == want
