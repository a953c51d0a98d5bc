# A fake of MicroPython's `machine` module as documented for the ESP32 port
# (docs.micropython.org: machine, machine.Pin, ADC, UART, WDT, RTC, SPI, I2C,
# PWM, Timer; esp32/quickref). Same class names, constructor and method signatures
# and constants (with the ESP32 port's values), so boards/esp32.py runs on it
# unchanged in the unix-port MicroPython (and in CPython for coverage).
#
# It records what the board did and lets a test drive the outside world:
#   log                    every output event, in order: ("pin", id, level, ms),
#                          ("spi", id, bytes), ("uart", id, bytes), ("pwm", ...)
#   drive(pin_id, level)   set the external level of an input, firing its IRQ
#   set_adc(pin_id, samples)  what an ADC pin reads (cycled, read_u16 scale)
#   fire_timer(id)         run a timer's callback as its interrupt would
#   on_idle                function idle() calls; by default idle() fires every
#                          running timer once (the next interrupt that wakes the CPU)
#   set_reset_cause(code), wdt (the last WDT made), rtc_datetime
# Input paths (drive, read_u16, fire_timer) allocate nothing, so tests can run
# the board's handlers under micropython.heap_lock().
import time

IDLE = 1
SLEEP = 2
DEEPSLEEP = 4
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
PIN_WAKE = 2
EXT0_WAKE = 2
EXT1_WAKE = 3
TIMER_WAKE = 4
TOUCHPAD_WAKE = 5
ULP_WAKE = 6

log = []
on_idle = None
_reset_cause = PWRON_RESET
_idle_calls = [0]


def reset_fakes():
    """Forget every pin, timer, ADC source and log entry (between test cases)."""
    global on_idle, _reset_cause, wdt
    del log[:]
    _pins.clear()
    _adc_src.clear()
    _timers.clear()
    _i2c_devices.clear()
    on_idle = None
    _reset_cause = PWRON_RESET
    wdt = None
    _idle_calls[0] = 0
    RTC._dt[:] = [2000, 1, 1, 5, 0, 0, 0, 0]


def set_reset_cause(code):
    global _reset_cause
    _reset_cause = code


def reset_cause():
    return _reset_cause


def idle():
    _idle_calls[0] += 1
    if on_idle is not None:
        on_idle()
        return
    for t in list(_timers.values()):
        t._fire()


def idle_calls():
    return _idle_calls[0]


def reset():
    raise SystemExit("machine.reset()")


def soft_reset():
    raise SystemExit("machine.soft_reset()")


def freq(hz=None):
    return 160000000 if hz is None else None


def unique_id():
    return b"\x24\x0a\xc4\x00\x00\x01"


# --- Pin ---------------------------------------------------------------------
# Per-GPIO state, shared by every Pin object made for that id (on the ESP32 a
# Pin is a handle on the one pad): [mode, pull, out, ext, handler, trigger, pin]
_M, _PULL, _OUT, _EXT, _H, _TRIG, _OBJ = 0, 1, 2, 3, 4, 5, 6
_pins = {}


def _state(pid):
    st = _pins.get(pid)
    if st is None:
        st = _pins[pid] = [None, None, 0, None, None, 0, None]
    return st


def drive(pin_id, level):
    """Put `level` on the pin from outside; fire its IRQ on a matching edge."""
    st = _state(pin_id)
    old = Pin._read(st)
    st[_EXT] = 1 if level else 0
    new = Pin._read(st)
    h = st[_H]
    if h is not None and old != new:
        trig = st[_TRIG]
        if (new and trig & Pin.IRQ_RISING) or (not new and trig & Pin.IRQ_FALLING):
            h(st[_OBJ])


def level(pin_id):
    """What the pin's wire carries now (output level, external level or pull)."""
    return Pin._read(_state(pin_id))


def pin_mode(pin_id):
    return _state(pin_id)[_M]


def pin_irq(pin_id):
    """(handler, trigger) registered on the pin."""
    st = _state(pin_id)
    return st[_H], st[_TRIG]


