# The technician's Python REPL on the serial port, as one asyncio task beside
# the meter (docs/tech-console.md). Loaded at the first byte typed
# (firmware/console.py waits for it), so a meter nobody services keeps this
# code out of its heap.
#
# Three input modes, byte by byte, as MicroPython's own REPL speaks them:
#   friendly  ">>> " with echo, line editing, "... " continuation, Ctrl-E paste
#   raw       Ctrl-A: the source up to Ctrl-D, answered "OK", output, 0x04,
#             error text, 0x04, ">" (what mpremote and pyboard.py drive)
#   raw-paste in raw mode "\x05A\x01": answered "R\x01" and a window size;
#             the host may send that many bytes, and one more window each
#             time the REPL sends 0x01 (flow control); Ctrl-D ends the source
#
# The meter never stops for it:
#   - input comes through a StreamReader (the loop runs while none comes),
#     then what else poll() says has arrived;
#   - Ctrl-C is a byte here, never a KeyboardInterrupt in the meter; while a
#     technician's statement runs, the board's console guard turns Ctrl-C,
#     or the statement outliving BUDGET_MS, into a KeyboardInterrupt raised
#     in that statement alone (boards/sim.py, boards/esp32.py console_guard);
#   - work that waits (the modem's at(), selftest()) is an asyncio job the
#     helpers hand to later(): the REPL awaits it with the loop running and
#     cancels it on Ctrl-C or after JOB_MS;
#   - every stretch the REPL holds the loop is timed: stats() has the
#     longest and the total (docs/benchmarks.md, repl_loop_block_ms_max);
#   - while mpremote holds the raw REPL the app's log lines wait (32 at
#     most, firmware/app.py log; the communication log has them all), so
#     they cannot corrupt its replies; Ctrl-B, or _RAW_IDLE_MS without
#     input, prints them.
import asyncio
import gc
import sys
import time
from micropython import const

from firmware.transient import once

BUDGET_MS = 150          # one technician statement may hold the loop this long
JOB_MS = 30000           # a job handed to later() is cancelled after this
_RULE_STACK = 64 * 2 * (8 if sys.maxsize > 1 << 32 else 4)   # bytes (_keep_room)
_ROOM = _RULE_STACK * 5 // 4   # and the lexer's few small blocks, which come first
_WINDOW = const(96)      # raw-paste flow-control window, bytes (both bytes of it ASCII: written as text)
_SRC_MAX = const(8192)   # the longest source taken in one go
_RAW_IDLE_MS = const(20000)   # raw mode with no input this long: back to friendly

_FRIENDLY = const(0)
_RAW = const(1)
_PASTE = const(2)        # raw-paste
_FPASTE = const(3)       # friendly paste mode (Ctrl-E)

# --- the helpers in the REPL's globals (documented with an example each in
# docs/tech-console.md). Each global is a Helper: its code is loaded from
# the image for the call and dropped after it (views.py for what looks,
# admin.py for what needs the PIN, selftest.py), so an open session keeps
# only these few objects in the heap. Report, what the helpers return,
# stays loaded with them.
#
# This is not a sandbox: the serial port gives Python, and Python on the
# board reaches everything. The PIN keeps the helpers that change money,
# the relay and the config out of casual hands; the port itself is behind
# the sealed terminal cover.
VIEWS = ("status", "link", "screens", "events", "comms", "topups", "billing", "modem", "at",
         "selftest", "login", "logout", "token", "help")
PRIVILEGED = ("relay", "adjust", "config", "calibrate", "provision")


class Helper:
    """One name in the REPL's globals (its index in NAMES: the one field, so
    that twenty of them stay small)."""

    def __init__(self, i):
        self.i = i

    def __call__(self, *args, **kw):
        i = self.i
        if i < len(VIEWS):
            tools = once("firmware.repl.views").Tools(_session[0])
        else:
            tools = once("firmware.repl.admin").Admin(_session[0])
        return getattr(tools, NAMES[i])(*args, **kw)


NAMES = VIEWS + PRIVILEGED
_session = [None]   # the REPL session the helpers serve (one serial port, one session)


def make(app, repl):
    """The REPL's globals: the helpers, and `app` for a look inside."""
    _session[0] = repl
    g = {"__name__": "__main__", "app": app, "Report": Report}
    for i in range(len(NAMES)):
        g[NAMES[i]] = Helper(i)
    g["later"] = repl.later
    g["session"] = repl    # session.stats(): how long the REPL has held the loop
    return g


