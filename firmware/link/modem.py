# The meter's cellular link: brings the modem up to a data call and keeps it
# there, as one asyncio task beside metering.
#
# States (`state`): OFF -> BOOT -> SIM -> REGISTER -> DIAL -> DATA.
# When a step fails or the carrier drops, recovery climbs a ladder:
#   redial  (ATH, dial again: cheap, fixes a dropped PDP context)
#   reset   (the RESET line: works even when the AT interpreter is stuck)
#   power   (power off, PWRKEY: fixes a hung module)
# Each failed attempt climbs one rung and waits a jittered, doubling backoff;
# a data call that stays up for STABLE_MS drops back to the bottom rung.
#
# The board gives modem_uart(), modem_pwrkey(level), modem_reset(level),
# modem_power(on) (level 1 = asserted). On the ESP32 the board also gives
# modem_ppp(uart) -> a started network.PPP; its isconnected() is the data
# path. Without modem_ppp (the unix sim), CONNECT means the host network is
# the data path and NO CARRIER on the UART ends it.
import asyncio
import random
import time
from micropython import const

import atmodem

OFF = "off"
BOOT = "boot"
SIM = "sim"
REGISTER = "register"
DIAL = "dial"
DATA = "data"

_REDIAL = const(0)
RESET = const(1)
_POWER = const(2)
_RUNG_NAMES = ("redial", "reset", "power")


