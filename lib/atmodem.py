# AT command driver for Cat-1/Cat-4 LTE modules (SIMCom SIM7600/A7670,
# Quectel EC2x class), written for asyncio on MicroPython.
#
# The driver talks to any stream with read(n) -> bytes|None, write(b) and
# any() -> int (machine.UART, or a pty on the unix port). It never blocks:
# every command waits by polling the stream between asyncio sleeps, and every
# wait has a deadline. Results are values, not exceptions: a command returns
# (final, lines) where `final` is b"OK", b"ERROR", b"CONNECT", ..., or TIMEOUT.
#
# Pins and power are not the driver's business: power_on() takes the PWRKEY
# setter as an argument, so the same driver serves any board.
import asyncio
import time
from micropython import const

TIMEOUT = b"TIMEOUT"
POLL_MS = const(20)          # stream poll period while a command is pending
LINE_MAX = const(200)        # longer lines are noise (or PPP bytes): dropped
CMD_TIMEOUT_MS = const(1500)  # ordinary commands answer in well under a second
PWRKEY_PULSE_MS = const(600)  # SIM7600 and EC2x want >= 500 ms, A7670 >= 50 ms

# Final result codes end a command. `CONNECT` ends ATD with the data call up.
_FINAL = (b"OK", b"ERROR", b"NO CARRIER", b"NO DIALTONE", b"BUSY", b"NO ANSWER")
_FINAL_PREFIX = (b"+CME ERROR", b"+CMS ERROR", b"CONNECT")
# Lines that arrive unasked. During a command they are routed to the URC
# handler unless they carry the prefix the command is waiting for.
_URC_PREFIX = (b"+C", b"+Q", b"+PDP", b"+SIM", b"*ATREADY", b"RDY", b"RING",
               b"SMS DONE", b"PB DONE", b"NO CARRIER", b"POWERED DOWN")

# +CREG/+CEREG registration states
REG_HOME = const(1)
REG_ROAMING = const(5)


def csq_to_dbm(rssi):
    """3GPP TS 27.007 +CSQ rssi code -> dBm; None when unknown (99)."""
    if rssi is None or rssi == 99 or rssi < 0 or rssi > 31:
        return None
    return -113 + 2 * rssi


def _days_from_civil(y, m, d):
    # days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    # The firmware's calendar is firmware/localtime.py; this driver keeps its
    # own few lines on purpose: lib/ drivers do not import firmware/.
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_cclk(line):
    """+CCLK: "yy/MM/dd,hh:mm:ss+zz" (zz in quarter hours) -> UTC seconds
    since 1970, or None when malformed or not yet set by the network (a module
    that never got NITZ reports its build date, years before 2024)."""
    try:
        q = line.index(b'"')
        s = line[q + 1:q + 21]
        yy, mo, dd = int(s[0:2]), int(s[3:5]), int(s[6:8])
        hh, mi, ss = int(s[9:11]), int(s[12:14]), int(s[15:17])
        tz_q = int(s[18:20])
        if s[17:18] == b"-":
            tz_q = -tz_q
        elif s[17:18] != b"+":
            return None
    except (ValueError, IndexError):
        return None
    if yy < 24 or not (1 <= mo <= 12 and 1 <= dd <= 31 and hh < 24 and mi < 60 and ss < 61):
        return None
    local_s = _days_from_civil(2000 + yy, mo, dd) * 86400 + hh * 3600 + mi * 60 + ss
    return local_s - tz_q * 900


def reg_stat(line):
    """Registration state from a +CREG/+CEREG line: the solicited form is
    `+CEREG: <n>,<stat>[,...]`, the unsolicited one `+CEREG: <stat>[,...]`."""
    try:
        fields = line[line.index(b":") + 1:].split(b",")
        # the unsolicited form with location has a quoted 2nd field
        if len(fields) >= 2 and not fields[1].strip().startswith(b'"'):
            return int(fields[1])
        return int(fields[0])
    except (ValueError, IndexError):
        return None


def sim_state(text):
    """One word per SIM condition, whether it came from a query or a URC:
    modules say NOT INSERTED or +CME ERROR: 10 for a missing SIM."""
    if text in (b"NOT INSERTED", b"ABSENT"):
        return b"ABSENT"
    return text


def _value(line):
    # text after "<prefix>: ", without quotes
    i = line.find(b":")
    return line[i + 1:].strip().strip(b'"') if i >= 0 else line.strip()