class Report:
    """Lines of text; printed one per line (repr in the REPL, str in print)."""

    def __init__(self, lines):
        self.lines = lines

    def __repr__(self):
        return "\n".join(self.lines)

    __str__ = __repr__


BANNER = "meter REPL: the meter keeps running; help() lists the helpers\r\n"


class Repl:
    def __init__(self, app, stream, chunk, reader=None, out=None):
        import select
        self.app = app
        self.stream = stream
        self.reader = reader or asyncio.StreamReader(stream)
        self.poll = select.poll()
        self.poll.register(stream, select.POLLIN)
        self.chunk = chunk
        self.out = out or sys.stdout
        self.w = self.out.write
        self.inbuf = bytearray()
        self.mode = _FRIENDLY
        self.line = bytearray()
        self.block = bytearray()  # friendly continuation lines, or the raw source
        self.window = 0
        self.esc = 0              # inside an escape sequence (arrow keys): skipped
        self.last = 0
        self.jobs = []
        self.guard = app.board.console_guard(BUDGET_MS)
        self.held_max_ms = 0
        self.held_total_ms = 0
        self.stretches = 0
        self.statements = 0
        self.stopped = 0          # statements stopped by Ctrl-C or the budget
        self._t = time.ticks_ms()
        self.g = None
        self.auth = None          # the PIN's state (get_auth); outlives a soft reset's globals
        self.reserve = None       # the compiler's room (_run)
        self._keep_room()
        self.reset()

    def _keep_room(self):
        # A block the size of the parser's first rule stack (64 entries of
        # two words: 1 KB here, 512 B on an ESP32) and a quarter more, freed
        # just before each compile: a month into a fragmented heap, a
        # collection alone did not always leave a hole that big, and the
        # statement failed with MemoryError (docs/benchmarks.md, "Memory
        # budget"). The lexer allocates a few small blocks before the rule
        # stack, first fit: with a hole of exactly 1 KB they could land in it
        # and leave it short (8 statements in a day at 108wk, stop 22). Made
        # again after the statement, when the heap has the room.
        try:
            self.reserve = bytearray(_ROOM)
        except MemoryError:
            self.reserve = None

    # --- globals: the helpers (make, above) and the session
    def reset(self):
        self.g = make(self.app, self)

    def get_auth(self):
        """The login and lockout state, made at the first login."""
        if self.auth is None:
            from firmware.repl.auth import Auth
            self.auth = Auth(self.app.cfg, self.app.core.clock.mono_ms)
        return self.auth

    def stats(self):
        return {"held_max_ms": self.held_max_ms, "held_total_ms": self.held_total_ms,
                "stretches": self.stretches, "statements": self.statements,
                "stopped": self.stopped}

    def later(self, coro):
        """Run `coro` after the statement, with the loop running (see header)."""
        self.jobs.append(coro)

    # --- the loop hold: the time since the REPL last resumed, noted at each await
    def _note(self):
        now = time.ticks_ms()
        held = time.ticks_diff(now, self._t)
        self.stretches += 1
        self.held_total_ms += held
        if held > self.held_max_ms:
            self.held_max_ms = held

    async def _pause(self, ms=0):
        self._note()
        await asyncio.sleep_ms(ms)
        self._t = time.ticks_ms()

    def _drain(self):
        # A stream's read(n) waits for all n bytes: what has arrived is taken
        # one byte at a time while poll() says there is more.
        s = self.stream
        n = 0
        while n < self.chunk and self.poll.poll(0):
            b = s.read(1)
            if not b:
                break
            self.inbuf += b
            n += 1

    async def run(self, first=b""):
        self.inbuf += first
        self.w("\r\n" + BANNER + ">>> ")
        while True:
            if not self.inbuf:
                # one byte through the StreamReader: the loop runs while none comes
                self._note()
                try:
                    if self.mode == _RAW or self.mode == _PASTE:
                        b = await asyncio.wait_for_ms(self.reader.read(1), _RAW_IDLE_MS)
                    else:
                        b = await self.reader.read(1)
                except asyncio.TimeoutError:
                    self.mode = _RAW   # the host went away without Ctrl-B: as if it had sent it
                    b = b"\x02"
                self._t = time.ticks_ms()
                if not b:
                    await asyncio.sleep_ms(500)   # nothing attached to the port (end of file)
                    self._t = time.ticks_ms()
                    continue
                self.inbuf += b
                self._drain()
            data = bytes(self.inbuf)
            self.inbuf[:] = b""
            i = 0
            while i < len(data):
                c = data[i]
                i += 1
                m = self.mode
                todo = self._friendly_byte(c) if m == _FRIENDLY or m == _FPASTE else self._raw_byte(c)
                if todo is not None:
                    if i < len(data):
                        self.inbuf[0:0] = data[i:]   # the rest waits for the statement
                    await self._do(*todo)
                    break

    # --- input, one byte at a time; returns (source, kind) to run, or None
    def _raw_byte(self, c):
        b = self.block
        if self.mode == _PASTE:
            if c == 0x04 or c == 0x03:
                self.w("\x04")       # the end, acknowledged
                self.mode = _RAW
                src = bytes(b)
                b[:] = b""
                if c == 0x03:
                    self.w("\x04KeyboardInterrupt\r\n\x04>")
                    return None
                return src, "raw"
            if len(b) < _SRC_MAX:
                b.append(c)
            self.window -= 1
            if self.window == 0:
                self.window = _WINDOW
                self.w("\x01")       # room for one more window
            return None
        if c == 0x01:
            if bytes(b) == b"\x05A":     # raw-paste asked for
                b[:] = b""
                self.mode = _PASTE
                self.window = _WINDOW
                self.w("R\x01" + chr(_WINDOW & 0xFF) + chr(_WINDOW >> 8))
                return None
            b[:] = b""
            self.w("raw REPL; CTRL-B to exit\r\n>")
        elif c == 0x02:   # back to the friendly REPL; the app's held log lines now
            self.mode = _FRIENDLY
            b[:] = b""
            held = self.app.log_hold or ()
            self.app.log_hold = None
            for parts in held:   # the app's log lines (parts), or a board's own line (a str)
                if isinstance(parts, str):
                    print(parts)
                else:
                    print("[%s]" % self.app.meter_id, *parts)
            self.w("\r\n" + BANNER + ">>> ")
        elif c == 0x03:
            b[:] = b""
        elif c == 0x04:
            if not b:
                # a soft reset: the session starts afresh, the meter runs on
                self.reset()
                self.w("\r\nMPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n>")
                return None
            self.w("OK")
            src = bytes(b)
            b[:] = b""
            return src, "raw"
        elif len(b) < _SRC_MAX:
            b.append(c)
        return None

    def _friendly_byte(self, c):
        last, self.last = self.last, c
        line = self.line
        if self.mode == _FPASTE:   # Ctrl-E paste mode: lines as they come, Ctrl-D runs them
            b = self.block
            if c == 0x03:
                b[:] = b""
                self.mode = _FRIENDLY
                self.w("\r\n>>> ")
            elif c == 0x04:
                self.mode = _FRIENDLY
                self.w("\r\n")
                src = bytes(b)
                b[:] = b""
                return src, "exec"
            elif c == 0x0D or c == 0x0A:
                if not (c == 0x0A and last == 0x0D):
                    b.append(0x0A)
                    self.w("\r\n=== ")
            elif len(b) < _SRC_MAX:
                b.append(c)
                self.w(chr(c))
            return None
        if self.esc:
            # ESC [ ... final byte: arrow and function keys are ignored
            if self.esc == 1 or not (0x40 <= c <= 0x7E):
                self.esc = 2 if c == 0x5B else (0 if self.esc == 1 else 2)
            else:
                self.esc = 0
            return None
        if c == 0x1B:
            self.esc = 1
        elif c == 0x01:
            self.mode = _RAW
            self.block[:] = b""
            self.line[:] = b""
            self.app.log_hold = []   # app log lines wait while mpremote holds raw mode
            self.w("\r\nraw REPL; CTRL-B to exit\r\n>")
        elif c == 0x02:
            self.w("\r\n" + BANNER + ">>> ")
        elif c == 0x03:
            line[:] = b""
            self.block[:] = b""
            self.w("\r\nKeyboardInterrupt\r\n>>> ")
        elif c == 0x04:
            if not line and not self.block:
                self.reset()
                self.w("\r\nsession cleared (the meter keeps running)\r\n>>> ")
        elif c == 0x05:
            self.mode = _FPASTE
            self.block[:] = b""
            self.w("\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ")
        elif c == 0x08 or c == 0x7F:
            if line:
                line.pop()
                self.w("\b \b")
        elif c == 0x0D or c == 0x0A:
            if c == 0x0A and last == 0x0D:
                return None
            self.w("\r\n")
            text = bytes(line)
            line[:] = b""
            b = self.block
            if b:
                if text.strip():
                    b.extend(text + b"\n")
                    self.w("... ")
                    return None
                src = bytes(b)
                b[:] = b""
                return src, "exec"
            s = text.rstrip()
            if s.endswith(b":") or s.endswith(b"\\"):
                b.extend(text + b"\n")
                self.w("... ")
                return None
            if not s:
                self.w(">>> ")
                return None
            return text, "single"
        elif c == 0x09:
            line.extend(b"    ")
            self.w("    ")
        elif c >= 0x20 and len(line) < _SRC_MAX:
            line.append(c)
            self.w(chr(c) if c < 0x80 else "")
        return None

    # --- running a statement
    async def _do(self, src, kind):
        self.statements += 1
        if self.auth:
            self.auth.touch()
        raw = kind == "raw"
        err = None
        try:
            err = self._run(src, kind)
            while self.jobs and err is None:
                err = await self._job(self.jobs.pop(0))
        finally:
            self.jobs = []
            t = self.guard.typed     # bytes the guard read while the statement ran
            if t:
                self.inbuf.extend(t)
                t[:] = b""
            if self.reserve is None:
                gc.collect()          # the statement's garbage first: room, not a hole
                self._keep_room()
        if raw:
            self.w("\x04")
            if err is not None:
                sys.print_exception(err, self.out)
            self.w("\x04>")
        else:
            if err is not None:
                sys.print_exception(err, self.out)
            self.w(">>> ")
        await self._pause()

    def _run(self, src, kind):
        """Compile and run one statement under the console guard; returns the
        exception it ended with (None: it ended well)."""
        g = self.guard
        err = None
        res = None
        try:
            try:
                # the compiler's rule stack is a 1 KB piece (_keep_room)
                self.reserve = None
                gc.collect()
                code = None
                if kind == "single":
                    try:
                        code = compile(src, "<stdin>", "eval")
                    except SyntaxError:
                        pass
                if code is None:
                    code = compile(src, "<stdin>", "exec")
                    kind = "exec"
                g.arm()
                try:
                    res = eval(code, self.g) if kind == "single" else exec(code, self.g)
                finally:
                    fired = g.disarm()
            except BaseException as e:   # KeyboardInterrupt included: the statement's own
                err = e
                fired = g.disarm()
            if fired and not isinstance(err, KeyboardInterrupt):
                # it ended just as the guard fired: the interrupt on its way lands here
                t = time.ticks_ms()
                while time.ticks_diff(time.ticks_ms(), t) < 1000:
                    pass
        except KeyboardInterrupt as e:
            err = e
            g.disarm()
        if isinstance(err, KeyboardInterrupt):
            self.stopped += 1
            if g.why == "budget":
                err = KeyboardInterrupt("stopped after %d ms: a statement may hold the meter "
                                        "loop %d ms; long work goes to a helper's job" % (
                                            BUDGET_MS, BUDGET_MS))
        if err is None and kind == "single" and res is not None:
            if type(res).__name__ in ("generator", "coroutine"):   # a coroutine: awaited
                self.jobs.append(res)
            else:
                if not isinstance(res, Report):
                    self.g["_"] = res   # a helper's report is not kept: it is heap
                self.w(repr(res) + "\r\n")
        return err

    async def _job(self, coro):
        """Await one job with the loop running; Ctrl-C or JOB_MS cancels it."""
        box = [None, False]

        async def run():
            try:
                r = await coro
                if r is not None:
                    self.w(repr(r) + "\r\n")
            except BaseException as e:   # CancelledError included
                box[0] = e
            box[1] = True

        t = asyncio.create_task(run())
        start = time.ticks_ms()
        while not box[1]:
            await self._pause(20)
            self._drain()
            i = self.inbuf.find(b"\x03")
            if i >= 0 or time.ticks_diff(time.ticks_ms(), start) > JOB_MS:
                if i >= 0:
                    self.inbuf[i:i + 1] = b""
                t.cancel()
                while not box[1]:
                    await self._pause(5)
                self.stopped += 1
                return KeyboardInterrupt("job stopped" if i >= 0 else "job took over %d ms" % JOB_MS)
        e = box[0]
        return e
