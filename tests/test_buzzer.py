"""The buzzer (firmware/ui/buzzer.py): a pattern per warning level, the
relay-change alerts, the silencing rules and quiet hours, decided in
MicroPython from the credit policy and the injected times; then through the
sim board (what a running sim meter plays, from its buzzer_changes) and the
ESP32 board's PWM (tests/test_esp32_board.py)."""
import json
import time

import pytest

from mpy import run_mpy

DAY = 86400
M = 1767225600          # 2026-01-01 00:00 local
NOON = M + 12 * 3600

SCRIPT = r"""
import json
from firmware.ui.buzzer import Tones
from firmware.credit.policy import Policy, QUIET, BEEP_ONCE, REPEAT
from firmware.credit.engine import CreditEngine

NOON = %d
out = {}

def play(t, p, ms0, ms1, local=NOON, fault=None, step=10):
    # the tone at each step from ms0 to ms1, as runs [hz, from, to]
    runs = []
    for ms in range(ms0, ms1, step):
        hz = t.on(ms, local, p, fault)
        if runs and runs[-1][0] == hz:
            runs[-1][2] = ms + step
        else:
            runs.append([hz, ms, ms + step])
    return runs

def pol(level, alarm, warn=(5000, 1000), closed=True):
    p = Policy({"warn_minor": warn})
    p.level, p.alarm, p.relay_closed = level, alarm, closed
    return p

# the first call is no news: a meter that boots at level 1 beeps only
# when the policy counts a beep
t = Tones({})
p = pol(1, QUIET)
out["boot_quiet"] = play(t, p, 0, 1000)
p.beeps += 1                        # the policy's once-a-day beep
p.alarm = BEEP_ONCE
out["daily_beep"] = play(t, p, 1000, 5000)
# a rise to the last level (of 2) with the repeating alarm
p.level, p.alarm = 2, REPEAT
out["last_repeat"] = play(t, p, 10000, 13000)
# three thresholds: level 2 is "very low", not yet the last
t = Tones({})
p = pol(1, QUIET, warn=(5000, 2000, 1000))
play(t, p, 0, 10)
p.level, p.alarm = 2, REPEAT
out["very_low"] = play(t, p, 20000, 24000)
# the relay opens: the cut alert once, then no warning while the supply is off
p.relay_closed = False
out["cut"] = play(t, p, 30000, 34000)
p.relay_closed = True
out["back"] = play(t, p, 40000, 40400)
# the fault state loops its own alarm
t = Tones({})
p = pol(0, QUIET)
out["fault"] = play(t, p, 0, 2000, fault="fs")

# quiet hours 22:00-07:00, local meter time
t = Tones({"quiet_hours": "22:00-07:00"})
p = pol(1, QUIET)
play(t, p, 0, 10)
night = NOON + 11 * 3600            # 23:00
# a one-off beep at 21:59:59 sounds, at 22:00 it does not; 06:59:59 not, 07:00 again
bounds = []
for i, at in enumerate((10 * 3600 - 1, 10 * 3600, 19 * 3600 - 1, 19 * 3600)):
    p.beeps += 1
    bounds.append(t.on(100000 * (i + 1), NOON + at, p, None))
    play(t, p, 100000 * (i + 1) + 10, 100000 * (i + 1) + 4000)   # let it end
out["quiet_bounds"] = bounds
p.beeps += 1
out["night_beep"] = play(t, p, 1000, 4000, local=night)
p.level, p.alarm = 2, REPEAT        # the last warning before a cut sounds all the same
out["night_last"] = play(t, p, 5000, 6600, local=night)
p.relay_closed = False              # the cut itself at night: silent
out["night_cut"] = play(t, p, 7000, 9000, local=night)
out["bad_quiet"] = [Tones({"quiet_hours": x}).windows
                    for x in ("22:00", "25:00-07:00", "ab-cd", 5, None, "7:30-8:00", "1:00-2:00-3:00")]

# the silencing rules, with the real credit engine deciding the alarm
e = CreditEngine({"initial_balance_minor": 3000, "warn_minor": [5000, 2000, 1000],
                  "tariff": {"version": 1, "price_milli_per_kwh": 100000}, "reconnect": "auto"})
e.tick(0, NOON, 0)
t = Tones({})
play(t, e.policy, 0, 10)
e.tick(12000, NOON + 60, 60)        # 30.00 -> 18.00: level 2, repeating
trace = [[e.level, e.alarm, play(t, e.policy, 100, 2100)]]
e.press()                           # silenced
trace.append([e.level, e.alarm, play(t, e.policy, 3000, 5000)])
e.tick(0, NOON + 120, 60)           # still level 2: still silent
trace.append([e.level, e.alarm, play(t, e.policy, 6000, 8000)])
e.tick(10000, NOON + 180, 60)       # 18.00 -> 8.00: level 3, the silence is over
trace.append([e.level, e.alarm, play(t, e.policy, 9000, 11000)])
e.press()                           # silence the last level too
e.tick(8000, NOON + 240, 60)        # 8.00 -> 0: the cut, whatever the silence
trace.append([e.level, e.alarm, e.relay_closed, play(t, e.policy, 12000, 16000)])
out["silence"] = trace

# the UI polls it every 40 ms: it allocates nothing, in quiet hours or not
import micropython
t = Tones({"quiet_hours": "22:00-07:00"})
p = pol(2, REPEAT)
t.on(0, NOON, p, None)
p.beeps += 1
def locked(t, p):
    micropython.heap_lock()
    try:
        for ms in range(0, 24000, 40):   # a day of local hours, then the fault
            t.on(ms, NOON + (ms // 1000) * 3600, p, "fs" if ms > 20000 else None)
        return "ok"
    except MemoryError:
        return "allocated"
    finally:
        micropython.heap_unlock()
out["locked"] = locked(t, p)
print(json.dumps(out))
""" % NOON