class ATModem:
    """One module on one stream. Methods map to AT operations; figures read
    on the way (signal, registration, identities) are kept for health()."""

    def __init__(self, uart, on_urc=None, log=None):
        self.uart = uart
        self.on_urc = on_urc
        self.log = log
        self._buf = b""  # AT traffic is a few lines a second: plain bytes will do
        self._dropping = False  # inside an over-long line: skip to its end
        self.rssi_dbm = None
        self.csq = None
        self.reg = None
        self.operator = None
        self.imei = None
        self.iccid = None
        self.sim = None
        self.timeouts = 0
        self.errors = 0
        self.noise = 0     # lines that were neither answers nor known URCs
        self.last_error = None
        self.busy = False  # a command is waiting for its answer (cmd)

    # --- line layer
    def _pump(self):
        """Move whatever the stream holds into the line buffer."""
        n = self.uart.any()
        if not n:
            return
        data = self.uart.read(n)
        if data:
            self._buf += data

    def _next_line(self):
        """One complete, stripped, non-empty line from the buffer, or None."""
        buf = self._buf
        while True:
            i = buf.find(b"\n")
            j = buf.find(b"\r")
            if j >= 0 and (i < 0 or j < i):
                i = j
            if i < 0:
                if len(buf) > LINE_MAX:
                    self._buf = b""
                    self._dropping = True
                    self.noise += 1
                return None
            line = buf[:i].strip()
            buf = self._buf = buf[i + 1:]
            if self._dropping:
                self._dropping = False
                continue
            if line:
                return line

    def _urc(self, line):
        if self.on_urc:
            self.on_urc(line)
        elif self.log:
            self.log("urc", line)

    def _printable(self, line):
        for c in line:
            if c < 32 or c > 126:
                return False
        return True

    def poll(self):
        """Hand any pending unsolicited lines to the URC handler; call it
        between commands (a command does it for lines that arrive during it)."""
        self._pump()
        while True:
            line = self._next_line()
            if line is None:
                return
            if self._printable(line):
                self._urc(line)
            else:
                self.noise += 1

    def discard_input(self):
        """Drop buffered input (PPP remnants after a data call)."""
        while self.uart.any():
            self.uart.read(self.uart.any())
        self._buf = b""

    # --- command layer
    async def cmd(self, command, prefix=None, timeout_ms=CMD_TIMEOUT_MS, raw_lines=False):
        """Send one AT command and wait for its final result code.

        Returns (final, lines): `lines` are the information lines that start
        with `prefix` (or, with raw_lines, every other printable line, for
        commands like AT+CGSN that answer without a prefix). Never raises on
        modem trouble; a silent modem gives (TIMEOUT, []). One command at a
        time: a second caller (the technician's at()) waits its turn."""
        while self.busy:
            await asyncio.sleep_ms(POLL_MS)
        self.busy = True
        try:
            return await self._cmd(command, prefix, timeout_ms, raw_lines)
        finally:
            self.busy = False

    async def _cmd(self, command, prefix, timeout_ms, raw_lines):
        self.poll()
        if isinstance(command, str):
            command = command.encode()
        self.uart.write(command + b"\r")
        deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
        lines = []
        while True:
            self._pump()
            line = self._next_line()
            if line is None:
                if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                    self.timeouts += 1
                    self.last_error = command + b": timeout"
                    return TIMEOUT, lines
                await asyncio.sleep_ms(POLL_MS)
                continue
            if not self._printable(line):
                self.noise += 1
                continue
            if line == command:  # echo, before ATE0 took effect
                continue
            if line in _FINAL or line.startswith(_FINAL_PREFIX):
                if line != b"OK" and not line.startswith(b"CONNECT"):
                    self.errors += 1
                    self.last_error = command + b": " + line
                return line, lines
            if prefix is not None and line.startswith(prefix):
                lines.append(line)
            elif line.startswith(_URC_PREFIX):
                self._urc(line)
            elif raw_lines:
                lines.append(line)
            else:
                self.noise += 1

    async def ok(self, command, timeout_ms=CMD_TIMEOUT_MS):
        final, _ = await self.cmd(command, timeout_ms=timeout_ms)
        return final == b"OK"

    async def query(self, command, prefix, timeout_ms=CMD_TIMEOUT_MS):
        """First information line of a query, or None."""
        final, lines = await self.cmd(command, prefix, timeout_ms)
        return lines[0] if final == b"OK" and lines else None

    # --- power and start-up
    async def power_on(self, pwrkey, pulse_ms=PWRKEY_PULSE_MS):
        """Press PWRKEY for pulse_ms: `pwrkey(1)` asserts it, `pwrkey(0)` releases."""
        pwrkey(1)
        await asyncio.sleep_ms(pulse_ms)
        pwrkey(0)

    async def sync(self, budget_ms, try_ms=400):
        """Send AT until OK or the budget is spent (a module boots in 5-15 s).
        Returns True when the module answers."""
        deadline = time.ticks_add(time.ticks_ms(), budget_ms)
        while time.ticks_diff(deadline, time.ticks_ms()) > 0:
            if await self.ok(b"AT", try_ms):
                return True
        return False

    async def setup(self):
        """Echo off and numeric error reports; True when both were accepted."""
        return await self.ok(b"ATE0") and await self.ok(b"AT+CMEE=1")

    # --- reads
    async def read_sim(self):
        """SIM state: b"READY", b"SIM PIN", ..., b"ABSENT", or None if silent."""
        final, lines = await self.cmd(b"AT+CPIN?", b"+CPIN:", 5000)
        if final == b"OK" and lines:
            self.sim = sim_state(_value(lines[0]))
        elif final.startswith(b"+CME ERROR"):
            # 10 = SIM not inserted; 13 = SIM failure
            self.sim = b"ABSENT" if final.endswith(b"10") or final.endswith(b"13") else final
        else:
            self.sim = None
        return self.sim

    async def read_signal(self):
        """+CSQ -> dBm (None when unknown)."""
        line = await self.query(b"AT+CSQ", b"+CSQ:")
        if line is None:
            return self.rssi_dbm
        try:
            self.csq = int(_value(line).split(b",")[0])
        except ValueError:
            return self.rssi_dbm
        self.rssi_dbm = csq_to_dbm(self.csq)
        return self.rssi_dbm

    async def read_registration(self):
        """Best of +CEREG (LTE) and +CREG (GSM); None when neither answers."""
        best = None
        for command, prefix in ((b"AT+CEREG?", b"+CEREG:"), (b"AT+CREG?", b"+CREG:")):
            line = await self.query(command, prefix)
            stat = reg_stat(line) if line else None
            if stat in (REG_HOME, REG_ROAMING):
                best = stat
                break
            if best is None:
                best = stat
        self.reg = best
        return best

    def registered(self):
        return self.reg in (REG_HOME, REG_ROAMING)

    async def read_operator(self):
        line = await self.query(b"AT+COPS?", b"+COPS:")
        if line:
            fields = _value(line).split(b",")
            self.operator = fields[2].strip(b'"') if len(fields) >= 3 else None
        return self.operator

    async def read_imei(self):
        final, lines = await self.cmd(b"AT+CGSN", timeout_ms=CMD_TIMEOUT_MS, raw_lines=True)
        if final == b"OK":
            for line in lines:
                if line.isdigit() and 14 <= len(line) <= 17:
                    self.imei = line
        return self.imei

    async def read_iccid(self):
        # SIMCom, Quectel and the 27.007-ish spelling, in that order
        for command, prefix in ((b"AT+CICCID", b"+ICCID:"), (b"AT+QCCID", b"+QCCID:"),
                                (b"AT+CCID", b"+CCID:")):
            final, lines = await self.cmd(command, prefix, CMD_TIMEOUT_MS, raw_lines=True)
            if final == b"OK":
                for line in lines:
                    v = _value(line)
                    if 18 <= len(v) <= 22:
                        self.iccid = v
                        return v
        return self.iccid

    async def read_time(self):
        """Network time as UTC seconds since 1970, or None."""
        line = await self.query(b"AT+CCLK?", b"+CCLK:")
        return parse_cclk(line) if line else None

    # --- data call
    async def set_apn(self, apn, cid=1):
        return await self.ok(b'AT+CGDCONT=%d,"IP","%s"' % (cid, apn), 3000)

    async def dial(self, timeout_ms=30000):
        """ATD*99#: True once the module says CONNECT (the stream then
        carries PPP and belongs to network.PPP until NO CARRIER)."""
        final, _ = await self.cmd(b"ATD*99#", timeout_ms=timeout_ms)
        return final.startswith(b"CONNECT")

    async def hangup(self):
        """Leave data mode (+++ framed by one second of silence) and hang up."""
        await asyncio.sleep_ms(1100)
        self.uart.write(b"+++")
        await asyncio.sleep_ms(1100)
        self.discard_input()
        return await self.ok(b"ATH", 5000)

    def health(self):
        return {"rssi_dbm": self.rssi_dbm, "csq": self.csq, "reg": self.reg,
                "operator": self.operator, "imei": self.imei, "iccid": self.iccid,
                "sim": self.sim, "at_timeouts": self.timeouts, "at_errors": self.errors,
                "noise": self.noise, "last_error": self.last_error}
