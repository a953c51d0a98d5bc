# The simulated meter board for the unix-port MicroPython.
#
# It implements the same board API as boards/esp32.py (see docs/architecture.md)
# and adds a control socket on loopback so tests and `make run` can drive it:
# set the load, inject pulses, press the button, read relay/buzzer/LCD, scale or
# step the clock, raise the power-fail input. Its flash is a real LittleFS v2
# image in a host file, and its watchdog is a thread that kills the process
# when not fed, as the ESP32's hardware watchdog would reset the chip.
import array
import json
import os
import sys
import time

from micropython import const

from firmware.boards import flashdev

_ISO_EPOCH_2026 = 1767225600  # 2026-01-01T00:00:00Z, default start of sim time
_TONES_KEPT = const(16)       # buzzer changes the snapshot's buzzer_changes holds
_TICKS = const(512)           # meter ticks tick_times_ms holds
# real ms of the last _TICKS pulse_count() calls (a ring indexed by
# pulse_reads): how late the meter tick runs (tools/bench_flash.py). Made at
# the first tick_times_ms request, so its 2 KB are not taken from the heap
# figures of every other run
_tick_at = None


def _args(argv):
    opts = {}
    key = None
    for a in argv:
        if a.startswith("--"):
            key = a[2:]
            opts[key] = True
        elif key:
            opts[key] = a
            key = None
    return opts