@pytest.fixture(scope="module")
def r():
    return json.loads(run_mpy(SCRIPT).splitlines()[-1])


def sounding(runs):
    """[hz, ms] of each stretch with sound."""
    return [[hz, b - a] for hz, a, b in runs if hz]


def test_a_level_beeps_once_when_the_policy_counts_a_beep_and_the_last_level_repeats(r):
    assert sounding(r["boot_quiet"]) == []
    assert sounding(r["daily_beep"]) == [[2400, 150], [2400, 150]]       # two beeps, once
    # the rise to the last level plays it once, then REPEAT loops it: 3 beeps a 1.5 s
    beeps = sounding(r["last_repeat"])
    assert {hz for hz, _ in beeps} == {3200} and all(ms == 100 for _, ms in beeps)
    assert len(beeps) == 6


def test_a_middle_level_repeats_its_own_beep(r):
    assert sounding(r["very_low"]) == [[2700, 200]] * 2


def test_a_relay_change_plays_its_alert_and_no_warning_sounds_while_the_supply_is_off(r):
    assert sounding(r["cut"]) == [[2000, 800], [2000, 800]]
    assert sounding(r["back"]) == [[2700, 100], [3500, 150]]


def test_the_fault_state_loops_its_own_alarm(r):
    assert sounding(r["fault"]) == [[1500, 500], [1500, 500]]


def test_quiet_hours_silence_all_but_the_last_warning_before_a_cut(r):
    assert r["quiet_bounds"] == [2400, 0, 0, 2400]
    assert sounding(r["night_beep"]) == []
    assert sounding(r["night_last"]) == [[3200, 100]] * 3
    assert sounding(r["night_cut"]) == []
    assert r["bad_quiet"] == [[], [], [], [], [], [[27000, 28800]], []]


def test_a_press_silences_one_level_and_never_the_cut_alert(r):
    s = r["silence"]
    assert s[0][:2] == [2, 2] and sounding(s[0][2]) == [[2700, 200]]
    assert s[1][1] != 2 and sounding(s[1][2]) == []
    assert s[2][1] != 2 and sounding(s[2][2]) == []
    assert s[3][:2] == [3, 2] and {hz for hz, _ in sounding(s[3][2])} == {3200}
    assert s[4][2] is False and sounding(s[4][3]) == [[2000, 800], [2000, 800]]


def _since(log, after_ms):
    return [e for e in log if e[0] > after_ms]


def test_a_sim_meter_plays_the_last_warning_a_press_silences_it_and_the_cut_is_heard(sim_meters):
    # 5.00 with thresholds 50.00 and 10.00: the last level from boot, repeating
    m = sim_meters("bz1", config={"initial_balance_minor": 500, "warn_minor": [5000, 1000]}).start()
    st = m.wait_for(lambda s: sum(1 for _, hz in s["buzzer_changes"] if hz) >= 4, timeout=15)
    log = st["buzzer_changes"]
    assert {hz for _, hz in log if hz} == {3200}
    # each beep lasts about 100 ms (the UI polls every 40 ms)
    on = [b[0] - a[0] for a, b in zip(log, log[1:]) if a[1]]
    assert on and all(30 <= ms <= 400 for ms in on), on
    m.control({"cmd": "press", "button": "query", "ms": 120})
    time.sleep(1.0)                          # the press is seen at its release
    quiet_from = m.state()["buzzer_changes"][-1][0]
    time.sleep(2.0)                          # more than a cycle: nothing new sounds
    assert [e for e in _since(m.state()["buzzer_changes"], quiet_from) if e[1]] == []
    # the credit runs out: the cut alert sounds, whatever the press silenced
    m.control({"cmd": "pulses", "n": 4000})  # 4 kWh at 1.50
    m.wait_for(lambda s: not s["relay_closed"], timeout=10)
    st = m.wait_for(lambda s: any(hz == 2000 for _, hz in _since(s["buzzer_changes"], quiet_from)),
                    timeout=5)
    assert {hz for _, hz in _since(st["buzzer_changes"], quiet_from) if hz} == {2000}


def test_each_level_and_alert_has_its_own_pitch(r):
    pitch = [{hz for hz, _ in sounding(r[k])} for k in
             ("daily_beep", "very_low", "last_repeat", "cut", "back", "fault")]
    assert pitch == [{2400}, {2700}, {3200}, {2000}, {2700, 3500}, {1500}]


def test_the_decision_allocates_nothing(r):
    assert r["locked"] == "ok"
