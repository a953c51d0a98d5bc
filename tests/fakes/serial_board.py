"""A board on a serial port, for commands the docs give for /dev/ttyUSB0 and
for the end-to-end test of `make deploy` (tests/test_deploy_board.py).

Run under socat, whose pty stands for the board's USB serial port:

    socat PTY,link=TTY,raw,echo=0 EXEC:"python serial_board.py DEVICE_DIR MICROPYTHON",pty,raw,echo=0

A unix-port MicroPython REPL runs in DEVICE_DIR, which stands for the board's
filesystem (MicroPython's "vfs" partition). What the unix port lacks, this
adds the way the ESP32 port does it:

- soft reset: Ctrl-D in the raw REPL (what mpremote sends first unless told
  `resume`) ends the unix port's process. A board answers "soft reboot" and
  comes back in the raw REPL, so that is what this does: it restarts the
  REPL on the same port and puts it back in raw mode.
- the romfs partition: `vfs.rom_ioctl` (the ESP32 port's, when built with
  ROMFS) answers one segment, a block device over a host file the size of
  the "romfs" partition of boards/METER_ESP32/partitions.csv, erased to
  0xFF, in 4 KB blocks; `mpremote romfs deploy` writes it, a deploy reads
  it back to check the image's hash.
- hard reset: `machine.reset()` (what `mpremote reset` runs) ends the REPL
  and powers the board up as the ESP32 does: the image in the romfs
  partition, when there is a valid one, is mounted at /rom, then boot.py
  and main.py run (tools/sim_entry.py, on the sim board, with the board's
  /config.json as its provisioning file), and their output comes out of
  the port. Ctrl-C (mpremote connecting) stops it and the REPL is back,
  as it is when main.py ends.

The unix port has no `vfs.rom_ioctl` and no `machine.reset` of its own;
both are put into sys.modules before the REPL starts (over the real vfs and
machine modules, everything else passed through). The partition file, the
sim board's flash and the reset mark sit in DEVICE_DIR + ".flash", outside
the board's filesystem.
"""
import os
import pty
import select
import signal
import subprocess
import sys
import tty

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import partitions  # noqa: E402

ROMFS_HEADER = b"\xd2\xcd\x31"
PSRAM_HEAP = "1024wk"   # an ESP32-WROVER's 4 MB PSRAM, in words (the files route)

# MicroPython, run before the REPL: the ESP32 port's rom_ioctl and reset
_PRELUDE = """
import sys, vfs as _rv, machine as _rm
class _Mod:
    pass
def _over(real, **extra):
    m = _Mod()
    for k in dir(real):
        setattr(m, k, getattr(real, k))
    for k in extra:
        setattr(m, k, extra[k])
    return m
class _RomPart:
    def __init__(self, path):
        self.f = open(path, 'r+b')
    def ioctl(self, op, arg):
        if op == 4:
            return %(blocks)d
        if op == 5:
            return 4096
        if op == 6:
            self.f.seek(arg * 4096)
            self.f.write(b'\\xff' * 4096)
        return 0
    def readblocks(self, n, buf, off=0):
        self.f.seek(n * 4096 + off)
        self.f.readinto(buf)
    def writeblocks(self, n, buf, off=None):
        if off is None:
            self.ioctl(6, n)
            off = 0
        self.f.seek(n * 4096 + off)
        self.f.write(buf)
_part = _RomPart(%(part)r)
def _rom_ioctl(op, *args):
    if op == 1:
        return 1
    if op == 2 and args[0] == 0:
        return _part
    return -22
def _reset():
    _part.f.close()
    open(%(mark)r, 'w').close()
    sys.exit(0)
sys.modules['vfs'] = _over(_rv, rom_ioctl=_rom_ioctl)
sys.modules['machine'] = _over(_rm, reset=_reset)
del _over, _Mod
"""


