# Drives boards/esp32.py through every method and branch against tests/fakes.
#
# Runs in the unix-port MicroPython (tests/test_esp32_board.py: the behaviour
# is asserted there on what this prints) and, unchanged, in CPython under
# `coverage` (tools/esp32_coverage.py: MicroPython has no settrace).
# stdin: one JSON line {"tmp": <scratch dir>, "cases": [names] or null}.
# stdout: one JSON line {case name: observations} per case.
import gc
import json
import sys
import time

import esp32
import machine
import micropython
import network
import vfs

from firmware.boards import esp32 as board_mod
from firmware.boards import pins

ON_MPY = sys.implementation.name == "micropython"
CFG = json.loads(sys.stdin.readline())
TMP = CFG["tmp"]
_serial = [0]


def fresh_board(partition=True, image=None, **prep):
    """Forget the previous board's world and boot a new one."""
    try:
        vfs.umount(board_mod.FLASH_ROOT)
    except OSError:
        pass
    machine.reset_fakes()
    esp32.reset_fakes()
    network.reset_fakes()
    if partition:
        if image is None:
            _serial[0] += 1
            image = "%s/part%d.img" % (TMP, _serial[0])
        esp32.add_partition(board_mod.DATA_PARTITION, 1 << 20, image)
    for k, v in prep.items():
        if k == "reset_cause":
            machine.set_reset_cause(v)
    # the board's 10k pull-up holds the supervisor line idle (GPIO35 has none)
    machine.drive(pins.POWER_FAIL, 1 - pins.POWER_FAIL_LEVEL)
    return board_mod.Esp32Board()


def wait_for(pred, ms=200):
    # scheduled callbacks run when the VM polls (sleep_ms does)
    t0 = time.ticks_ms()
    while not pred() and time.ticks_diff(time.ticks_ms(), t0) < ms:
        time.sleep_ms(1)
    return pred()


def case_identity():
    import asyncio
    b = fresh_board()
    return {"name": b.name, "adc_rate_hz": b.ADC_RATE_HZ, "flash_root": b.flash_root(),
            "console": b.console, "control_server": asyncio.run(b.serve_control())}


def case_pinmap():
    out = {}
    for k in dir(pins):
        v = getattr(pins, k)
        if k[0] != "_" and isinstance(v, int):
            out[k] = v
    return out


def case_pulses_across_wraps():
    b = fresh_board()
    p = esp32.pcnt_unit(pins.PULSE_PCNT_UNIT)
    total = 0
    seen = []
    # chunks that land exactly on, just before and far past the 16-bit limit
    for n in (1, board_mod.PCNT_MAX - 2, 1, 1, 1, 50000, board_mod.PCNT_MAX, 3 * board_mod.PCNT_MAX + 7, 12345):
        p.pulses(n)
        total += n
        seen.append([total, b.pulse_count()])
    # a wrap whose handler has not run yet: value() must run it first
    p.pulses(board_mod.PCNT_MAX, deliver=False)
    total += board_mod.PCNT_MAX
    seen.append([total, b.pulse_count()])
    return {"seen": seen, "wraps": b._cf.wraps, "pcnt_max": board_mod.PCNT_MAX,
            "config": [p._rising, p._falling, p._min, p._max, p._filter, p._running,
                       p._trigger, p._pin._id]}


def case_pulse_read_when_wrap_lands_between_reads():
    b = fresh_board()
    p = esp32.pcnt_unit(pins.PULSE_PCNT_UNIT)
    p.pulses(board_mod.PCNT_MAX - 2)
    reads = [0]
    orig_value = p.value

    def counting_value(value=None):
        reads[0] += 1
        return orig_value(value)
    p.value = counting_value
    # 5 pulses arrive right after the hardware read and the scheduler runs the
    # IRQ_MAX handler before the board looks at its wrap count again
    p.on_value = lambda: p.pulses(5)
    got = b.pulse_count()
    return {"got": got, "want": board_mod.PCNT_MAX + 3, "reads": reads[0]}