class SimBoard:
    name = "sim"
    ADC_RATE_HZ = 3200
    # gain of the simulated IC's CF1 output (mHz per volt); tools/simmeter.py
    # provisions the same figure as the meter's cf1_mhz_per_v calibration
    CF1_MHZ_PER_V = 6720
    # (romfs slot running, a switch or roll-back to report), set by boot.py
    # from romslot; None: the code runs from files (no slots, no updates)
    slots = None

    def __init__(self, argv=None):
        o = _args(argv if argv is not None else sys.argv[1:])
        self.dir = o.get("flash", "build/sim")
        self.control_port = int(o.get("control", 0))
        self._config_path = o.get("config")
        self.maintenance = "hold-button" in o
        self.console = "console" in o   # the technician's console on stdin
        # power-cut campaigns (tools/powercut.py): the meter task's period, so
        # that a stepped clock can run one meter second per few real ms
        self._meter_every_ms = int(o.get("meter-every-ms", 0))
        self.pulse_reads = 0  # pulse_count() calls: one per meter tick
        self._modem_path = o.get("modem")          # pty of tools/fake_modem.py
        self._modem_pins = o.get("modem-pins")     # its UDP port for PWRKEY/RESET/power
        self._modem_uart = self._modem_lines = None
        try:
            os.mkdir(self.dir)
        except OSError:
            pass
        # meter time: sim_ms = base + real elapsed * scale (or stepped by hand)
        self._scale = int(o.get("scale", 1))
        self._step_mode = "step" in o
        saved = self._read_host("simclock")
        start_ms = int(o["epoch"]) * 1000 if "epoch" in o else (
            int(saved) if saved else _ISO_EPOCH_2026 * 1000)
        self._base_ms = start_ms
        self._real0 = time.ticks_ms()
        self._rtc_offset_ms = 0
        if "rtc-lost" in o:  # RTC lost its time in the cut: it restarts at 2000-01-01
            self._rtc_offset_ms = 946684800000 - start_ms
        # electrical world
        self.load_w = 0
        self.volts = 230
        self.pf_milli = 1000
        self.freq_hz = 50
        self.imp_per_kwh = int(o.get("imp", 1000))
        self._pulses = 0
        self._energy_wms = 0  # W*ms not yet turned into pulses
        self._has_cf1 = "no-cf1" not in o
        self._cf1_pulses = 0
        self._cf1_acc = 0     # CF1 pulses not yet whole, in 1e-6 pulses
        self._last_sim_ms = self.mono_ms()
        self._relay = True
        # The buzzer: [pitch sounding now (Hz, 0: silent), changes so far,
        # then a ring of the last _TONES_KEPT changes as (real ms, Hz)]; one
        # array, so a change allocates nothing
        self._buzzer = array.array("i", bytes(4 * (2 + 2 * _TONES_KEPT)))
        self._backlight = True
        self._lcd = None
        self.lcd_lines = []
        self._buttons = {}    # button -> [held until (ticks), press edges latched]
        self._tamper = False
        # keys typed through the "keys" control request, one poll each, a
        # release between two; --keypad fits the keypad (none by default,
        # as on the ESP32 board revision)
        self._keys = []
        if "keypad" not in o:
            self.keypad_key = None
        self._power_fail = False
        self._power_fail_cb = None
        self._wdt_timeout_ms = 0
        self._wdt_last = 0
        self._clock_saved = 0
        self.app = None  # the running app (serve_control): control queries about meter state
        cause = self._read_host("reset_cause")
        self._reset_cause = cause or "power"
        if cause:
            os.remove(self.dir + "/reset_cause")
        self.flash_dev = flashdev.mount(self.dir + "/flash.img", "/flash")
        # --flash-timing typ|max: erases and programs stall the process as
        # long as the board's flash chip takes (flashdev.timing), times
        # --flash-slowdown (a board with PPP active writes several times slower)
        self.flash_dev.timing = flashdev.timing(o.get("flash-timing"), int(o.get("flash-slowdown", 1)))

    # --- host-side files (outside the LittleFS: they model the outside world)
    def _read_host(self, name):
        try:
            with open(self.dir + "/" + name) as f:
                return f.read().strip()
        except OSError:
            return None

    def _write_host(self, name, text):
        with open(self.dir + "/" + name, "w") as f:
            f.write(text)

    # --- time
    def mono_ms(self):
        if self._step_mode:
            return self._base_ms
        return self._base_ms + time.ticks_diff(time.ticks_ms(), self._real0) * self._scale

    def advance(self, ms):
        """Step meter time by hand (tests); also valid in scaled mode."""
        self._integrate()
        self._base_ms += ms
        self._integrate()

    def set_scale(self, scale):
        self._base_ms = self.mono_ms()
        self._real0 = time.ticks_ms()
        self._scale = scale
        self._step_mode = scale == 0

    def rtc_get(self):
        return (self.mono_ms() + self._rtc_offset_ms) // 1000

    def rtc_set(self, utc_s):
        self._rtc_offset_ms = utc_s * 1000 - self.mono_ms()

    # --- metering inputs
    def _integrate(self):
        now = self.mono_ms()
        dt = now - self._last_sim_ms
        self._last_sim_ms = now
        if dt > 0 and self.volts > 0:
            # CF1: volts * mHz/V * ms = 1e-6 pulses
            self._cf1_acc += self.volts * self.CF1_MHZ_PER_V * dt
            n = self._cf1_acc // 1000000
            self._cf1_pulses += n
            self._cf1_acc -= n * 1000000
        if dt <= 0 or not self._relay or self.load_w <= 0:
            return  # the metering IC's CF output pulses for import only
        self._energy_wms += self.load_w * dt
        # pulses = Wh * imp/kWh / 1000 ; Wh = W*ms / 3_600_000
        per_pulse_wms = 3600000 * 1000 // self.imp_per_kwh
        n = self._energy_wms // per_pulse_wms
        self._pulses += n
        self._energy_wms -= n * per_pulse_wms

    def pulse_count(self):
        self.pulse_reads += 1
        if _tick_at:
            _tick_at[self.pulse_reads % _TICKS] = time.ticks_ms() & 0x3FFFFFFF
        self._integrate()
        return self._pulses

    def set_load(self, watts, volts=None, pf_milli=None, freq_hz=None):
        self._integrate()
        self.load_w = watts
        if volts is not None:
            self.volts = volts
        if pf_milli is not None:
            self.pf_milli = pf_milli
        if freq_hz is not None:
            self.freq_hz = freq_hz

    def inject_pulses(self, n):
        self._pulses += n

    def adc_capture(self, vbuf, ibuf):
        from firmware.boards import sim_adc
        watts = self.load_w if self._relay else 0
        return sim_adc.fill(vbuf, ibuf, self.ADC_RATE_HZ, self.volts, watts,
                            self.pf_milli, self.freq_hz, self.mono_ms())

    def cf1_count(self):
        """Cumulative CF1 pulses of the simulated BL0937-class IC, its SEL
        strapped to voltage: a frequency of CF1_MHZ_PER_V per volt of the
        supply, which is there whatever the relay does (the IC measures on
        the supply side). None with --no-cf1: a board without that output."""
        if not self._has_cf1:
            return None
        self._integrate()
        return self._cf1_pulses

    # --- outputs
    def relay_set(self, closed):
        self._integrate()
        self._relay = bool(closed)

    def relay_closed(self):
        return self._relay

    def buzzer(self, on, freq_hz=2700):
        # `on`: False/0 silent, True at freq_hz, or the pitch itself in Hz
        b = self._buzzer
        hz = (on if on is not True and on > 1 else freq_hz) if on else 0
        if hz != b[0]:
            k = 2 + b[1] % _TONES_KEPT * 2
            b[k] = time.ticks_ms()
            b[k + 1] = hz
            b[1] += 1
            b[0] = hz

    def lcd_show(self, fb_bytes, lines):
        # `lines` are the firmware's text rows (one bytearray it rewrites in
        # place): kept as they are, and made into strings only when asked
        # (lcd_text), so showing a frame allocates nothing here either
        self._lcd = fb_bytes
        self.lcd_lines = lines
        if not lines:
            # a frame without text: the self-test's (ui/render.py); for
            # tests, its lit pixels
            lit = 0
            for b in fb_bytes:
                while b:
                    lit += b & 1
                    b >>= 1
            line = "SIM-LCD-FRAME lit %d" % lit
            h = self.app.log_hold if self.app else None
            if h is None:
                print(line)
            elif len(h) < 32:
                # the technician's REPL is in raw mode (mpremote): printed after
                # it, as the app's own log lines are (firmware/app.py log)
                h.append(line)

    def lcd_text(self):
        """The rows last shown as strings, trailing blanks cut; the icon
        codes 1-11 (firmware/ui/render.py) as the characters tests/lcd.py
        names: signal bars 0-4, relay closed/open, warning, friendly
        credit, emergency credit, unsynced clock."""
        icons = " \u2581\u2582\u2583\u2585\u2587\u25cf\u25cb\u26a0\u263a\u271a\u29d6"
        rows = self.lcd_lines     # 8 rows of 16 cells, one after the other
        out = []
        for y in range(0, len(rows), 16):
            out.append("".join(icons[c] if c < 12 else chr(c) for c in rows[y:y + 16]).rstrip())
        return out

    def backlight(self, on):
        self._backlight = bool(on)

    # --- inputs
    def button_down(self, which="query"):
        b = self._buttons.get(which)
        return b is not None and time.ticks_diff(b[0], time.ticks_ms()) > 0

    def press(self, which="query", ms=100):
        # the request latches a press edge, as the ESP32's interrupt does:
        # a loop that stalls past the hold still sees the press
        b = self._buttons.setdefault(which, [0, 0])
        b[0] = time.ticks_add(time.ticks_ms(), ms)
        b[1] += 1

    def button_presses(self, which="query"):
        """Press edges so far (latched: counted when they happen)."""
        b = self._buttons.get(which)
        return b[1] if b else 0

    def keypad_key(self):
        q = self._keys
        return q.pop(0) if q else None

    def tamper_open(self):
        return self._tamper

    def power_fail(self):
        return self._power_fail

    def on_power_fail(self, cb):
        self._power_fail_cb = cb

    # --- watchdog: a thread stands in for the hardware timer
    def wdt_start(self, timeout_ms):
        import _thread
        self._wdt_timeout_ms = timeout_ms
        self._wdt_last = time.ticks_ms()
        _thread.start_new_thread(self._wdt_thread, ())

    def wdt_feed(self):
        now = time.ticks_ms()
        self._wdt_last = now
        # the outside world's time goes on across a power cut: remember it
        if time.ticks_diff(now, self._clock_saved) >= 2000:
            self._clock_saved = now
            self._write_host("simclock", str(self.mono_ms()))

    def _wdt_thread(self):
        import select
        # poll() as the sleep: time.sleep_ms in a second thread costs ~1.5 %
        # of a core on the unix port (it wakes every millisecond)
        idle = select.poll()
        while True:
            idle.poll(100)
            if time.ticks_diff(time.ticks_ms(), self._wdt_last) > self._wdt_timeout_ms:
                self._write_host("reset_cause", "wdt")
                print("SIM: watchdog reset")
                pid = open("/proc/self/stat").read().split()[0]
                os.system("kill -9 " + pid)

    def reset(self):
        # machine.reset(): the process ends as at a cut, and the launcher
        # (tools/simmeter.py, auto_restart) powers it up again
        self._write_host("reset_cause", "soft")
        print("SIM: reset")
        self._cut_now()

    def reset_cause(self):
        return self._reset_cause

    def flash_root(self):
        return "/flash"

    def provisioning(self):
        """The --config file; {} without one. Raises OSError or ValueError
        naming the file when it is missing or not a JSON object (config.read)."""
        if not self._config_path:
            return {}
        from firmware import config
        return config.read(self._config_path)

    def maintenance_held(self):
        return self.maintenance

    def ota(self):
        """For an update (docs/ota.md): the slots as boards/sim_ota.py sees
        them (loaded only for one), or None without slots."""
        if self.slots:
            from firmware.boards import sim_ota
            return sim_ota.Slots(self)

    # --- the technician's serial port: stdin/stdout of the process (a pipe
    # from tools/simmeter.py, or a pty from socat for mpremote)
    def console_io(self):
        """(stream, the most bytes the REPL takes in one go): it waits for one
        byte through a StreamReader, then takes what poll() says has arrived."""
        return sys.stdin.buffer, 256

    def console_guard(self, budget_ms):
        from firmware.boards.sim_console import Guard
        return Guard(budget_ms)

    def provisioning_save(self, cfg):
        """Write the provisioning file (the technician's provision() and
        config(key=value)); the next boot reads it."""
        import json
        if not self._config_path:
            raise OSError("no --config file to write")
        tmp = self._config_path + ".new"
        with open(tmp, "w") as f:
            json.dump(cfg, f)
        os.rename(tmp, self._config_path)

    # --- modem: a fake AT modem on a pty when --modem is given; once it
    # reports the data call up, sockets use the host's network
    def modem_uart(self):
        if self._modem_path and self._modem_uart is None:
            from firmware.boards.sim_uart import PtyUart
            self._modem_uart = PtyUart(self._modem_path)
        return self._modem_uart

    def _lines(self):
        if self._modem_pins and self._modem_lines is None:
            from firmware.boards.sim_uart import ModemLines
            self._modem_lines = ModemLines(int(self._modem_pins))
        return self._modem_lines

    def modem_power(self, on):
        if self._lines():
            self._modem_lines.power(on)

    def modem_pwrkey(self, level):
        if self._lines():
            self._modem_lines.pwrkey(level)

    def modem_reset(self, level):
        if self._lines():
            self._modem_lines.reset(level)

    # No modem_ppp() here: on the unix port the host's network stands in for
    # the PPP data call (firmware/link/modem.py).

    # --- control socket
    async def serve_control(self, app=None):
        """The control socket, serving board requests and, through
        sim_control.py, requests about `app`. None without --control."""
        import asyncio
        self.app = app
        # The unix port cannot report an ephemeral port, so the launcher picks one.
        if not self.control_port:
            return None
        if self._meter_every_ms:
            self._set_meter_every(self._meter_every_ms)
        server = await asyncio.start_server(self._client, "127.0.0.1", self.control_port)
        self._write_host("control.port", str(self.control_port))
        print("SIM-CONTROL", self.control_port)
        return server

    async def _client(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    reply = await self.control(json.loads(line))
                except Exception as e:
                    reply = {"ok": False, "error": repr(e)}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()

    async def control(self, req):
        cmd = req.get("cmd")
        if cmd == "load":
            self.set_load(req.get("w", self.load_w), req.get("v"), req.get("pf_milli"), req.get("hz"))
        elif cmd == "pulses":
            self.inject_pulses(int(req["n"]))
        elif cmd == "press":
            self.press(req.get("button", "query"), int(req.get("ms", 100)))
        elif cmd == "advance":
            self.advance(int(req["ms"]))
        elif cmd == "scale":
            self.set_scale(int(req["scale"]))
        elif cmd == "keys":   # type on the keypad: digits, "*" (clear), "#" (enter)
            if self.keypad_key is None:
                return {"ok": False, "error": "no keypad (start the sim with --keypad)"}
            for k in req["keys"]:
                if k in "0123456789*#":
                    self._keys.append(k)
                    self._keys.append(None)
        elif cmd == "tamper":
            self._tamper = bool(req.get("open", True))
        elif cmd == "powerfail":
            self._power_fail = True
            if self._power_fail_cb:
                self._power_fail_cb(None)
        elif cmd == "board":
            pass
        elif cmd in ("step", "arm_cut", "flash_stats", "meter_every_ms", "flash_timing", "tick_times_ms"):
            return await self._campaign_control(cmd, req)
        else:
            reply = None
            if self.app is not None:
                from firmware.boards import sim_control
                reply = await sim_control.request(self.app, self, req)
            return reply or {"ok": False, "error": "unknown command"}
        self._write_host("simclock", str(self.mono_ms()))
        return self.snapshot()

    # --- power-cut campaign controls (tools/powercut.py, docs/storage.md)
    def _set_meter_every(self, ms):
        # The app reads its meter period from this module global on every
        # loop; the campaign shortens it so each stepped meter second is one
        # tick, as on the board, only faster.
        sys.modules["firmware.app"].METER_EVERY_MS = ms

    def _cut_now(self):
        # flashdev calls this inside the block write it tore: the CPU stops
        print("SIM: power cut")
        pid = open("/proc/self/stat").read().split()[0]
        os.system("kill -9 " + pid)

    async def _campaign_control(self, cmd, req):
        import asyncio
        dev = self.flash_dev
        if cmd == "step":
            # One meter second (stepped clock): set the load, advance the
            # time, then wait until the meter task has read the pulse counter,
            # so no tick ever sees more than one step's energy.
            if "w" in req:
                self.set_load(int(req["w"]))
            if "n" in req:
                self.inject_pulses(int(req["n"]))
            reads = self.pulse_reads
            self.advance(int(req.get("ms", 1000)))
            self._write_host("simclock", str(self.mono_ms()))
            waited = 0
            while self.pulse_reads == reads and waited < int(req.get("timeout_ms", 3000)):
                await asyncio.sleep_ms(1)
                waited += 1
            out = self.snapshot()
            out["ticked"] = self.pulse_reads != reads
            return out
        if cmd == "arm_cut":
            # cut the power at the n-th block write from now (0 disarms); only
            # torn_bytes of that write land, then the process is SIGKILLed
            dev.arm_cut(int(req["after_writes"]), int(req.get("torn_bytes", 0)))
            dev.on_cut = self._cut_now
            return {"ok": True}
        if cmd == "flash_stats":
            return {"ok": True, "writes": dev.writes, "erases": dev.total_erases(),
                    "max_erases": dev.max_erases(), "progs": dev.progs,
                    "blocks": dev.block_count, "free_blocks": os.statvfs("/flash")[3],
                    "stall_us": dev.stall_us, "timing": dev.timing}
        if cmd == "flash_timing":
            # as --flash-timing / --flash-slowdown, while running
            dev.timing = flashdev.timing(req.get("mode"), int(req.get("n", 1)))
            return {"ok": True, "timing": dev.timing}
        if cmd == "tick_times_ms":
            # the real ms of the meter's pulse_count() calls since the first
            # request, the last _TICKS of them, oldest first (30-bit ticks_ms:
            # gaps wrap at 2**30)
            global _tick_at
            at = _tick_at
            if at is None:
                at = _tick_at = array.array("I", bytes(4 * _TICKS))
            n = min(self.pulse_reads, _TICKS)
            ms = [at[(self.pulse_reads - n + 1 + i) % _TICKS] for i in range(n)]
            return {"ok": True, "reads": self.pulse_reads, "ms": [t for t in ms if t]}
        self._set_meter_every(int(req["ms"]))
        return {"ok": True}

    def snapshot(self):
        b = self._buzzer
        n = b[1]
        log = [[b[2 + j % _TONES_KEPT * 2], b[3 + j % _TONES_KEPT * 2]]
               for j in range(n - _TONES_KEPT if n > _TONES_KEPT else 0, n)]
        return {"ok": True, "relay_closed": self._relay, "buzzer": b[0] > 0,
                "buzzer_pitch_hz": b[0], "buzzer_changes": log,
                "backlight": self._backlight, "lcd": self.lcd_text(), "load_w": self.load_w,
                "volts": self.volts, "pulses": self._pulses, "mono_ms": self.mono_ms(),
                "rtc_s": self.rtc_get(), "reset_cause": self._reset_cause}

    def lcd_frame_hex(self):
        import binascii
        return binascii.hexlify(self._lcd).decode() if self._lcd else ""