def pin_history(pin_id):
    """[(level, ms)] of every write to the pin as an output, oldest first."""
    return [(e[2], e[3]) for e in log if e[0] == "pin" and e[1] == pin_id]


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    PULL_HOLD = 4
    IRQ_RISING = 1
    IRQ_FALLING = 2
    IRQ_LOW_LEVEL = 4
    IRQ_HIGH_LEVEL = 5
    DRIVE_0 = 0
    DRIVE_1 = 1
    DRIVE_2 = 2
    DRIVE_3 = 3
    WAKE_LOW = 4
    WAKE_HIGH = 5

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=0, alt=-1, hold=None):
        if not isinstance(id, int) or not (0 <= id <= 39) or 6 <= id <= 11 or id in (20, 24, 28, 29, 30, 31):
            raise ValueError("invalid pin")
        self._id = id
        self._st = _state(id)
        self.init(mode, pull, value=value, drive=drive, alt=alt, hold=hold)

    def init(self, mode=-1, pull=-1, *, value=None, drive=0, alt=-1, hold=None):
        st = self._st
        if mode != -1:
            if mode in (Pin.OUT, Pin.OPEN_DRAIN) and self._id >= 34:
                raise ValueError("pin can only be input")
            st[_M] = mode
        if pull != -1:
            if pull is not None and self._id >= 34:
                raise ValueError("pin has no pull resistors")    # 34-39: input only, no pulls
            st[_PULL] = pull
        if value is not None:
            self.value(value)
        elif mode == Pin.OUT or mode == Pin.OPEN_DRAIN:
            self.value(st[_OUT])       # the pad starts driving its output latch

    @staticmethod
    def _read(st):
        m = st[_M]
        if m == Pin.OUT or m == Pin.OPEN_DRAIN:     # no tuple: this runs under heap_lock
            return st[_OUT]
        if st[_EXT] is not None:
            return st[_EXT]
        return 1 if st[_PULL] == Pin.PULL_UP else 0

    def value(self, x=None):
        if x is None:
            return Pin._read(self._st)
        lv = 1 if x else 0
        st = self._st
        st[_OUT] = lv
        m = st[_M]
        if m == Pin.OUT or m == Pin.OPEN_DRAIN:
            log.append(("pin", self._id, lv, time.ticks_ms()))
        return None

    def __call__(self, x=None):
        return self.value(x)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def toggle(self):
        self.value(1 - self._st[_OUT])

    def irq(self, handler=None, trigger=3, *, priority=1, wake=None, hard=False):
        st = self._st
        st[_H] = handler
        st[_TRIG] = trigger
        st[_OBJ] = self
        self.irq_hard = hard
        return _PinIRQ(self)

    def __repr__(self):
        return "Pin(%d)" % self._id


class _PinIRQ:
    def __init__(self, pin):
        self._pin = pin

    def trigger(self, trigger=None):
        return self._pin._st[_TRIG]


def _pin_id(p):
    if isinstance(p, Pin):
        return p._id
    if isinstance(p, int):
        return p
    raise TypeError("expecting a pin")


# --- ADC ---------------------------------------------------------------------
_adc_src = {}   # pin id -> [samples (read_u16 scale), next index]


def set_adc(pin_id, samples):
    """What the ADC on `pin_id` reads: read_u16 values, cycled."""
    src = _adc_src.get(pin_id)
    if src is None:
        _adc_src[pin_id] = [samples, 0]
    else:                       # an ADC object made earlier reads the new source
        src[0] = samples
        src[1] = 0


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_9BIT = 9
    WIDTH_10BIT = 10
    WIDTH_11BIT = 11
    WIDTH_12BIT = 12

    def __init__(self, pin, *, atten=None):
        pid = _pin_id(pin)
        if not (32 <= pid <= 39 or pid in (0, 2, 4, 12, 13, 14, 15, 25, 26, 27)):
            raise ValueError("invalid pin")
        self._pid = pid
        self._atten = ADC.ATTN_0DB if atten is None else atten
        self._src = _adc_src.get(pid)
        if self._src is None:
            self._src = _adc_src[pid] = [(0,), 0]

    def init(self, *, atten=None):
        if atten is not None:
            self._atten = atten

    def atten(self, atten):
        self._atten = atten

    def width(self, bits):
        pass

    def read_u16(self):
        src = self._src
        samples = src[0]
        i = src[1]
        if i >= len(samples):
            i = 0
        src[1] = i + 1
        return samples[i]

    def read(self):
        return self.read_u16() >> 4

    def read_uv(self):
        # full scale at 11 dB is about 2.45 V (quickref); millivolt resolution
        return self.read_u16() * 2450 // 65535 * 1000

    def deinit(self):
        pass


