# The ESP32 meter board: the board API of docs/architecture.md on the real
# hardware. It is written only against the documented MicroPython ESP32 APIs
# (machine.Pin/ADC/UART/WDT/RTC/SPI/PWM/Timer, esp32.PCNT/Partition,
# network.PPP, vfs) and takes every pin from boards/pins.py.
# tests/test_esp32_board.py runs every line of it against tests/fakes/.
#
# Two handlers run outside the normal flow and must not allocate:
# - _WrappedPcnt._on_max: the PCNTs' IRQ_MAX handler (run by the scheduler)
#   that extends a 16-bit hardware counter (CF and CF1);
# - _on_power_fail_edge: a hard pin ISR that hands the app's power-fail
#   callback to micropython.schedule.
# Every bound method they use is made once in __init__, for the same reason.
import array
import json
import time

import esp32
import machine
import micropython
import vfs
from machine import ADC, PWM, RTC, SPI, UART, WDT, Pin, Timer
from micropython import const

from firmware.boards import pins
from firmware.localtime import DAY_S, civil, days_from_civil, weekday

# Label of the 1 MB data partition in the board's partitions.csv, e.g.
#   meterdata, data, 0x83, , 1M
# (0x83: ESP-IDF's littlefs subtype; only the label is looked up). MicroPython's
# own "vfs" partition stays at "/" for the code. Factory flashing leaves it
# erased, so the first boot formats it.
DATA_PARTITION = "meterdata"
FLASH_ROOT = "/flash"
_BLOCK_SIZE = const(4096)          # ESP32 flash erase block
_IOCTL_BLOCK_COUNT = const(4)

# The PCNT counts up to this and resets to 0 there, raising IRQ_MAX, so each
# IRQ_MAX is exactly this many pulses.
PCNT_MAX = const(32767)
# Glitch filter on the CF input, in 80 MHz ticks (1023 = 12.8 us); CF pulses
# are tens of ms long.
_PCNT_FILTER = const(1023)

# Latching relay coil pulse; the datasheets of 60-100 A meter relays ask for
# 30-100 ms. One coil is never energised while the other is.
RELAY_PULSE_MS = const(80)
_BUTTON_DEBOUNCE_MS = const(50)    # press edges closer than this are contact bounce

_KEYPAD_ADDR = const(0x20)         # PCF8574 with A0-A2 tied low
_KEYS = "123456789*0#"             # the matrix, row by row

_BUZZER_DUTY_ON = const(32768)     # 50 % square wave: loudest for a piezo

# ST7565/UC1701-class controller: panel-specific bias, contrast, column offset.
_LCD_SPI_HZ = const(4000000)
_LCD_COL_OFFSET = const(0)
_LCD_PAGES = const(8)
_LCD_WIDTH = const(128)
_LCD_CONTRAST = const(0x10)
_LCD_INIT = (
    0xE2,        # system reset
    0xA2,        # bias 1/9
    0xA0,        # segment direction normal
    0xC8,        # common direction reversed (panel mounted upside up)
    0x2F,        # booster, regulator and follower on
    0x26,        # regulator resistor ratio
    0x81, _LCD_CONTRAST,  # electronic volume (two-byte command)
    0x40,        # display start line 0
    0xA6,        # not inverted
    0xA4,        # show RAM, not all points on
    0xAF,        # display on
)

# The sampling of the metering ADC is paced by a hardware timer whose callback
# reads one sample of each channel. On production hardware this job belongs to
# the ADC's DMA (the ESP32's "I2S-ADC" / adc_continuous mode), which samples
# without the CPU; MicroPython does not document that, so this uses what it
# does document: machine.Timer + ADC.read_u16. The callback allocates nothing.
_ADC_RATE_HZ = const(3200)
_ADC_SLACK_MS = const(50)          # a capture gives up this long after it should have ended

_MACHINE_CAUSES = (
    (machine.PWRON_RESET, "power"),
    (machine.HARD_RESET, "power"),       # reset pin or brown-out: power came back
    (machine.DEEPSLEEP_RESET, "power"),
    (machine.WDT_RESET, "wdt"),
    (machine.SOFT_RESET, "soft"),
)


