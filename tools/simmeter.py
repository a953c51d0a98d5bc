"""Start, drive, kill and restart simulated meters (unix-port MicroPython).

A SimMeter owns one micropython process running the firmware on the sim board
(tools/sim_entry.py: boot.py then main.py), its flash folder and its control
socket. Tests, `make run` and your own scripts use it the same way:

    m = SimMeter("m1", workdir, broker_port=1883, config={"initial_balance_minor": 500})
    m.start()
    m.control({"cmd": "load", "w": 2000})
    m.state()["meter"]["balance_minor"]
    m.kill()        # power cut (SIGKILL)
    m.start()       # power back: same flash

From a shell (docs/simulator.md, "Start one headless"):

    .venv/bin/python tools/simmeter.py run --flash DIR --config FILE --control PORT [--print]
    .venv/bin/python tools/simmeter.py heap     # the -X heapsize= for a hand-made command
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import children

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.environ.get("MICROPYTHON") or os.path.join(ROOT, ".venv", "bin", "micropython")
# The ESP32-WROOM heap (108 KB of 32-bit words). The "w" suffix makes MicroPython
# scale it to this machine's word size, so 64-bit pointers do not halve the room.
HEAP = os.environ.get("SIM_HEAP", "108wk")
# SIM_ROMFS=0 boots the compiled modules as files instead of from the image
ROMFS = os.environ.get("SIM_ROMFS", "1") != "0"


def heap_bytes(spec):
    """Bytes a -X heapsize= value gives MicroPython on this host: a number,
    k or m, and "w" for 32-bit words scaled to the host's word size."""
    import struct
    spec = str(spec).lower()
    words = spec.endswith("w") or spec[:-1].endswith("w")
    spec = spec.replace("w", "")
    mult = {"k": 1024, "m": 1024 * 1024}.get(spec[-1:], 1)
    n = int(spec.rstrip("km")) * mult
    return n * struct.calcsize("P") // 4 if words else n


# The key a sim meter is provisioned with unless its config gives one (the
# one tests/signed.py signs with). A meter without a key starts no link.
SIM_KEY_HEX = "11" * 32

COMPILED = os.path.join(ROOT, "build", "mpy-host")


def process_heap(heap=HEAP, image=COMPILED + ".romfs"):
    """The -X heapsize= value for a sim process that boots from the ROMFS
    image: the board's heap plus the image. The image sits in the heap here
    (flash-mapped on the board), so the process gets that much more and the
    firmware has the board's heap to itself. The GC's tables take 3 bits per
    32-byte block of the 64-bit port (32.375 bytes per block), plus one
    block of rounding and the bytearray's own."""
    size = os.path.getsize(image)
    return str(heap_bytes(heap) + (size + 64) * 32375 // 32000 + 64)
_compiled = False


def ensure_compiled():
    """Bring build/mpy-host up to date (incremental): sim meters boot the
    compiled firmware, as the ESP32 does, because compiling source at boot
    would need more heap than the board has."""
    global _compiled
    if not _compiled:
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "compile_mpy.py")], check=True,
                       stdout=subprocess.DEVNULL)
        _compiled = True


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_CORRUPT = """
from firmware.boards import flashdev
flashdev.mount(%r, "/flash")
for name in %r:
    p = "/flash/store/" + name
    with open(p, "rb") as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0x10
    with open(p, "wb") as f:
        f.write(data)
print("corrupted")
"""


def corrupt_store(flash_img, names):
    """Flip one bit in the middle of each store file `names` (paths under
    /flash/store/) of a stopped meter's flash image, through the firmware's
    own LittleFS mount: the damage a worn or disturbed flash cell does."""
    env = dict(os.environ, MICROPYPATH=":".join([ROOT, os.path.join(ROOT, "lib"), ".frozen"]))
    out = subprocess.run([MICROPYTHON, "-X", "heapsize=108wk", "-c", _CORRUPT % (flash_img, list(names))],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=30)
    if "corrupted" not in out.stdout:
        raise AssertionError("could not damage %r: %s" % (names, out.stderr))


_SEQS = """
import json
from firmware.boards import flashdev
from firmware.store import record
flashdev.mount(%r, "/flash")
out = {}
for name in ("a/snap", "b/snap"):
    with open("/flash/store/" + name, "rb") as f:
        r = record.decode(f.read(), record.KIND_SNAP)
    out[name] = r and r[0]
print(json.dumps(out))
"""


def snapshot_seqs(flash_img):
    """{"a/snap": seq, "b/snap": seq} of a stopped meter's flash image
    (None for a copy that fails its check): which copy is the newest."""
    env = dict(os.environ, MICROPYPATH=":".join([ROOT, os.path.join(ROOT, "lib"), ".frozen"]))
    out = subprocess.run([MICROPYTHON, "-X", "heapsize=108wk", "-c", _SEQS % flash_img],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=30)
    return json.loads(out.stdout.strip().splitlines()[-1])