class ModemLink:
    BOOT_MS = 20000          # PWRKEY to first OK: SIM7600 ~12 s, EC2x ~10 s
    REGISTER_MS = 120000     # first registration in a weak cell can take minutes
    REG_POLL_MS = 2000
    DIAL_MS = 30000
    WATCH_MS = 1000          # how often the data call is checked
    STABLE_MS = 60000        # a call this old counts as a success
    BACKOFF_MIN_MS = 2000
    BACKOFF_MAX_MS = 600000  # ten minutes: a dead cell should not flatten the battery
    OFF_MS = 1500            # supply off long enough for the module to discharge
    PWRKEY_MS = atmodem.PWRKEY_PULSE_MS

    def __init__(self, board, apn, on_time=None, log=None):
        self.board = board
        self.apn = apn.encode() if isinstance(apn, str) else apn
        self.on_time = on_time   # called with UTC seconds from +CCLK
        self.log = log or (lambda *a: None)
        self.uart = board.modem_uart()
        self.at = atmodem.ATModem(self.uart, on_urc=self._urc)
        self.state = OFF
        self.up = False
        self.ppp = None
        self._carrier_lost = False
        self.rung = _POWER        # the first bring-up powers the module on
        self.fails = 0
        self.backoff_ms = 0
        self.counts = {"dials": 0, "calls": 0, "drops": 0, "redial": 0, "reset": 0, "power": 0}
        self.fail_reason = None
        self.call_since_ms = None

    def health(self):
        """Figures for screens, telemetry and the technician console."""
        h = self.at.health()
        h["state"] = self.state
        h["up"] = self.up
        h["rung"] = _RUNG_NAMES[self.rung]
        h["fails"] = self.fails
        h["backoff_ms"] = self.backoff_ms
        h["fail_reason"] = self.fail_reason
        h.update(self.counts)
        if self.call_since_ms is not None:
            h["call_s"] = time.ticks_diff(time.ticks_ms(), self.call_since_ms) // 1000
        return h

    def _urc(self, line):
        if line == b"NO CARRIER":
            self._carrier_lost = True
        elif line.startswith(b"+CEREG:") or line.startswith(b"+CREG:"):
            stat = atmodem.reg_stat(line)
            if stat is not None:
                self.at.reg = stat
        elif line.startswith(b"+CPIN:"):
            self.at.sim = atmodem.sim_state(line[6:].strip())

    # --- the ladder's rungs
    async def _power_cycle(self):
        b = self.board
        b.modem_power(False)
        await asyncio.sleep_ms(self.OFF_MS)
        b.modem_power(True)
        await asyncio.sleep_ms(100)
        await self.at.power_on(b.modem_pwrkey, self.PWRKEY_MS)

    async def _reset(self):
        # the RESET line works even when the AT interpreter is stuck
        self.board.modem_reset(1)
        await asyncio.sleep_ms(300)
        self.board.modem_reset(0)

    async def _leave_data(self):
        if self.ppp is not None:
            # network.PPP stops with disconnect() (it has no active()); a
            # failure here must not keep the modem from hanging up and redialling
            try:
                self.ppp.disconnect()
            except Exception as e:
                self.log("modem", "ppp disconnect failed: %r" % (e,))
            self.ppp = None
        if not self._carrier_lost:
            # still in data mode as far as we know: escape, then hang up
            await self.at.hangup()

    async def _fail(self, reason):
        self.fail_reason = reason
        self.log("modem", "fail", reason)
        return False

    async def _bring_up(self):
        """One attempt from the current rung to a data call; True when up."""
        at = self.at
        rung = self.rung
        self.counts[_RUNG_NAMES[rung]] += 1
        self.state = BOOT
        if rung == _POWER:
            await self._power_cycle()
        elif rung == RESET:
            await self._reset()
        else:
            await self._leave_data()
        at.discard_input()
        if not await at.sync(self.BOOT_MS if rung != _REDIAL else 3000):
            return await self._fail("no answer")
        if not await at.setup():
            return await self._fail("setup")
        self.state = SIM
        sim = await at.read_sim()
        if sim != b"READY":
            return await self._fail("sim " + (sim.decode() if sim else "?"))
        if at.imei is None:
            await at.read_imei()
        if at.iccid is None:
            await at.read_iccid()
        if not await at.set_apn(self.apn):
            return await self._fail("apn")
        self.state = REGISTER
        deadline = time.ticks_add(time.ticks_ms(), self.REGISTER_MS)
        while True:
            await at.read_signal()
            await at.read_registration()
            if at.registered():
                break
            if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                return await self._fail("not registered")
            await asyncio.sleep_ms(self.REG_POLL_MS)
        await at.read_operator()
        utc_s = await at.read_time()
        if utc_s is not None and self.on_time:
            self.on_time(utc_s)
        self.state = DIAL
        self.counts["dials"] += 1
        self._carrier_lost = False
        if not await at.dial(self.DIAL_MS):
            return await self._fail("dial")
        make_ppp = getattr(self.board, "modem_ppp", None)
        if make_ppp is not None:
            self.ppp = make_ppp(self.uart)
        return True

    def _carrier(self):
        if self.ppp is not None:
            return self.ppp.isconnected() or time.ticks_diff(
                time.ticks_ms(), self.call_since_ms) < self.DIAL_MS  # PPP still negotiating
        self.at.poll()   # the sim: watch the UART for NO CARRIER
        return not self._carrier_lost

    def _next_backoff(self):
        base = min(self.BACKOFF_MAX_MS, self.BACKOFF_MIN_MS << min(self.fails, 12))
        # half fixed, half random: meters that lost the same cell spread out
        return base // 2 + random.getrandbits(16) * (base // 2) // 65536

    async def run(self):
        """Forever: bring the data call up, watch it, recover in steps."""
        while True:
            ok = False
            try:
                ok = await self._bring_up()
            except Exception as e:  # a driver bug must not end the link task
                await self._fail(repr(e))
            if ok:
                self.state = DATA
                self.up = True
                self.counts["calls"] += 1
                self.call_since_ms = time.ticks_ms()
                self.log("modem", "data call up")
                while self._carrier():
                    await asyncio.sleep_ms(self.WATCH_MS)
                self.up = False
                self.counts["drops"] += 1
                stable = time.ticks_diff(time.ticks_ms(), self.call_since_ms) >= self.STABLE_MS
                self.call_since_ms = None
                self.log("modem", "carrier lost")
                self.fail_reason = "carrier lost"
                if stable:
                    self.fails = 0
                    self.rung = _REDIAL
                    continue  # a long call ended: redial at once
                self.fails += 1   # calls that keep dropping back off too
                self.rung = _REDIAL
            else:
                self.fails += 1
                self.rung = min(_POWER, self.rung + 1)
            self.backoff_ms = self._next_backoff()
            await asyncio.sleep_ms(self.backoff_ms)