# --- UART --------------------------------------------------------------------
class UART:
    INV_TX = 1
    INV_RX = 2
    INV_RTS = 4
    INV_CTS = 8
    RTS = 1
    CTS = 2
    IRQ_RX = 1
    IRQ_RXIDLE = 2
    IRQ_BREAK = 4

    def __init__(self, id, baudrate=115200, bits=8, parity=None, stop=1, **kw):
        if id not in (0, 1, 2):
            raise ValueError("UART(%d) does not exist" % id)
        self.id = id
        self.rx = bytearray()
        self.tx = bytearray()
        self.config = {}
        self.irq_handler = None
        self.init(baudrate, bits, parity, stop, **kw)

    def init(self, baudrate=115200, bits=8, parity=None, stop=1, *, tx=None, rx=None,
             rts=None, cts=None, txbuf=None, rxbuf=None, timeout=None, timeout_char=None,
             invert=None, flow=None):
        self.config.update(baudrate=baudrate, bits=bits, parity=parity, stop=stop, tx=tx,
                           rx=rx, rts=rts, cts=cts, txbuf=txbuf, rxbuf=rxbuf, timeout=timeout,
                           timeout_char=timeout_char, invert=invert, flow=flow)

    def feed(self, data):
        """Test side: bytes arriving from the modem."""
        self.rx.extend(data)

    def deinit(self):
        pass

    def any(self):
        return len(self.rx)

    def read(self, nbytes=None):
        if not self.rx:
            return None
        n = len(self.rx) if nbytes is None else min(nbytes, len(self.rx))
        out = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return out

    def readinto(self, buf, nbytes=None):
        data = self.read(len(buf) if nbytes is None else nbytes)
        if data is None:
            return None
        buf[:len(data)] = data
        return len(data)

    def readline(self):
        i = self.rx.find(b"\n")
        return self.read(None if i < 0 else i + 1)

    def write(self, buf):
        self.tx.extend(buf)
        log.append(("uart", self.id, bytes(buf)))
        return len(buf)

    def sendbreak(self):
        pass

    def flush(self):
        pass

    def txdone(self):
        return True

    def irq(self, handler=None, trigger=0, hard=False):
        self.irq_handler = handler
        return None


# --- WDT ---------------------------------------------------------------------
wdt = None


class WDT:
    def __init__(self, id=0, timeout=5000):
        global wdt
        if timeout < 1000:
            raise ValueError("timeout must be >= 1000 ms")   # quickref: 1 s minimum
        self.timeout = timeout
        self.feeds = 0
        wdt = self

    def feed(self):
        self.feeds += 1


# --- RTC ---------------------------------------------------------------------
class RTC:
    _dt = [2000, 1, 1, 5, 0, 0, 0, 0]   # (y, m, d, weekday, h, min, s, subseconds)

    def __init__(self, id=0):
        pass

    def init(self, datetime):
        self.datetime(datetime)

    def datetime(self, datetimetuple=None):
        if datetimetuple is None:
            return tuple(RTC._dt)
        if len(datetimetuple) != 8:
            raise ValueError("need an 8-tuple")
        RTC._dt[:] = list(datetimetuple)
        return None

    def memory(self, data=None):
        return b""


# --- SPI ---------------------------------------------------------------------
class SPI:
    CONTROLLER = 0
    MSB = 0
    LSB = 1

    def __init__(self, id, baudrate=1000000, *, polarity=0, phase=0, bits=8, firstbit=0,
                 sck=None, mosi=None, miso=None):
        if id not in (1, 2):
            raise ValueError("SPI(%d) doesn't exist" % id)
        self.id = id
        self.init(baudrate, polarity=polarity, phase=phase, bits=bits, firstbit=firstbit,
                  sck=sck, mosi=mosi, miso=miso)

    def init(self, baudrate=1000000, *, polarity=0, phase=0, bits=8, firstbit=0,
             sck=None, mosi=None, miso=None):
        self.baudrate = baudrate
        self.polarity = polarity
        self.phase = phase
        self.pins = (sck and _pin_id(sck), mosi and _pin_id(mosi), miso and _pin_id(miso))

    def deinit(self):
        pass

    def write(self, buf):
        log.append(("spi", self.id, bytes(buf)))
        return None

    def read(self, nbytes, write=0x00):
        return bytes([0] * nbytes)

    def readinto(self, buf, write=0x00):
        for i in range(len(buf)):
            buf[i] = 0

    def write_readinto(self, write_buf, read_buf):
        log.append(("spi", self.id, bytes(write_buf)))
        for i in range(len(read_buf)):
            read_buf[i] = 0