def case_pcnt_handler_allocates_nothing():
    b = fresh_board()
    p = esp32.pcnt_unit(pins.PULSE_PCNT_UNIT)
    p.pulses(board_mod.PCNT_MAX + 10, deliver=False)   # wrap pending, handler not yet run
    err = None
    micropython.heap_lock()
    try:
        p.deliver()
        p.deliver()            # nothing pending: the handler is not called again
    except MemoryError as e:
        err = repr(e)
    finally:
        micropython.heap_unlock()
    return {"error": err, "wraps": b._cf.wraps, "count": b.pulse_count(), "want": board_mod.PCNT_MAX + 10}


def case_cf1_counter():
    b = fresh_board()
    p = esp32.pcnt_unit(pins.CF1_PCNT_UNIT)
    p.pulses(board_mod.PCNT_MAX + 1545)        # past one wrap of the 16-bit unit
    out = {"count": b.cf1_count(), "want": board_mod.PCNT_MAX + 1545,
           "config": [p._rising, p._falling, p._min, p._max, p._filter, p._running,
                      p._trigger, p._pin._id],
           "energy_counter_untouched": b.pulse_count()}
    saved = pins.CF1
    pins.CF1 = None                            # a model without the CF1 input
    try:
        out["without_cf1"] = fresh_board().cf1_count()
    finally:
        pins.CF1 = saved
    return out


def _pulses_for(w, imp, t_ms):
    return w * t_ms * imp // 3600000000


def _run_meter(cf1, calibrated, phases):
    """A MeterCore on the ESP32 board, meter time stepped a second a tick, CF
    (and CF1) pulses delivered as the metering IC would make them."""
    from firmware import config
    from firmware.meter import MeterCore
    from firmware.ui import screens
    saved = pins.CF1
    if not cf1:
        pins.CF1 = None
    try:
        b = fresh_board()
    finally:
        pins.CF1 = saved
    t = [0]
    b.mono_ms = lambda: t[0]                   # meter time, stepped by the test
    prov = {"meter_id": "esp-1", "initial_balance_minor": 1000000, "reconnect": "auto",
            "protection": {"over_power": {"limit": 5000, "hold_s": 5, "retry_s": 600},
                           "under_voltage": {"limit": 200, "hold_s": 5, "retry_s": 600},
                           "over_voltage": {"limit": 260, "hold_s": 5, "retry_s": 600}}}
    if calibrated:
        prov["cf1_mhz_per_v"] = 6720
    core = MeterCore(b, config.load(prov))
    cf = esp32.pcnt_unit(pins.PULSE_PCNT_UNIT)
    trace = []
    lcd_phases = []   # the LCD at the end of each phase
    sent = cf1_sent = 0
    cf_total = cf1_total = 0
    for watts, volts, seconds in phases:
        t_start, cf_base, cf1_base = t[0], cf_total, cf1_total
        t_phase = t[0]
        for _ in range(seconds):
            t[0] += 1000
            dt = t[0] - t_start
            if b.relay_closed():
                cf_total = cf_base + _pulses_for(watts, 1000, dt)
            else:
                cf_base, t_start = cf_total, t[0]   # no current through an open relay
            cf.pulses(cf_total - sent)
            sent = cf_total
            if cf1:
                # the IC measures the supply side: CF1 runs whatever the relay does
                cf1_total = cf1_base + volts * 6720 * (t[0] - t_phase) // 1000000
                esp32.pcnt_unit(pins.CF1_PCNT_UNIT).pulses(cf1_total - cf1_sent)
                cf1_sent = cf1_total
            core.tick()
            closed, reason = core.relay_now()
            trace.append([t[0] // 1000, watts, volts, core.meas.power_w, core.meas.voltage_v,
                          closed, reason, b.relay_closed()])
        lcd_phases.append(_lcd_lines(core))
    lcd = lcd_phases[-1]
    events = [json.loads(e[3]) for e in core.events.outbox.entries]
    return {"trace": trace, "lcd": lcd, "lcd_phases": lcd_phases, "state": core.state(),
            "relay_events": [[e["closed"], e["reason"]] for e in events if e["kind"] == "relay"],
            "protection_events": [[e["event"], e["what"]] for e in events if e["kind"] == "protection"]}