class Board:
    def __init__(self, device_dir, micropython):
        self.device_dir = os.path.abspath(device_dir)
        self.micropython = micropython
        self.state = self.device_dir + ".flash"
        os.makedirs(self.state, exist_ok=True)
        self.part = os.path.join(self.state, "romfs")
        self.mark = os.path.join(self.state, "reset")
        size = partitions.romfs_bytes()
        if not os.path.exists(self.part):
            with open(self.part, "wb") as f:
                f.write(b"\xff" * size)
        self.blocks = size // 4096

    def _spawn(self, argv, env=None):
        master, slave = pty.openpty()
        tty.setraw(slave)
        proc = subprocess.Popen(argv, cwd=self.device_dir, stdin=slave, stdout=slave,
                                stderr=slave, close_fds=True, env=env)
        os.close(slave)
        return proc, master

    def repl(self):
        prelude = _PRELUDE % {"blocks": self.blocks, "part": self.part, "mark": self.mark}
        return self._spawn([self.micropython, "-i", "-c", prelude])

    def power_up(self):
        """boot.py and main.py, with the romfs image mounted if there is one."""
        import simmeter
        argv = [self.micropython]
        rom = []
        image = self.image()
        if image:
            img = os.path.join(self.state, "romfs.img")
            with open(img, "wb") as f:
                f.write(image)
            argv += ["-X", "heapsize=" + simmeter.process_heap(image=img)]
            rom = ["--romfs", img]
        else:
            # The files route copies the bytecode into the heap: it is for a
            # board with PSRAM (docs/deploy.md, "The files route"), whose
            # 4 MB MicroPython takes as heap; here in words, as HEAP is.
            argv += ["-X", "heapsize=" + PSRAM_HEAP]
        argv += [os.path.join(ROOT, "tools", "sim_entry.py")] + rom + [
            "--flash", os.path.join(self.state, "sim"), "--config", "config.json"]
        # the board's import path: its filesystem's root, then /lib
        env = dict(os.environ, MICROPYPATH=":".join([self.device_dir, os.path.join(self.device_dir, "lib"),
                                                     ".frozen"]))
        return self._spawn(argv, env)

    def image(self):
        """The ROMFS image in the partition (header, then its length as a
        varint, then the records), or None when it holds none."""
        with open(self.part, "rb") as f:
            data = f.read()
        if not data.startswith(ROMFS_HEADER):
            return None
        size, i = 0, 3
        while True:
            b = data[i]
            size = size << 7 | (b & 0x7F)
            i += 1
            if not b & 0x80:
                break
        return data[:i + size]


def _stop(*_):
    raise KeyboardInterrupt


def main():
    board = Board(sys.argv[1], sys.argv[2])
    # socat ends this with SIGTERM (or the port's hang-up): the board's
    # MicroPython goes with it
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    proc, master = board.repl()
    try:
        while True:
            ready, _, _ = select.select([0, master], [], [], 0.2)
            if 0 in ready:
                data = os.read(0, 4096)
                if not data:
                    break  # the port was closed
                if b"\x03" in data and "-i" not in proc.args:
                    # Ctrl-C stops main.py and the board is in its REPL at
                    # once; here a new process takes the bytes after it
                    proc.kill()
                    proc.wait()
                    os.close(master)
                    proc, master = board.repl()
                    data = data[data.index(b"\x03") + 1:]
                os.write(master, data)
            if master in ready:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    data = b""
                if data:
                    os.write(1, data)
                    continue
            if proc.poll() is not None:
                os.close(master)
                if os.path.exists(board.mark):
                    # machine.reset(): power up as the board does
                    os.remove(board.mark)
                    proc, master = board.power_up()
                elif "-i" not in proc.args:
                    # main.py ended: the REPL
                    proc, master = board.repl()
                else:
                    # the REPL ended: a soft reset, as the board does it
                    os.write(1, b"soft reboot\r\n")
                    proc, master = board.repl()
                    os.write(master, b"\x01")  # back to the raw REPL mpremote was in
    except KeyboardInterrupt:
        pass
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