# --- calendar: UTC seconds <-> machine.RTC datetime tuple; the date maths
# itself is firmware/localtime.py's (integer, the same on every port)

def utc_to_datetime(utc_s):
    """UTC seconds since 1970 -> machine.RTC tuple (weekday 0 = Monday)."""
    days = utc_s // DAY_S
    s = utc_s - days * DAY_S
    y, m, d = civil(days)
    return (y, m, d, weekday(days), s // 3600, s // 60 % 60, s % 60, 0)


def datetime_to_utc(dt):
    return days_from_civil(dt[0], dt[1], dt[2]) * DAY_S + dt[4] * 3600 + dt[5] * 60 + dt[6]


def _blank_beyond_superblock(part):
    # True when nothing past LittleFS's superblock pair was ever written: the
    # partition holds no data, so formatting it loses nothing.
    buf = bytearray(_BLOCK_SIZE)
    for b in range(2, part.ioctl(_IOCTL_BLOCK_COUNT, 0)):
        part.readblocks(b, buf)
        if buf.count(b"\xff") != _BLOCK_SIZE:
            return False
    return True


class _WrappedPcnt:
    """A PCNT unit counting rising edges on `pin`, extended past its 16 bits
    by counting IRQ_MAX events."""

    def __init__(self, unit, pin):
        self.wraps = 0
        self._flag_max = esp32.PCNT.IRQ_MAX
        self.pcnt = esp32.PCNT(unit, pin=Pin(pin, Pin.IN),
                               rising=esp32.PCNT.INCREMENT, falling=esp32.PCNT.IGNORE,
                               filter=_PCNT_FILTER, min=0, max=PCNT_MAX, value=0)
        self._handler = self._on_max
        self.irq = self.pcnt.irq(handler=self._handler, trigger=esp32.PCNT.IRQ_MAX)
        self.pcnt.start()

    def _on_max(self, pcnt):
        # flags() clears the events; value() spins until they are clear
        if self.irq.flags() & self._flag_max:
            self.wraps += 1

    def count(self):
        """Cumulative count. value() first runs any pending IRQ_MAX handler;
        a wrap can still land between the two reads, so read the wrap count
        on both sides and retry until they agree."""
        while True:
            wraps = self.wraps
            v = self.pcnt.value()
            if wraps == self.wraps:
                return wraps * PCNT_MAX + v


class Esp32Board:
    name = "esp32"
    ADC_RATE_HZ = _ADC_RATE_HZ
    console = True                  # the technician's console on UART0
    CONFIG_PATH = "/config.json"    # factory provisioning, on MicroPython's own filesystem
    slots = None                    # (romfs slot running, a report due), set by boot.py; None: code as files

    def __init__(self):
        # meter time: ticks_ms extended past its wrap (see mono_ms)
        self._mono_ticks = time.ticks_ms()
        self._mono_ms = 0
        self._rtc = RTC()
        self._init_pulses()
        self._init_adc()
        self._init_outputs()
        self._init_lcd()
        self._init_inputs()
        self._wdt = None
        self._uart = None
        self._ppp = None
        self._modem_power = Pin(pins.MODEM_POWER, Pin.OUT, value=0)
        self._modem_pwrkey = Pin(pins.MODEM_PWRKEY, Pin.OUT, value=0)
        self._modem_reset = Pin(pins.MODEM_RESET, Pin.OUT, value=0)
        self.mount_error = None
        self.flash_dev = self._mount_flash()

    # --- time
    def mono_ms(self):
        """Milliseconds since boot. ticks_ms() wraps every 2**30 ms; reading it
        at least once per 6 days (the meter reads it every second) keeps the
        extension exact."""
        now = time.ticks_ms()
        self._mono_ms += time.ticks_diff(now, self._mono_ticks)
        self._mono_ticks = now
        return self._mono_ms

    def rtc_get(self):
        return datetime_to_utc(self._rtc.datetime())

    def rtc_set(self, utc_s):
        self._rtc.datetime(utc_to_datetime(utc_s))

    # --- pulse counters: CF (energy) and CF1 (voltage), 16-bit PCNTs extended
    def _init_pulses(self):
        self._cf = _WrappedPcnt(pins.PULSE_PCNT_UNIT, pins.PULSE_CF)
        self._cf1 = _WrappedPcnt(pins.CF1_PCNT_UNIT, pins.CF1) if pins.CF1 is not None else None

    def pulse_count(self):
        """Cumulative CF pulses since boot."""
        return self._cf.count()

    def cf1_count(self):
        """Cumulative CF1 pulses since boot (a frequency proportional to Vrms);
        None on a board without the CF1 input."""
        return self._cf1.count() if self._cf1 is not None else None

    # --- ADC sample buffers
    def _init_adc(self):
        self._adc_v = ADC(Pin(pins.ADC_VOLTAGE), atten=ADC.ATTN_11DB)
        self._adc_i = ADC(Pin(pins.ADC_CURRENT), atten=ADC.ATTN_11DB)
        self._adc_timer = Timer(pins.ADC_TIMER_ID)
        self._vbuf = None
        self._ibuf = None
        self._adc_n = 0
        self._adc_k = 0
        self._adc_tick_cb = self._adc_tick

    def _adc_tick(self, timer):
        k = self._adc_k
        if k < self._adc_n:
            # read_u16 is 0..65535 whatever the ADC width: keep 12 bits
            self._vbuf[k] = self._adc_v.read_u16() >> 4
            self._ibuf[k] = self._adc_i.read_u16() >> 4
            self._adc_k = k + 1

    def adc_capture(self, vbuf, ibuf):
        """Fill vbuf and ibuf (array('h')) with simultaneous raw 12-bit samples
        at ADC_RATE_HZ; returns how many were taken (fewer only if the timer
        stopped firing). Blocks for len/ADC_RATE_HZ seconds."""
        n = min(len(vbuf), len(ibuf))
        self._vbuf = vbuf
        self._ibuf = ibuf
        self._adc_k = 0
        self._adc_n = n
        limit_ms = n * 1000 // _ADC_RATE_HZ + _ADC_SLACK_MS
        t0 = time.ticks_ms()
        self._adc_timer.init(mode=Timer.PERIODIC, freq=_ADC_RATE_HZ, callback=self._adc_tick_cb)
        try:
            while self._adc_k < n and time.ticks_diff(time.ticks_ms(), t0) < limit_ms:
                machine.idle()      # sleep until the next interrupt
        finally:
            self._adc_timer.deinit()
        self._vbuf = self._ibuf = None
        return self._adc_k

    # --- relay and buzzer
    def _init_outputs(self):
        off = 1 - pins.RELAY_COIL_ON
        self._coil_close = Pin(pins.RELAY_CLOSE_COIL, Pin.OUT, value=off)
        self._coil_open = Pin(pins.RELAY_OPEN_COIL, Pin.OUT, value=off)
        # A latching relay keeps its contacts through a reset, and nothing on
        # the board reads them back: the state is unknown (None) until the
        # first relay_set(), which the meter core makes at start.
        self._relay = None
        self._buzzer_pwm = PWM(Pin(pins.BUZZER), freq=2700, duty_u16=0)
        self._buzzer_hz = 2700
        self._buzzer_on = False

    def relay_set(self, closed):
        """Pulse the coil for `closed` (blocks RELAY_PULSE_MS). Always pulses,
        even when the state is believed to be right: re-latching is harmless
        and repairs a relay knocked over by a shock."""
        on = pins.RELAY_COIL_ON
        coil, other = ((self._coil_close, self._coil_open) if closed
                       else (self._coil_open, self._coil_close))
        other.value(1 - on)
        coil.value(on)
        time.sleep_ms(RELAY_PULSE_MS)
        coil.value(1 - on)
        self._relay = bool(closed)

    def relay_closed(self):
        return self._relay

    def buzzer(self, on, freq_hz=2700):
        # `on`: False/0 silent, True at freq_hz, or the pitch itself in Hz
        # (what ui/buzzer.py's patterns give, through MeterCore.buzzer_on)
        if on and on is not True and on > 1:
            freq_hz = on
        on = bool(on)
        if on == self._buzzer_on and (not on or freq_hz == self._buzzer_hz):
            return          # the UI calls this every poll: touch the PWM only on change
        if on and freq_hz != self._buzzer_hz:
            self._buzzer_pwm.freq(freq_hz)
            self._buzzer_hz = freq_hz
        self._buzzer_pwm.duty_u16(_BUZZER_DUTY_ON if on else 0)
        self._buzzer_on = on

    # --- LCD
    def _init_lcd(self):
        self._lcd_cs = Pin(pins.LCD_CS, Pin.OUT, value=1)
        self._lcd_dc = Pin(pins.LCD_DC, Pin.OUT, value=0)
        self._lcd_rst = Pin(pins.LCD_RST, Pin.OUT, value=0)
        self._backlight = Pin(pins.LCD_BACKLIGHT, Pin.OUT, value=pins.BACKLIGHT_ON_LEVEL)
        self._spi = SPI(pins.LCD_SPI_ID, baudrate=_LCD_SPI_HZ, polarity=0, phase=0,
                        sck=Pin(pins.LCD_SCK), mosi=Pin(pins.LCD_MOSI), miso=None)
        self._lcd_cmd_buf = bytearray(3)
        self._lcd_fb = None         # the frame buffer the page views below point into
        self._lcd_page_views = None
        self.lcd_lines = []
        time.sleep_ms(1)            # reset pulse: the controllers want >= 1 us low
        self._lcd_rst.value(1)
        time.sleep_ms(5)            # and some ms before the first command
        self._lcd_write(0, bytes(_LCD_INIT))

    def _lcd_write(self, dc, data):
        self._lcd_dc.value(dc)
        self._lcd_cs.value(0)
        self._spi.write(data)
        self._lcd_cs.value(1)

    def lcd_show(self, fb_bytes, lines):
        """Write a 128x64 MONO_VLSB frame page by page: in that layout byte
        page*128 + x holds pixels (x, 8*page .. 8*page+7), which is the
        controller's own display RAM layout."""
        if fb_bytes is not self._lcd_fb:
            # the renderer reuses one buffer, so these views are made once
            mv = memoryview(fb_bytes)
            self._lcd_page_views = [mv[p * _LCD_WIDTH:(p + 1) * _LCD_WIDTH]
                                    for p in range(_LCD_PAGES)]
            self._lcd_fb = fb_bytes
        cmd = self._lcd_cmd_buf
        cmd[1] = 0x10 | (_LCD_COL_OFFSET >> 4)     # column address, high nibble
        cmd[2] = _LCD_COL_OFFSET & 0x0F           # column address, low nibble
        for page in range(_LCD_PAGES):
            cmd[0] = 0xB0 | page                  # page address
            self._lcd_write(0, cmd)
            self._lcd_write(1, self._lcd_page_views[page])
        self.lcd_lines = lines

    def backlight(self, on):
        level = pins.BACKLIGHT_ON_LEVEL
        self._backlight.value(level if on else 1 - level)

    # --- inputs
    def _init_inputs(self):
        self._button = Pin(pins.BUTTON_QUERY, Pin.IN, Pin.PULL_UP)
        # press edges, latched by a hard interrupt: [presses, ticks of the
        # last edge] (ui/keys.py reads the count, so a press is seen even
        # when the loop was stalled through all of it, as by a flash erase)
        self._presses = array.array("i", (0, time.ticks_add(time.ticks_ms(), -_BUTTON_DEBOUNCE_MS)))
        self._press_isr = self._on_button_edge
        self._button.irq(handler=self._press_isr, trigger=Pin.IRQ_FALLING | Pin.IRQ_RISING, hard=True)
        self._tamper = Pin(pins.TAMPER, Pin.IN, Pin.PULL_UP) if pins.TAMPER is not None else None
        if pins.KEYPAD_SDA is None:
            self.keypad_key = None      # no keypad on this board (the board API's "not fitted")
        else:
            self._kp_bus = machine.I2C(pins.KEYPAD_I2C_ID, scl=Pin(pins.KEYPAD_SCL),
                                       sda=Pin(pins.KEYPAD_SDA), freq=100000)
            self._kp_buf = bytearray(1)
        self._pf_pin = Pin(pins.POWER_FAIL, Pin.IN)     # pull-up is on the board
        self._pf_cb = None
        self._pf_isr = self._on_power_fail_edge
        edge = Pin.IRQ_FALLING if pins.POWER_FAIL_LEVEL == 0 else Pin.IRQ_RISING
        self._pf_pin.irq(handler=self._pf_isr, trigger=edge, hard=True)

    def button_down(self, which="query"):
        if which != "query":
            return False
        return self._button.value() == pins.BUTTON_DOWN_LEVEL

    def button_presses(self, which="query"):
        """Press edges of a button since boot (debounced in the interrupt)."""
        return self._presses[0] if which == "query" else 0

    def _on_button_edge(self, pin):
        # Hard ISR: integer work on a preallocated array, nothing allocated.
        # Both edges come here: a press counts when the line goes down after
        # a quiet spell, so the bounce of a press and of a release (edges a
        # few ms apart) counts nothing more.
        p = self._presses
        now = time.ticks_ms()
        if pin.value() == pins.BUTTON_DOWN_LEVEL and time.ticks_diff(now, p[1]) >= _BUTTON_DEBOUNCE_MS:
            p[0] += 1
        p[1] = now

    def maintenance_held(self):
        """The query button held at power-up: boot.py then skips the app."""
        return self.button_down("query")

    def ota(self):
        """For an update (docs/ota.md): the slots as boards/esp32_ota.py
        sees them (loaded only for one), or None without slots."""
        if self.slots:
            from firmware.boards import esp32_ota
            return esp32_ota.Slots(self.slots[0])

    def keypad_key(self):
        """The keypad key held now ("0"-"9", "*", "#"), None when none is or
        the expander does not answer. One row at a time is pulled low (its
        PCF8574 pin written 0; the others and the columns written 1, which
        makes them inputs with a weak pull-up), and a held key pulls its
        column low. The app polls it (firmware/tokens/keypad.py)."""
        buf = self._kp_buf
        bus = self._kp_bus
        try:
            for row in range(4):
                buf[0] = 0xFF ^ (1 << row)
                bus.writeto(_KEYPAD_ADDR, buf)
                bus.readfrom_into(_KEYPAD_ADDR, buf)
                cols = (buf[0] >> 4) & 7
                if cols != 7:
                    return _KEYS[row * 3 + (0 if not cols & 1 else 1 if not cols & 2 else 2)]
        except OSError:   # no answer: unplugged or a bus glitch, read as no key
            pass
        return None

    def tamper_open(self):
        if self._tamper is None:
            return False
        return self._tamper.value() == pins.TAMPER_OPEN_LEVEL

    def power_fail(self):
        return self._pf_pin.value() == pins.POWER_FAIL_LEVEL

    def on_power_fail(self, cb):
        """cb(None) runs via micropython.schedule soon after the supervisor
        fires, outside the interrupt, where it may allocate and write flash."""
        self._pf_cb = cb

    def _on_power_fail_edge(self, pin):
        # hard ISR: no allocation, no flash; only queue the app's callback
        cb = self._pf_cb
        if cb is not None:
            try:
                micropython.schedule(cb, None)
            except RuntimeError:
                pass    # queue full: the app still sees power_fail() on its next poll

    # --- watchdog and reset cause
    def wdt_start(self, timeout_ms):
        self._wdt = WDT(timeout=timeout_ms)

    def wdt_feed(self):
        if self._wdt is not None:
            self._wdt.feed()

    def reset(self):
        # a hard reset of the chip: RAM is gone, the flash state is reloaded
        machine.reset()

    def reset_cause(self):
        cause = machine.reset_cause()
        for code, name in _MACHINE_CAUSES:
            if cause == code:
                return name
        return "power"

    # --- storage
    def _mount_flash(self):
        found = esp32.Partition.find(esp32.Partition.TYPE_DATA, label=DATA_PARTITION)
        if not found:
            self.mount_error = OSError(19)      # ENODEV: no such partition in this build
            return None
        part = found[0]
        try:
            vfs.mount(vfs.VfsLfs2(part), FLASH_ROOT)
        except OSError as e:
            # Format only a partition that holds nothing: one with data that
            # does not mount is a fault to report, never a silent factory reset.
            if not _blank_beyond_superblock(part):
                self.mount_error = e
                return part
            vfs.VfsLfs2.mkfs(part)
            vfs.mount(vfs.VfsLfs2(part), FLASH_ROOT)
        return part

    async def serve_control(self, app=None):
        """No control socket on a real board (the sim's test interface)."""
        return None

    def flash_root(self):
        return FLASH_ROOT

    # --- the technician's serial port: UART0, MicroPython's own stdin/stdout
    def console_io(self):
        """(stream, the most bytes the REPL takes in one go): it waits for one
        byte through a StreamReader, then takes what poll() says has arrived
        (the UART's receive buffer holds 256). Ctrl-C becomes an
        ordinary byte from here on: the meter is never interrupted by it
        (the console guard turns it back on for a technician's statement)."""
        import sys
        micropython.kbd_intr(-1)
        return getattr(sys.stdin, "buffer", sys.stdin), 256

    def console_guard(self, budget_ms):
        from firmware.boards.esp32_console import Guard   # loaded with the REPL, not at boot
        return Guard(budget_ms)

    def provisioning_save(self, cfg):
        """Write the factory config file (provision(), config(key=value))."""
        import json
        import os
        tmp = self.CONFIG_PATH + ".new"
        with open(tmp, "w") as f:
            json.dump(cfg, f)
        os.rename(tmp, self.CONFIG_PATH)

    def provisioning(self):
        """The factory config (meter id, keys, broker). Raises OSError or
        ValueError naming the file when it is missing or not a JSON object
        (config.read): the app then boots into its safe fault state (E63/E64,
        docs/simulator.md "Provisioning") instead of metering under the
        default meter id, or crash-looping."""
        from firmware import config
        return config.read(self.CONFIG_PATH)

    # --- LTE modem: the AT driver (lib/) owns the sequencing, this only wires it
    def modem_uart(self):
        if self._uart is None:
            self._uart = UART(pins.MODEM_UART_ID, baudrate=pins.MODEM_BAUD,
                              tx=pins.MODEM_TX, rx=pins.MODEM_RX,
                              txbuf=1024, rxbuf=2048, timeout=0, timeout_char=10)
        return self._uart

    def modem_power(self, on):
        self._modem_power.value(1 if on else 0)

    def modem_pwrkey(self, level):
        self._modem_pwrkey.value(level)

    def modem_reset(self, level):
        self._modem_reset.value(level)

    def ppp_start(self, uart, user=None, key=None):
        """Start the data call's PPP link over `uart` once the driver has the
        modem in data mode (after ATD*99#/CONNECT). Returns the network.PPP;
        ppp_connected() tells when the link is up. PAP when user is given."""
        import network
        ppp = network.PPP(uart)
        if user is None:
            ppp.connect()
        else:
            ppp.connect(security=network.PPP.SEC_PAP, user=user, key=key)
        self._ppp = ppp
        return ppp

    def modem_ppp(self, uart):
        """What firmware/link/modem.py asks for once the modem says CONNECT."""
        try:
            p = self.provisioning()
        except (OSError, ValueError):   # no PAP login then (no link starts without a config)
            p = {}
        return self.ppp_start(uart, p.get("ppp_user"), p.get("ppp_key"))

    def ppp_connected(self):
        return self._ppp is not None and self._ppp.isconnected()

    def ppp_stop(self):
        if self._ppp is not None:
            self._ppp.disconnect()
            self._ppp = None