def _lcd_lines(core):
    # the home, live power and supply screens as ui/panel.py draws them,
    # from a core without an App around it
    from firmware.ui import render, screens, texts

    class _App:
        cfg = core.cfg
        config_fault = session = modem = None

        def fault_lcd(self):
            return 0
    a = _App()
    a.core = core
    r = render.Renderer(texts.get("en"))
    v = screens.view(core.meter_id, core.cfg.get("currency", ""))
    screens.fill(v, a, False)
    out = []
    for k in (0, 4, 7):     # home, live power, supply
        screens.draw(r, v, k)
        out += [bytes(r.rows[y:y + 16]).decode().rstrip() for y in range(0, 128, 16)]
    return out


def case_pulse_only_meter():
    # MeterCore needs the LittleFS the fake partition mounts in MicroPython
    if not ON_MPY:
        return {}
    out = {}
    # no CF1 on the board, then CF1 wired but not calibrated: the voltage is
    # unknown either way, with under- and over-voltage configured
    for name, cf1 in (("no_cf1", False), ("uncalibrated", True)):
        r = _run_meter(cf1, False, [[1000, 230, 120], [8000, 230, 60]])
        out[name] = r
    # calibrated CF1: the voltage is measured, and a low supply trips
    out["calibrated"] = _run_meter(True, True, [[1000, 230, 60], [1000, 150, 30]])
    return out


def case_power_fail_isr():
    b = fresh_board()
    handler, trigger = machine.pin_irq(pins.POWER_FAIL)
    out = {"trigger_falling": trigger == machine.Pin.IRQ_FALLING,
           "hard": b._pf_pin.irq_hard,
           "before": b.power_fail()}
    # an edge before the app registered: nothing to schedule, nothing breaks
    machine.drive(pins.POWER_FAIL, 0)
    machine.drive(pins.POWER_FAIL, 1)
    calls = []
    b.on_power_fail(lambda arg: calls.append(arg))
    err = None
    micropython.heap_lock()
    try:
        machine.drive(pins.POWER_FAIL, 0)     # supervisor output falls: the hard ISR runs
    except MemoryError as e:
        err = repr(e)
    finally:
        micropython.heap_unlock()
    out["ran"] = wait_for(lambda: len(calls) == 1)
    out["calls"] = calls
    out["error"] = err
    out["during"] = b.power_fail()
    machine.drive(pins.POWER_FAIL, 1)         # supply back: rising edge, no callback
    wait_for(lambda: len(calls) > 1, 20)
    out["calls_after_recovery"] = len(calls)
    out["after"] = b.power_fail()
    return out


def case_button_edges():
    b = fresh_board()
    handler, trigger = machine.pin_irq(pins.BUTTON_QUERY)
    out = {"both_edges": trigger == machine.Pin.IRQ_FALLING | machine.Pin.IRQ_RISING,
           "hard": b._button.irq_hard,
           "before": b.button_presses()}
    err = None
    micropython.heap_lock()
    try:
        for _ in range(3):   # one press with contact bounce: three falling edges within a ms
            machine.drive(pins.BUTTON_QUERY, 0)
            machine.drive(pins.BUTTON_QUERY, 1)
    except MemoryError as e:
        err = e
    finally:
        micropython.heap_unlock()
    out["error"] = repr(err) if err else None
    out["bounced"] = b.button_presses()
    time.sleep_ms(80)        # a second press, after the debounce time
    machine.drive(pins.BUTTON_QUERY, 0)
    out["held"] = b.button_down()
    for _ in range(2):       # its release bounces: down again within ms
        machine.drive(pins.BUTTON_QUERY, 1)
        machine.drive(pins.BUTTON_QUERY, 0)
    machine.drive(pins.BUTTON_QUERY, 1)
    out["second"] = b.button_presses()
    out["other"] = b.button_presses("menu")
    return out