class ConsoleError(Exception):
    """A statement typed at the meter's REPL ended in an exception (its traceback)."""


def _log_line(raw):
    line = raw.decode(errors="replace").rstrip("\r")
    # the REPL's prompt stays on the line the next log line then starts
    while line.startswith(">>> "):
        line = line[4:]
    return line


class SimMeter:
    def __init__(self, meter_id, workdir, broker_port=1883, config=None, scale=1, step=False,
                 epoch=None, heap=HEAP, extra_args=(), auto_restart=False, code_root=COMPILED,
                 romfs=None, flash_timing=None, flash_slowdown=1):
        self.meter_id = meter_id
        self.dir = os.path.join(workdir, meter_id)
        os.makedirs(self.dir, exist_ok=True)
        # cf1_mhz_per_v: the sim board's CF1 gain (SimBoard.CF1_MHZ_PER_V), as a
        # factory calibration would provision it; without it the voltage is unknown
        self.config = {"meter_id": meter_id, "broker_host": "127.0.0.1", "broker_port": broker_port,
                       "key_hex": SIM_KEY_HEX, "cf1_mhz_per_v": 6720}
        self.config.update(config or {})
        # an entry given as None is left out of the file: {"key_hex": None}
        # provisions a meter without a key
        self.config = {k: v for k, v in self.config.items() if v is not None}
        self.config_path = os.path.join(self.dir, "config.json")
        with open(self.config_path, "w") as f:
            json.dump(self.config, f)
        self.scale, self.step, self.epoch, self.heap = scale, step, epoch, heap
        self.extra_args = list(extra_args)
        # the flash chip's erase and program times ("typ" or "max", None for
        # none), times flash_slowdown (PPP active): docs/storage.md, "Flash timing"
        if flash_timing:
            self.extra_args += ["--flash-timing", flash_timing, "--flash-slowdown", str(flash_slowdown)]
        self.auto_restart = auto_restart
        self.code_root = code_root  # build/mpy-host (compiled, default) or ROOT (source)
        # The compiled firmware runs from its ROMFS image (build/mpy-host.romfs)
        # as on a production board: code outside the heap (docs/deploy.md).
        self.romfs = (ROMFS if romfs is None else romfs) and code_root == COMPILED
        self.proc = None
        self.port = None
        self.sock = None
        self.log_lines = []
        self.exits = []  # (returncode, time) of every process end seen
        self._lock = threading.Lock()
        self._console_lock = threading.Lock()
        self._out_lock = threading.Lock()
        self._transcript = bytearray()   # everything the meter wrote to its serial port
        self._tbase = 0                  # bytes dropped from the transcript's front
        self._watcher = None

    # --- process life cycle
    def argv(self):
        heap, rom = self.heap, []
        if self.romfs:
            heap, rom = process_heap(heap), ["--romfs", COMPILED + ".romfs"]
        args = [MICROPYTHON, "-X", "heapsize=" + heap, os.path.join(ROOT, "tools", "sim_entry.py")] + rom + [
                "--flash", self.dir, "--control", str(self.port), "--config", self.config_path]
        if self.step:
            args += ["--step"]
        else:
            args += ["--scale", str(self.scale)]
        if self.epoch is not None:
            args += ["--epoch", str(self.epoch)]
            self.epoch = None  # only the first boot sets the time; later boots resume it
        return args + self.extra_args

    def start(self, timeout=10):
        if self.code_root == COMPILED:
            ensure_compiled()
        self.port = free_port()
        code = self.code_root
        env = dict(os.environ, MICROPYPATH=":".join([code, os.path.join(code, "lib"), ".frozen"]))
        self.proc = children.track(self._spawn(code, env))
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        return self._connect(timeout)

    def _spawn(self, code, env):
        return subprocess.Popen(self.argv() + ["--console"], cwd=code, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)

    def _connect(self, timeout):
        """Open the control socket once the booting meter listens on it."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                if any("KeyboardInterrupt" in l for l in self.log_lines[-5:]):
                    raise KeyboardInterrupt   # a Ctrl-C reached its boot: ours too
                raise RuntimeError("sim meter exited at start:\n" + "\n".join(self.log_lines[-30:]))
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                self.reader = self.sock.makefile("r")
                return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("sim meter control socket did not open:\n" + "\n".join(self.log_lines[-30:]))

    def _pump(self, proc):
        # Bytes, not lines: the REPL's raw-mode replies end without a newline
        # (console() reads them off the transcript); log_lines gets the lines.
        out = getattr(proc.stdout, "buffer", proc.stdout)
        part = b""
        while True:
            data = out.read1(65536)
            if not data:
                break
            with self._out_lock:
                self._transcript += data
                if len(self._transcript) > (1 << 20):   # keep the last 256 KB
                    cut = len(self._transcript) - (1 << 18)
                    del self._transcript[:cut]
                    self._tbase += cut
            part += data
            lines = part.split(b"\n")
            part = lines.pop()
            for line in lines:
                self.log_lines.append(_log_line(line))
        if part:
            self.log_lines.append(_log_line(part))
        proc.wait()
        children.untrack(proc)   # reaped: nothing left to kill at exit
        self.exits.append((proc.returncode, time.time()))
        if self.auto_restart and proc is self.proc and not getattr(self, "_stopping", False):
            try:
                self.start()
            except RuntimeError:
                pass   # that boot ended at start as well: its own pump starts the next

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """Power cut: SIGKILL, no warning, nothing flushed."""
        self._close_sock()
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        if self.proc is not None:
            children.untrack(self.proc)

    def stop(self):
        self._stopping = True
        self.kill()

    def restart(self):
        self.kill()
        return self.start()

    def _close_sock(self):
        if self.sock:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    # --- control socket
    def control(self, req):
        with self._lock:
            self.sock.sendall((json.dumps(req) + "\n").encode())
            line = self.reader.readline()
        if not line:
            raise ConnectionError("sim meter closed its control socket")
        return json.loads(line)

    def console(self, code, timeout=10):
        """Run Python at the technician's REPL (docs/tech-console.md) and
        return its output lines: an expression's value is printed
        (console("status()")), a statement runs as it is. A traceback raises
        ConsoleError."""
        try:
            compile(code, "<console>", "eval")
            code = "_r = (%s)\nif _r is not None: print(_r)\ndel _r" % code
        except SyntaxError:
            pass
        out, err = self.repl_exec(code, timeout)
        if err:
            raise ConsoleError(err)
        return [l.rstrip("\r") for l in out.split("\n") if l.rstrip("\r")]

    def repl_exec(self, src, timeout=10):
        """One raw-REPL exchange over the meter's serial port (stdin/stdout),
        as mpremote makes it: Ctrl-A, the source, Ctrl-D; then "OK", the
        output, 0x04, the error text, 0x04, ">"; Ctrl-B back to the friendly
        REPL. Returns (output, error) as text."""
        with self._console_lock:
            mark = self._tpos()
            self._type("\r\x01")
            at = self._wait_out(b"raw REPL; CTRL-B to exit\r\n>", mark, timeout)
            self._type(src + "\x04")
            end = self._wait_out(b"\x04>", at, timeout, count=1, after=b"OK")
            with self._out_lock:
                reply = bytes(self._transcript[at - self._tbase:end - self._tbase])
            self._type("\x02")
        body = reply[reply.index(b"OK") + 2:]
        out, err = body.split(b"\x04")[:2]
        return out.decode(errors="replace"), err.decode(errors="replace")

    def _type(self, text):
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def _tpos(self):
        with self._out_lock:
            return self._tbase + len(self._transcript)

    def _wait_out(self, pattern, start, timeout, count=0, after=None):
        """Transcript position just past `pattern`, found after `start` (and
        after `after`, if given)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self._out_lock:
                t = self._transcript
                i = max(0, start - self._tbase)
                if after is not None:
                    j = t.find(after, i)
                    i = -1 if j < 0 else j + len(after)
                k = t.find(pattern, i) if i >= 0 else -1
                if k >= 0:
                    return self._tbase + k + len(pattern)
            if not self.alive():
                break
            time.sleep(0.01)
        raise TimeoutError("the REPL did not answer (%r); last output:\n%s" % (
            pattern, "\n".join(self.log_lines[-20:])))

    def mem(self, blocks=False, timeout=10):
        """Heap after a collection, as the firmware has it: {"free", "total"},
        the ROMFS image's share (sim-only) taken off the total, and "gc_ms",
        that collection's pause. blocks=True adds "largest_free", the
        largest free block in bytes (what the biggest allocation may take)."""
        start = len(self.log_lines)
        r = self.control({"cmd": "mem", "blocks": blocks})
        if not r.get("ok"):
            raise RuntimeError("the meter could not answer mem: %s" % r.get("error"))
        rom = 0
        for line in self.log_lines:
            if line.startswith("SIM-ROM "):
                rom = int(line.split()[1])
        out = {"free": r["free_after_gc"], "total": r["total"] - rom, "rom": rom, "gc_ms": r["gc_us"] / 1000.0}
        deadline = time.monotonic() + timeout
        while blocks and "largest_free" not in out:
            for line in self.log_lines[start:]:
                if "max free sz:" in line:
                    # 16 bytes a block on a 32-bit board, 32 on this host
                    out["largest_free"] = int(line.rsplit(":", 1)[1]) * 4 * struct.calcsize("P")
            if time.monotonic() > deadline:
                raise TimeoutError("no mem_info line in the sim meter's log")
            time.sleep(0.02)
        return out

    def state(self):
        return self.control({"cmd": "state"})

    def qstr_pools(self, timeout=10):
        """The interpreter's pools of interned names, as micropython.qstr_info()
        prints them: {"n_pool", "n_qstr", "n_str_data_bytes", "n_total_bytes"}
        (the names interned at run time, the firmware's own built in not counted)."""
        start = len(self.log_lines)
        self.control({"cmd": "qstr_info"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_lines[start:]:
                if line.startswith("qstr pool:"):
                    pairs = line.split(":", 1)[1].replace(" ", "").split(",")
                    return {k: int(v) for k, v in (p.split("=") for p in pairs)}
            time.sleep(0.05)
        raise TimeoutError("no qstr_info line in the sim meter's log")

    def wait_for(self, predicate, timeout=10, interval=0.05):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = self.state()
            if predicate(last):
                return last
            time.sleep(interval)
        raise TimeoutError("condition not met; last state: %r" % (last,))

    def wait_exit(self, timeout=20):
        self.proc.wait(timeout=timeout)
        return self.proc.returncode


def _descendants(pid):
    """Every process below `pid` (Linux /proc), children first."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        return []
    out = []
    for k in kids:
        out += [k] + _descendants(k)
    return out


class PtySimMeter(SimMeter):
    """A sim meter whose serial port is a pty (socat), as a USB-serial
    adapter gives one: `self.tty` is the path for mpremote
    (`mpremote connect <tty> resume exec ...`). Its log goes to that port,
    so log_lines holds only socat's own words; state and control come from
    the control socket as usual."""
    MPREMOTE = os.path.join(ROOT, ".venv", "bin", "mpremote")

    def _spawn(self, code, env):
        import shlex
        self.tty = os.path.join(self.dir, "tty")
        cmd = " ".join(shlex.quote(a) for a in self.argv() + ["--console"])
        return subprocess.Popen(
            ["socat", "PTY,link=%s,raw,echo=0" % self.tty, "EXEC:%s,pty,raw,echo=0" % cmd],
            cwd=code, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)

    def kill(self):
        """Power cut: SIGKILL to socat and to the meter it runs. socat's EXEC
        child leads a session of its own (its pty is its terminal), so it is
        found through /proc before socat goes, and killed by its pid."""
        procs = _descendants(self.proc.pid) if self.alive() else []
        super().kill()
        for pid in procs:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def mpremote(self, *args, timeout=30):
        """Run `mpremote connect <tty> resume ARGS...`; returns the CompletedProcess."""
        return subprocess.run([self.MPREMOTE, "connect", self.tty, "resume"] + list(args),
                              capture_output=True, text=True, timeout=timeout)


def run_headless(argv):
    """`simmeter.py run [--print] SIM_ENTRY_OPTIONS...`: one sim meter in the
    foreground, as docs/simulator.md describes. It compiles the firmware
    (make compile), boots it from build/mpy-host.romfs with the board's heap
    plus the image (process_heap) and passes every other option to
    tools/sim_entry.py. --print shows the micropython command line instead of
    running it."""
    show = "--print" in argv
    argv = [a for a in argv if a != "--print"]
    # the process runs in the compiled tree: paths given relative to here
    # must survive the change of directory
    argv = [os.path.abspath(a) if i and argv[i - 1] in ("--flash", "--config", "--modem") else a
            for i, a in enumerate(argv)]
    ensure_compiled()
    cmd = [MICROPYTHON, "-X", "heapsize=" + process_heap(), os.path.join(ROOT, "tools", "sim_entry.py"),
           "--romfs", COMPILED + ".romfs"] + argv
    env = dict(os.environ, MICROPYPATH=":".join([COMPILED, os.path.join(COMPILED, "lib"), ".frozen"]))
    if show:
        import shlex
        print("cd %s && MICROPYPATH=%s %s" % (shlex.quote(COMPILED), shlex.quote(env["MICROPYPATH"]),
                                             " ".join(shlex.quote(a) for a in cmd)))
        return 0
    os.chdir(COMPILED)
    os.execve(MICROPYTHON, cmd, env)


if __name__ == "__main__":
    if sys.argv[1:2] == ["run"]:
        sys.exit(run_headless(sys.argv[2:]))
    if sys.argv[1:2] == ["heap"]:
        # the -X heapsize= value for a hand-written command line
        print(process_heap())
        sys.exit(0)
    # Headless, as a harness: python tools/simmeter.py METER_ID WORKDIR BROKER_PORT
    children.exit_on_signals()
    m = SimMeter(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    try:
        m.start()
        print("control port", m.port, flush=True)
        m.proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        m.stop()
