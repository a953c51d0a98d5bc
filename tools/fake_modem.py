"""A simulated SIM7600-class AT modem on a pty, for tests and the simulator.

The meter opens `modem.path` as its UART (firmware/boards/sim_uart.py). The
board's PWRKEY, RESET and power lines reach the modem as UDP datagrams on
loopback (`modem.pin_port`), so a power cycle really reboots it. Tests change
its behaviour at any time from the same process:

    m = FakeModem(boot_ms=200, reg_ms=300).start()
    m.fault = "nosim"      # None, nosim, noreg, error, garbage, silence
    m.hang()               # firmware hang: silent until a reset or power cycle
    m.drop_carrier()       # NO CARRIER in the middle of a data call
    m.stop()

Run it by hand: `python tools/fake_modem.py [--fault F]` prints the pty path.
"""
import os
import random
import select
import socket
import threading
import time
import tty

FAULTS = (None, "nosim", "noreg", "error", "garbage", "silence")


def _now_ms():
    return time.monotonic() * 1000.0


class FakeModem:
    def __init__(self, boot_ms=300, reg_ms=300, powered=True, fault=None, seed=1,
                 imei=b"867962041234567", iccid=b"89860012345678901234", operator=b"TestNet",
                 clock_utc=None):
        self.boot_ms, self.reg_ms = boot_ms, reg_ms
        self.fault = fault
        self.imei, self.iccid, self.operator = imei, iccid, operator
        self.clock_utc = clock_utc  # callable -> UTC seconds; None = time.time
        self.rng = random.Random(seed)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.pins = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.pins.bind(("127.0.0.1", 0))
        self.pin_port = self.pins.getsockname()[1]
        self.lock = threading.Lock()
        self.log = []            # commands received, in order
        self.counts = {"boots": 0, "dials": 0, "drops": 0, "power_cycles": 0, "resets": 0,
                       "hangups": 0}
        self.powered = powered
        self.booted_at = None    # ms when the module finished booting
        self.boot_due = None
        self.hung = False
        self.data_mode = False
        self.echo = True
        self.csq = 20
        self.pwrkey_since = None
        self._rx = bytearray()
        self._plus_run = 0
        self._running = False
        self._thread = None
        if powered:
            self._begin_boot()

    # --- control from tests
    def start(self):
        self._running = True
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._running = False
        if self._thread:
            self._thread.join(2)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self.pins.close()

    def hang(self):
        with self.lock:
            self.hung = True

    def drop_carrier(self):
        with self.lock:
            if self.data_mode:
                self.data_mode = False
                self.counts["drops"] += 1
                self._send(b"\r\nNO CARRIER\r\n")

    def registered(self):
        return (self.booted_at is not None and self.fault not in ("nosim", "noreg")
                and _now_ms() - self.booted_at >= self.reg_ms)

    # --- internals
    def _begin_boot(self):
        self.booted_at = None
        self.boot_due = _now_ms() + self.boot_ms
        self.data_mode = False
        self.hung = False
        self.echo = True
        self._rx = bytearray()

    def _send(self, data):
        try:
            os.write(self.master, data)
        except OSError:
            pass

    def _reply(self, *lines):
        out = b""
        if self.fault == "garbage":
            out += bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 12)))
        for line in lines:
            out += b"\r\n" + line + b"\r\n"
            if self.fault == "garbage" and self.rng.random() < 0.3:
                out += b"\r\n\xff\xfe\x00garbage\x81\r\n"
        self._send(out)

    def _pin(self, msg):
        name, _, level = msg.decode().partition(" ")
        level = int(level or 0)
        now = _now_ms()
        if name == "power":
            if not level and self.powered:
                self.powered = False
                self.booted_at = self.boot_due = None
                self.data_mode = False
                self.counts["power_cycles"] += 1
            elif level:
                self.powered = True  # needs PWRKEY to boot, like the real module
        elif name == "pwrkey":
            if level:
                self.pwrkey_since = now
            elif self.pwrkey_since is not None:
                held = now - self.pwrkey_since
                self.pwrkey_since = None
                if self.powered and self.booted_at is None and self.boot_due is None and held >= 50:
                    self._begin_boot()
        elif name == "reset" and level == 0 and self.powered:
            self.counts["resets"] += 1
            self._begin_boot()

    def _tick(self):
        now = _now_ms()
        if self.boot_due is not None and now >= self.boot_due:
            self.boot_due = None
            self.booted_at = now
            self.counts["boots"] += 1
            if self.fault != "silence":
                self._send(b"\r\nRDY\r\n")
                self._send(b"\r\n+CPIN: %s\r\n" % (b"READY" if self.fault != "nosim" else b"NOT INSERTED"))

    def _loop(self):
        while self._running:
            try:
                r, _, _ = select.select([self.master, self.pins], [], [], 0.02)
            except (OSError, ValueError):
                return
            with self.lock:
                if self.pins in r:
                    self._pin(self.pins.recv(64))
                if self.master in r:
                    try:
                        data = os.read(self.master, 512)
                    except OSError:
                        data = b""
                    self._input(data)
                self._tick()
            if not r:
                time.sleep(0.005)

    def _input(self, data):
        alive = self.powered and self.booted_at is not None
        if not alive or self.hung or self.fault == "silence":
            return  # a module that is off, booting or hung hears nothing
        if self.data_mode:
            # only the +++ escape sequence matters in data mode
            for c in data:
                self._plus_run = self._plus_run + 1 if c == 0x2B else 0
                if self._plus_run >= 3:
                    self._plus_run = 0
                    self.data_mode = False
                    self._reply(b"OK")
            return
        self._rx.extend(data)
        while True:
            i = self._rx.find(b"\r")
            if i < 0:
                if len(self._rx) > 512:
                    self._rx = bytearray()
                return
            line = bytes(self._rx[:i]).strip()
            del self._rx[:i + 1]
            if line:
                if self.echo:
                    self._send(line + b"\r")
                self.log.append(line)
                self._command(line)

    def _command(self, c):
        u = c.upper()
        if self.fault == "error" and u != b"AT":
            return self._reply(b"ERROR")
        if u == b"AT" or u.startswith(b"AT+CMEE") or u.startswith(b"AT+CREG=") or u.startswith(b"AT+CEREG="):
            return self._reply(b"OK")
        if u == b"ATE0":
            self.echo = False
            return self._reply(b"OK")
        if u == b"ATE1":
            self.echo = True
            return self._reply(b"OK")
        if u == b"AT+CPIN?":
            if self.fault == "nosim":
                return self._reply(b"+CME ERROR: 10")
            return self._reply(b"+CPIN: READY", b"OK")
        if u == b"AT+CSQ":
            return self._reply(b"+CSQ: %d,99" % (self.csq if self.fault != "nosim" else 99), b"OK")
        if u in (b"AT+CREG?", b"AT+CEREG?"):
            stat = 1 if self.registered() else (0 if self.fault == "nosim" else 2)
            name = b"+CREG" if u == b"AT+CREG?" else b"+CEREG"
            return self._reply(name + b": 0,%d" % stat, b"OK")
        if u == b"AT+COPS?":
            if self.registered():
                return self._reply(b'+COPS: 0,0,"' + self.operator + b'",7', b"OK")
            return self._reply(b"+COPS: 0", b"OK")
        if u in (b"AT+CGSN", b"AT+GSN"):
            return self._reply(self.imei, b"OK")
        if u == b"AT+CICCID":
            if self.fault == "nosim":
                return self._reply(b"+CME ERROR: 10")
            return self._reply(b"+ICCID: " + self.iccid, b"OK")
        if u == b"AT+CCLK?":
            t = self.clock_utc() if self.clock_utc else time.time()
            if not self.registered():
                return self._reply(b'+CCLK: "80/01/06,00:00:12+00"', b"OK")
            # local time in UTC+2 (8 quarter hours), as a network would send it
            lt = time.gmtime(int(t) + 2 * 3600)
            s = b'+CCLK: "%02d/%02d/%02d,%02d:%02d:%02d+08"' % (
                lt.tm_year % 100, lt.tm_mon, lt.tm_mday, lt.tm_hour, lt.tm_min, lt.tm_sec)
            return self._reply(s, b"OK")
        if u.startswith(b"AT+CGDCONT="):
            return self._reply(b"OK")
        if u.startswith(b"ATD*99"):
            self.counts["dials"] += 1
            if not self.registered():
                return self._reply(b"NO CARRIER")
            self.data_mode = True
            return self._reply(b"CONNECT 150000000")
        if u in (b"ATH", b"ATH0"):
            self.counts["hangups"] += 1
            self.data_mode = False
            return self._reply(b"OK")
        if u == b"AT+CFUN=1,1":
            self._reply(b"OK")
            self.counts["resets"] += 1
            self._begin_boot()
            return None
        return self._reply(b"ERROR")


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fault", choices=[f for f in FAULTS if f])
    ap.add_argument("--boot-ms", type=int, default=3000)
    ap.add_argument("--reg-ms", type=int, default=2000)
    a = ap.parse_args(argv)
    m = FakeModem(boot_ms=a.boot_ms, reg_ms=a.reg_ms, fault=a.fault).start()
    print(m.path, "pins udp", m.pin_port, flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        m.stop()


if __name__ == "__main__":
    main()