class _FullScheduler:
    # micropython.schedule with its queue full: documented to raise RuntimeError
    def schedule(self, fn, arg):
        raise RuntimeError("schedule queue full")


def case_power_fail_isr_with_full_schedule_queue():
    b = fresh_board()
    calls = []
    b.on_power_fail(lambda arg: calls.append(arg))
    out = {}
    if ON_MPY:
        # the real scheduler: inside a scheduled callback nothing else runs,
        # so the queue can be filled; then the supervisor fires, heap locked
        def filler(_):
            try:
                while True:
                    micropython.schedule(lambda a: None, None)
            except RuntimeError:
                pass
            micropython.heap_lock()
            try:
                machine.drive(pins.POWER_FAIL, 0)
            except Exception as e:
                out["error"] = repr(e)
            finally:
                micropython.heap_unlock()
            out["done"] = True
        micropython.schedule(filler, None)
        wait_for(lambda: "done" in out)
    else:
        real = board_mod.micropython
        board_mod.micropython = _FullScheduler()
        try:
            machine.drive(pins.POWER_FAIL, 0)
        except Exception as e:
            out["error"] = repr(e)
        finally:
            board_mod.micropython = real
        out["done"] = True
    wait_for(lambda: len(calls) > 0, 20)
    out["calls"] = len(calls)
    out["power_fail"] = b.power_fail()
    return out


def _wave(n, base, amp):
    out = []
    for k in range(n):
        # a triangle, integer only: distinct values so order and pairing show
        ph = k % 32
        tri = ph if ph < 16 else 32 - ph
        out.append(base + (tri - 8) * amp)
    return out


def case_adc_capture():
    from array import array
    b = fresh_board()
    vw = _wave(64, 32768, 3000)
    iw = _wave(64, 30000, 1111)
    machine.set_adc(pins.ADC_VOLTAGE, vw)
    machine.set_adc(pins.ADC_CURRENT, iw)
    vbuf = array("h", [0] * 64)
    ibuf = array("h", [0] * 48)      # the shorter buffer sets the count
    seen_timer = []
    err = [None]

    def isr_tick():
        # each interrupt, with the heap locked as in a hard timer IRQ
        if not seen_timer:
            seen_timer.append(machine.timer_running(pins.ADC_TIMER_ID))
        micropython.heap_lock()
        try:
            machine.fire_timer(pins.ADC_TIMER_ID)
        except MemoryError as e:
            err[0] = repr(e)
        finally:
            micropython.heap_unlock()
    machine.on_idle = isr_tick
    n = b.adc_capture(vbuf, ibuf)
    return {"n": n, "v": list(vbuf), "i": list(ibuf), "vw": vw, "iw": iw, "error": err[0],
            "timer": seen_timer[0], "timer_after": machine.timer_running(pins.ADC_TIMER_ID),
            "periodic": machine.Timer.PERIODIC}


def case_adc_capture_gives_up_when_the_timer_stops():
    from array import array
    b = fresh_board()
    machine.on_idle = lambda: None        # the timer never fires
    vbuf = array("h", [0] * 16)
    ibuf = array("h", [0] * 16)
    t0 = time.ticks_ms()
    n = b.adc_capture(vbuf, ibuf)
    return {"n": n, "ms": time.ticks_diff(time.ticks_ms(), t0),
            "timer_after": machine.timer_running(pins.ADC_TIMER_ID)}


def _coil_trace(events):
    # replay pin events: were both coils ever energised at once?
    on = pins.RELAY_COIL_ON
    lv = {pins.RELAY_CLOSE_COIL: 1 - on, pins.RELAY_OPEN_COIL: 1 - on}
    both = False
    for e in events:
        if e[0] == "pin" and e[1] in lv:
            lv[e[1]] = e[2]
            if lv[pins.RELAY_CLOSE_COIL] == on and lv[pins.RELAY_OPEN_COIL] == on:
                both = True
    return both