# --- I2C ---------------------------------------------------------------------
# A test attaches a device at an address (attach_i2c): an object with
# write(bytes) and read(n) -> bytes. A transfer to an empty address raises
# OSError(ENODEV), as the port does when nothing acknowledges.
_i2c_devices = {}


def attach_i2c(addr, device):
    if device is None:
        _i2c_devices.pop(addr, None)
    else:
        _i2c_devices[addr] = device


class I2C:
    def __init__(self, id, *, scl=None, sda=None, freq=400000, timeout=50000):
        if id not in (0, 1):
            raise ValueError("I2C(%d) doesn't exist" % id)
        self.id = id
        self.pins = (scl and _pin_id(scl), sda and _pin_id(sda))
        self.freq = freq

    def _dev(self, addr):
        d = _i2c_devices.get(addr)
        if d is None:
            raise OSError(19)   # ENODEV: no acknowledge
        return d

    def scan(self):
        return sorted(_i2c_devices)

    def writeto(self, addr, buf, stop=True):
        self._dev(addr).write(bytes(buf))
        return len(buf)

    def readfrom(self, addr, nbytes, stop=True):
        return self._dev(addr).read(nbytes)

    def readfrom_into(self, addr, buf, stop=True):
        data = self._dev(addr).read(len(buf))
        for i in range(len(buf)):
            buf[i] = data[i]


# --- PWM ---------------------------------------------------------------------
class PWM:
    def __init__(self, dest, *, freq=None, duty=None, duty_u16=None, duty_ns=None, invert=False):
        self.pin = _pin_id(dest)
        self._freq = 5000
        self._duty_u16 = 32768
        self.init(freq=freq, duty_u16=duty_u16, duty_ns=duty_ns, invert=invert)

    def init(self, *, freq=None, duty_u16=None, duty_ns=None, invert=False):
        if freq is not None:
            self.freq(freq)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)

    def deinit(self):
        self._duty_u16 = 0
        log.append(("pwm", self.pin, "deinit"))

    def freq(self, value=None):
        if value is None:
            return self._freq
        if not (1 <= value <= 40000000):
            raise ValueError("frequency must be from 1Hz to 40MHz")
        self._freq = value
        log.append(("pwm", self.pin, "freq", value))

    def duty_u16(self, value=None):
        if value is None:
            return self._duty_u16
        self._duty_u16 = value
        log.append(("pwm", self.pin, "duty_u16", value))

    def duty_ns(self, value=None):
        if value is None:
            return self._duty_u16 * 1000000000 // self._freq // 65535
        self._duty_u16 = value * self._freq * 65535 // 1000000000


# --- Timer -------------------------------------------------------------------
_timers = {}    # running timers by id


def fire_timer(id):
    """Run timer `id`'s callback as its interrupt would (no-op if stopped)."""
    t = _timers.get(id)
    if t is not None:
        t._fire()


def timer_running(id):
    t = _timers.get(id)
    return None if t is None else (t.mode, t.freq_hz, t.period_ms)


class Timer:
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id, *args, **kw):
        if not (0 <= id <= 3):
            raise ValueError("Timer(%d) doesn't exist" % id)   # ESP32: four hardware timers
        self.id = id
        self.callback = None
        if args or kw:
            self.init(*args, **kw)

    def init(self, *, mode=1, freq=-1, period=-1, callback=None):
        self.mode = mode
        self.freq_hz = freq
        self.period_ms = period
        self.callback = callback
        _timers[self.id] = self

    def deinit(self):
        if _timers.get(self.id) is self:
            del _timers[self.id]

    def _fire(self):
        cb = self.callback
        if self.mode == Timer.ONE_SHOT:
            self.deinit()
        if cb is None:
            raise TypeError("'NoneType' object isn't callable")
        cb(self)