def case_relay():
    b = fresh_board()
    out = {"initial": b.relay_closed(),
           "idle_levels": [machine.level(pins.RELAY_CLOSE_COIL), machine.level(pins.RELAY_OPEN_COIL)]}
    start = len(machine.log)
    b.relay_set(False)
    out["after_open"] = b.relay_closed()
    b.relay_set(True)
    out["after_close"] = b.relay_closed()
    b.relay_set(True)       # asked again: pulses again
    out["close_pulses"] = machine.pin_history(pins.RELAY_CLOSE_COIL)
    out["open_pulses"] = machine.pin_history(pins.RELAY_OPEN_COIL)
    out["both_on"] = _coil_trace(machine.log[start:])
    out["end_levels"] = [machine.level(pins.RELAY_CLOSE_COIL), machine.level(pins.RELAY_OPEN_COIL)]
    out["pulse_ms"] = board_mod.RELAY_PULSE_MS
    out["coil_on"] = pins.RELAY_COIL_ON
    return out


def _spi_transactions(events, dc=None, cs=None):
    # each SPI write with the DC and CS levels at that moment
    lv = {pins.LCD_DC: dc, pins.LCD_CS: cs}
    out = []
    for e in events:
        if e[0] == "pin" and e[1] in lv:
            lv[e[1]] = e[2]
        elif e[0] == "spi":
            out.append([e[1], lv[pins.LCD_DC], lv[pins.LCD_CS], list(e[2])])
    return out


def case_lcd():
    # the power-on reset and init sequence are part of the boot
    b = fresh_board()
    boot = _spi_transactions(machine.log)
    rst = machine.pin_history(pins.LCD_RST)
    fb = bytearray(1024)
    for i in range(1024):
        fb[i] = (i * 7 + i // 128) & 0xFF
    start = len(machine.log)
    b.lcd_show(fb, ["BAL 12.34", "OK"])
    first = _spi_transactions(machine.log[start:], machine.level(pins.LCD_DC), machine.level(pins.LCD_CS))
    views = b._lcd_page_views
    fb[5] = 0xAA        # the renderer draws into the same buffer next time
    start = len(machine.log)
    b.lcd_show(fb, ["BAL 12.33"])
    second = _spi_transactions(machine.log[start:], machine.level(pins.LCD_DC), machine.level(pins.LCD_CS))
    bl = []
    b.backlight(False)
    bl.append(machine.level(pins.LCD_BACKLIGHT))
    b.backlight(True)
    bl.append(machine.level(pins.LCD_BACKLIGHT))
    return {"boot": boot, "rst": rst, "first": first, "second": second,
            "fb": list(fb), "views_reused": views is b._lcd_page_views, "lines": b.lcd_lines,
            "backlight": bl, "backlight_on": pins.BACKLIGHT_ON_LEVEL,
            "spi": [b._spi.id, b._spi.baudrate, b._spi.polarity, b._spi.phase, list(b._spi.pins)]}


def case_buzzer():
    b = fresh_board()
    start = len(machine.log)
    steps = []
    for args in ((True,), (True,), (True, 4000), (True, 4000), (False, 4000), (False,), (True, 2700)):
        b.buzzer(*args)
        steps.append([list(e[2:]) for e in machine.log[start:] if e[0] == "pwm" and e[1] == pins.BUZZER])
        start = len(machine.log)
    return {"steps": steps}


def case_buzzer_pattern():
    # the buzzer's decision (ui/buzzer.py) driving the board's PWM, as the UI
    # task does: a level-1 beep of the policy, polled every 10 ms
    from firmware.ui.buzzer import Tones
    from firmware.credit.policy import Policy
    b = fresh_board()
    p = Policy({})
    p.level = 1
    t = Tones({})
    b.buzzer(t.on(0, 0, p, None))
    p.beeps += 1
    start = len(machine.log)
    seen = []
    for ms in range(10, 3020, 10):
        b.buzzer(t.on(ms, 0, p, None))
        for e in machine.log[start:]:
            if e[0] == "pwm" and e[1] == pins.BUZZER:
                seen.append([ms] + list(e[2:]))
        start = len(machine.log)
    return {"seen": seen}


def case_inputs():
    b = fresh_board()
    out = {"rest": [b.button_down("query"), b.button_down(), b.maintenance_held()]}
    machine.drive(pins.BUTTON_QUERY, 0)
    out["held"] = [b.button_down("query"), b.button_down(), b.maintenance_held(), b.button_down("menu")]
    machine.drive(pins.BUTTON_QUERY, 1)
    out["released"] = b.button_down("query")
    machine.drive(pins.TAMPER, 0)          # cover on: the switch holds the line low
    out["cover_on"] = b.tamper_open()
    machine.drive(pins.TAMPER, 1)
    out["cover_off"] = b.tamper_open()
    out["pulls"] = [machine.Pin(pins.BUTTON_QUERY)._st[1] == machine.Pin.PULL_UP,
                    machine.Pin(pins.TAMPER)._st[1] == machine.Pin.PULL_UP]
    saved = pins.TAMPER
    pins.TAMPER = None                     # a model without the switch
    try:
        b2 = fresh_board()
        out["not_fitted"] = b2.tamper_open()
    finally:
        pins.TAMPER = saved
    return out


class _KeypadExpander:
    """A PCF8574 with a 4x3 key matrix: rows on P0-P3, columns on P4-P6. A
    held key joins its row and column, so a row written low pulls that
    column low; pins written 1 read high unless so pulled."""

    def __init__(self):
        self.out = 0xFF
        self.held = None      # (row, col) or None
        self.writes = 0

    def write(self, data):
        self.out = data[-1]
        self.writes += 1

    def read(self, n):
        v = self.out
        if self.held is not None:
            row, col = self.held
            if not (self.out >> row) & 1:
                v &= ~(1 << (4 + col)) & 0xFF
        return bytes([v] * n)


def case_keypad():
    out = {"not_fitted": fresh_board().keypad_key}
    saved = (pins.KEYPAD_SCL, pins.KEYPAD_SDA)
    pins.KEYPAD_SCL, pins.KEYPAD_SDA = 13, 14     # a board revision with the keypad's bus
    try:
        b = fresh_board()
        exp = _KeypadExpander()
        machine.attach_i2c(0x20, exp)
        out["idle"] = b.keypad_key()
        keys = []
        for row in range(4):
            for col in range(3):
                exp.held = (row, col)
                keys.append(b.keypad_key())
        out["keys"] = "".join(keys)
        exp.held = None
        out["released"] = b.keypad_key()
        out["scans"] = exp.writes
        machine.attach_i2c(0x20, None)          # unplugged: no acknowledge
        out["unplugged"] = b.keypad_key()
        out["bus"] = list(b._kp_bus.pins) + [b._kp_bus.id]
    finally:
        pins.KEYPAD_SCL, pins.KEYPAD_SDA = saved
    return out


def case_watchdog():
    b = fresh_board()
    b.wdt_feed()                            # before start: nothing to feed, no error
    out = {"before": machine.wdt is None}
    b.wdt_start(8000)
    for _ in range(3):
        b.wdt_feed()
    out["timeout"] = machine.wdt.timeout
    out["feeds"] = machine.wdt.feeds
    return out


def case_reset_cause():
    out = {}
    for code in (machine.PWRON_RESET, machine.HARD_RESET, machine.DEEPSLEEP_RESET,
                 machine.WDT_RESET, machine.SOFT_RESET, 99):
        b = fresh_board(partition=False, reset_cause=code)
        out[str(code)] = b.reset_cause()
    out["codes"] = [machine.PWRON_RESET, machine.HARD_RESET, machine.DEEPSLEEP_RESET,
                    machine.WDT_RESET, machine.SOFT_RESET]
    try:
        b.reset()
        out["reset_returned"] = True
    except SystemExit as e:  # the fake's machine.reset() never returns either
        out["reset_logged"] = e.args[0] == "machine.reset()"
    return out


def case_rtc():
    b = fresh_board(partition=False)
    first = b.rtc_get()        # the RTC's power-on time
    rows = []
    for ts in CFG.get("timestamps", []):
        b.rtc_set(ts)
        rows.append([ts, list(machine.RTC().datetime()), b.rtc_get()])
    return {"first": first, "rows": rows}


def case_mono_ms():
    b = fresh_board(partition=False)
    a = b.mono_ms()
    time.sleep_ms(30)   # real time passing is what is under test: mono_ms follows it
    c = b.mono_ms()

    # ticks_ms wraps at 2**30: meter time must not
    class Ticks:
        now = 0

        def ticks_ms(self):
            return Ticks.now

        def ticks_diff(self, x, y):
            # the ESP32's ticks period is 2**30 (the unix port's is larger)
            return ((x - y + (1 << 29)) & ((1 << 30) - 1)) - (1 << 29)

    real = board_mod.time
    board_mod.time = Ticks()
    try:
        Ticks.now = (1 << 30) - 10
        b._mono_ticks = Ticks.now
        m0 = b.mono_ms()
        Ticks.now = 5
        m1 = b.mono_ms()
        Ticks.now = 1005
        m2 = b.mono_ms()
    finally:
        board_mod.time = real
    return {"a": a, "c": c, "wrap": [m1 - m0, m2 - m1]}


def _image(path, blocks):
    # a 1 MB partition image: erased, except the given block starts
    blank = b"\xff" * 4096
    with open(path, "wb") as f:
        for n in range(256):
            data = blocks.get(n)
            f.write(blank if data is None else data + blank[len(data):])


def case_flash():
    out = {}
    img = TMP + "/flash-keep.img"
    b = fresh_board(image=img)
    out["first_boot"] = [b.mount_error is None, b.flash_dev.erases > 0]
    out["info"] = list(b.flash_dev.info()[:5])
    if ON_MPY:
        with open("/flash/state.json", "w") as f:
            f.write('{"balance_minor": 1234}')
    b = fresh_board(image=img)                 # second boot: mounts, formats nothing
    out["second_boot"] = [b.mount_error is None, b.flash_dev.erases]
    if ON_MPY:
        with open("/flash/state.json") as f:
            out["kept"] = f.read()
    # a filesystem whose superblocks are gone but whose data blocks are not:
    # report, never format
    bad = TMP + "/flash-bad.img"
    _image(bad, {0: b"\x00" * 4096, 1: b"\x00" * 4096, 5: b"DATA"})
    b = fresh_board(image=bad)
    out["damaged"] = [b.mount_error is not None, b.flash_dev.erases, b.flash_dev.progs]
    # superblocks torn by a cut during the very first format, nothing else
    torn = TMP + "/flash-torn.img"
    _image(torn, {0: b"\x00" * 100})
    b = fresh_board(image=torn)
    out["torn_first_format"] = [b.mount_error is None, b.flash_dev.erases > 0]
    b = fresh_board(partition=False)
    out["no_partition"] = [b.flash_dev is None, b.mount_error.args[0]]
    return out


def case_provisioning():
    from firmware.config import read_fault
    b = fresh_board(partition=False)
    out = {}

    def attempt():
        try:
            return ["ok", b.provisioning()]
        except (OSError, ValueError) as e:
            return [read_fault(e), str(e)]
    b.CONFIG_PATH = TMP + "/missing.json"
    out["missing"] = attempt()
    b.CONFIG_PATH = TMP + "/config.json"
    with open(b.CONFIG_PATH, "w") as f:
        f.write('{"meter_id": "m-0042", "broker_port": 8883}')
    out["given"] = attempt()
    b.CONFIG_PATH = TMP + "/broken.json"
    with open(b.CONFIG_PATH, "w") as f:
        f.write('{"meter_id": ')
    out["broken"] = attempt()
    out["tmp"] = TMP
    return out


def case_modem():
    b = fresh_board(partition=False)
    out = {"boot_levels": [machine.level(pins.MODEM_POWER), machine.level(pins.MODEM_PWRKEY),
                           machine.level(pins.MODEM_RESET)]}
    u = b.modem_uart()
    out["same_uart"] = u is b.modem_uart()
    c = u.config
    out["uart"] = [u.id, c["baudrate"], c["tx"], c["rx"]]
    b.modem_power(True)
    b.modem_pwrkey(1)
    b.modem_reset(1)
    out["driven"] = [machine.level(pins.MODEM_POWER), machine.level(pins.MODEM_PWRKEY),
                     machine.level(pins.MODEM_RESET)]
    b.modem_pwrkey(0)
    b.modem_reset(0)
    b.modem_power(False)
    out["released"] = [machine.level(pins.MODEM_POWER), machine.level(pins.MODEM_PWRKEY),
                       machine.level(pins.MODEM_RESET)]
    out["stop_before_start"] = b.ppp_stop() is None and not b.ppp_connected()
    ppp = b.ppp_start(u)
    out["ppp_stream_is_uart"] = ppp.stream is u
    out["rxidle_hooked"] = u.irq_handler is not None
    out["connected_before_ipcp"] = b.ppp_connected()
    ppp.link_up()
    out["connected"] = b.ppp_connected()
    b.ppp_stop()
    out["after_stop"] = [b.ppp_connected(), ppp.isconnected()]
    ppp2 = b.ppp_start(u, user="apnuser", key="apnpass")
    out["connects"] = [ppp.connects[0], ppp2.connects[0]]
    out["sec"] = [network.PPP.SEC_NONE, network.PPP.SEC_PAP]
    b.ppp_stop()
    ppp3 = b.modem_ppp(u)   # the modem link's entry point: provisioning has no PAP user
    out["modem_ppp"] = [ppp3.stream is u, ppp3.connects[0] == ppp.connects[0]]
    b.ppp_stop()
    return out


def case_console_guard():
    # the technician statement's budget: a one-shot timer armed for the
    # statement, gone after it; its callback schedules the interrupt
    b = fresh_board()
    g = b.console_guard(150)
    out = {"idle": machine.timer_running(pins.CONSOLE_TIMER_ID)}
    g.arm()
    out["armed"] = machine.timer_running(pins.CONSOLE_TIMER_ID)
    out["fired_before"] = g.disarm()
    out["after_disarm"] = machine.timer_running(pins.CONSOLE_TIMER_ID)
    g.arm()
    try:
        machine.fire_timer(pins.CONSOLE_TIMER_ID)
        # a MicroPython with micropython.schedule(kbd_intr, None) raises the
        # interrupt in the main program here, as it would in the statement
        t = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t) < 100:
            pass
    except KeyboardInterrupt:
        pass
    out["fired"] = [g.disarm(), g.why]
    out["io"] = b.console_io()[1]
    micropython.kbd_intr(3)
    return out


def case_calendar_edges():
    # direct use of the pure helpers on the dates that break naive code
    out = []
    for y, m, d in ((1970, 1, 1), (2000, 2, 29), (2000, 3, 1), (2100, 2, 28), (2100, 3, 1),
                    (2024, 12, 31), (2038, 1, 19), (2399, 12, 31), (2400, 2, 29)):
        s = board_mod.datetime_to_utc((y, m, d, 0, 0, 0, 0, 0))
        out.append([[y, m, d], s, list(board_mod.utc_to_datetime(s)[:3])])
    return out


CASES = [k[5:] for k in sorted(globals()) if k.startswith("case_")]
for name in (CFG.get("cases") or CASES):
    print(json.dumps({name: globals()["case_" + name]()}))
    gc.collect()    # one case's observations are gone before the next starts
try:
    vfs.umount(board_mod.FLASH_ROOT)
except OSError:
    pass
