"""Deploy the compiled firmware to a meter over its serial port (docs/deploy.md).

    make deploy PORT=/dev/ttyUSB0 METER=<id> [ROUTE=romfs|files]
    .venv/bin/python tools/deploy.py /dev/ttyUSB0 --meter <id> [--route romfs|files]

Run `make compile` first (make deploy does). In order:

1. the code: `--route romfs` (the production way) writes build/mpy-esp32.romfs
   into the board's romfs partition (`mpremote romfs deploy`; the
   MicroPython image must be built with ROMFS, boards/METER_ESP32) and
   removes a firmware or lib tree left on the filesystem by a file deploy,
   which would otherwise shadow the image ('' comes before /rom on
   sys.path), and clears the over-the-air slot record, so that the board
   boots this image and not one an update switched it to (docs/ota.md); `--route files` installs the mip package build/mip-esp32
   (tools/make_package_json.py: every .mpy, boot.py and main.py; files the
   board already holds with the same sha256 are not sent again);
2. boot.py, main.py and this meter's provisioning file, with its keys, as
   /config.json: provisioning/<id>.json (`--provisioning DIR` for another
   folder; git-ignored, never committed), or `--config FILE`;
3. the check: the sha256 of every file, and of the image as read back from
   the partition, computed on the board and compared with the build's;
4. a hard reset (machine.reset()), then the meter's first status line,
   "[<id>] boot reset_cause=...", awaited on the port (`--wait` seconds).

The data partition (/flash: balance, registers, order record) is never
touched, so a redeploy keeps the customer's money. `--tree` picks another
build (the tests deploy build/mpy-host to a unix-port MicroPython on a pty),
`--resume` keeps mpremote from soft-resetting the board first, `--no-reset`
stops after the check, `--dry-run` prints the mpremote command only.
Exit status: 0 deployed and booted; 1 a step failed (it says which);
2 a mistake you can fix (no build, no provisioning file, wrong meter id).
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREE = os.path.join(ROOT, "build", "mpy-esp32")
MPREMOTE = os.path.join(os.path.dirname(sys.executable), "mpremote")
PROVISIONING = os.path.join(ROOT, "provisioning")
ENTRY_FILES = ("boot.py", "main.py")

# removes a folder tree from the board's filesystem, quietly if it is absent
_RM_TREE = """import os
def rm(p):
 try:
  if os.stat(p)[0] & 0x4000:
   for n in os.listdir(p):
    rm(p + '/' + n)
   os.rmdir(p)
  else:
   os.remove(p)
 except OSError:
  pass
rm('firmware')
rm('lib')"""
# forgets the over-the-air slot record (romslot.py: NVS namespace romslot),
# so the board boots the image just deployed into the `romfs` partition
# (slot 0), not a version an update had switched it to (docs/ota.md);
# quietly on a MicroPython without esp32.NVS, or with no record
_CLEAR_SLOT = """try:
 import esp32
 n = esp32.NVS('romslot')
 n.erase_key('rec')
 n.commit()
except (ImportError, OSError):
 pass"""

# run on the board: the sha256 of files, then of the first N bytes of the
# romfs partition, one "name hash" line each ("-" for a missing file). It
# reads 1-4 KB at a time: the image is never copied into the heap.
_HASHES = """import hashlib, binascii
def _hex(h):
 return binascii.hexlify(h.digest()).decode()
def _file(p):
 try:
  f = open(p, 'rb')
 except OSError:
  return '-'
 h = hashlib.sha256()
 b = bytearray(1024)
 while True:
  n = f.readinto(b)
  if not n:
   break
  h.update(memoryview(b)[:n])
 f.close()
 return _hex(h)
for p in %(paths)r:
 print('=', p, _file(p))
if %(rom)d:
 import vfs
 d = vfs.rom_ioctl(2, 0)
 h = hashlib.sha256()
 if hasattr(d, 'readblocks'):
  b = bytearray(4096)
  i = 0
  n = %(rom)d
  while n > 0:
   d.readblocks(i, b)
   h.update(memoryview(b)[:min(n, 4096)])
   n -= 4096
   i += 1
 else:
  h.update(memoryview(d)[:%(rom)d])
 print('= <romfs>', _hex(h))
"""


class DeployError(Exception):
    """A step failed; the message says which and what was found."""


class ProvisioningError(DeployError):
    """The meter's provisioning file is missing or wrong: a mistake to fix."""


def package_dir(tree):
    return os.path.join(os.path.dirname(tree), os.path.basename(tree).replace("mpy-", "mip-"))


def plan(port, tree=TREE, config=None, resume=False, reset=True, image=None):
    """One mpremote command line: a chain of operations joined by "+".
    With `image` (a ROMFS image), the code goes to the romfs partition and
    only boot.py and main.py (from `tree`) to the filesystem; without, the
    mip package of `tree` is installed."""
    if image:
        steps = [["romfs", "deploy", image], ["exec", _CLEAR_SLOT], ["exec", _RM_TREE]]
        steps += [["fs", "cp", os.path.join(tree, n), ":" + n] for n in ENTRY_FILES]
    else:
        pkg = package_dir(tree)
        steps = [["mip", "install", "--target", ".", "--index", pkg, os.path.join(pkg, "package.json")]]
    if config:
        steps.append(["fs", "cp", config, ":config.json"])
    if reset:
        steps.append(["reset"])
    cmd = [MPREMOTE, "connect", port] + (["resume"] if resume else [])
    for i, step in enumerate(steps):
        cmd += (["+"] if i else []) + step
    return cmd


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def expected_hashes(tree, config=None, image=None):
    """{path on the board: sha256} of what the deploy put there; the image
    as "<romfs>"."""
    want = {}
    if image:
        for n in ENTRY_FILES:
            want[n] = sha256_file(os.path.join(tree, n))
        want["<romfs>"] = sha256_file(image)
    else:
        with open(os.path.join(package_dir(tree), "package.json")) as f:
            for target, digest in json.load(f)["hashes"]:
                want[target] = digest
    if config:
        want["config.json"] = sha256_file(config)
    return want


def hash_script(want, image=None):
    paths = sorted(p for p in want if p != "<romfs>")
    return _HASHES % {"paths": paths, "rom": os.path.getsize(image) if image else 0}


def compare(want, board_output):
    """The lines of the board's answer that differ from `want`, as
    "path: why" strings (empty when everything matches)."""
    got = {}
    for line in board_output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "=":
            got[parts[1]] = parts[2]
    bad = []
    for path, digest in sorted(want.items()):
        have = got.get(path)
        if have is None:
            bad.append("%s: the board did not answer for it" % path)
        elif have == "-":
            bad.append("%s: not on the board" % path)
        elif have != digest:
            bad.append("%s: sha256 %s on the board, %s in the build" % (path, have[:16], digest[:16]))
    return bad


def provisioning_file(meter, folder=PROVISIONING):
    """provisioning/<meter>.json, checked: it exists, is JSON, names this
    meter and holds its key. Raises ProvisioningError."""
    path = os.path.join(folder, meter + ".json")
    if not os.path.isfile(path):
        raise ProvisioningError("no provisioning file %s for meter %s (docs/provisioning.md says what it holds; "
                          "the folder is git-ignored)" % (path, meter))
    try:
        with open(path) as f:
            cfg = json.load(f)
    except ValueError as e:
        raise ProvisioningError("%s is not JSON: %s" % (path, e))
    if cfg.get("meter_id") != meter:
        raise ProvisioningError("%s is for meter %r, not %r" % (path, cfg.get("meter_id"), meter))
    if not cfg.get("key_hex"):
        raise ProvisioningError("%s holds no key_hex: the meter would start without its link" % path)
    return path


class Board:
    """The board's REPL over its serial port (mpremote's transport), for the
    check and the reset, which need the board's answers."""

    def __init__(self, port):
        from mpremote.transport_serial import SerialTransport
        self.t = SerialTransport(port, baudrate=115200)

    def run(self, code):
        self.t.enter_raw_repl(soft_reset=False)
        out = self.t.exec(code)
        return out.decode(errors="replace")

    def reset_and_wait(self, pattern, timeout):
        """machine.reset(), then the port's output until a line matches
        `pattern`. Returns (line or None, everything read)."""
        self.t.enter_raw_repl(soft_reset=False)
        self.t.exec_raw_no_follow("import machine\nmachine.reset()")
        self.t.in_raw_repl = False
        seen = b""
        rx = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        ser = self.t.serial
        while time.monotonic() < deadline:
            n = ser.in_waiting
            chunk = ser.read(n or 1) if n else b""
            if not chunk:
                time.sleep(0.05)
                continue
            seen += chunk
            for line in seen.split(b"\n"):
                m = rx.search(line)
                if m:  # from the match: the raw REPL's end marks may precede it
                    return line[m.start():].decode(errors="replace").strip(), seen.decode(errors="replace")
        return None, seen.decode(errors="replace")

    def close(self):
        self.t.close()


def deploy(args):
    """The four steps; raises DeployError naming the one that failed."""
    image = args.image if args.route == "romfs" else None
    config = args.config
    meter = args.meter
    if meter and not config:
        config = provisioning_file(meter, args.provisioning)
    if config and not meter:
        with open(config) as f:
            meter = json.load(f).get("meter_id")
    cmd = plan(args.port, args.tree, config, args.resume, reset=False, image=image)
    print("deploy: " + " ".join(cmd[1:]))
    if args.dry_run:
        return
    if subprocess.run(cmd).returncode:
        raise DeployError("mpremote failed (above): the board may hold a partial deploy; run it again")
    want = expected_hashes(args.tree, config, image)
    board = Board(args.port)
    try:
        bad = compare(want, board.run(hash_script(want, image)))
        if bad:
            raise DeployError("the board does not hold what was deployed:\n  " + "\n  ".join(bad))
        print("deploy: checked on the board: %d files%s, sha256 as built"
              % (len(want) - (1 if image else 0), " and the ROMFS image" if image else ""))
        if args.no_reset:
            return
        pattern = r"\[%s\] boot " % re.escape(meter) if meter else r"\[[^\]]+\] boot "
        line, seen = board.reset_and_wait(pattern, args.wait)
    finally:
        board.close()
    if line is None:
        raise DeployError("reset, but no status line matching %r came within %d s; the port showed:\n%s"
                          % (pattern, args.wait, seen[-2000:]))
    print("deploy: the meter is up: " + line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port")
    ap.add_argument("--meter", help="meter id: its provisioning file is <provisioning>/<id>.json")
    ap.add_argument("--provisioning", default=PROVISIONING, help="folder of the meters' provisioning files")
    ap.add_argument("--config", help="a provisioning file to copy instead of the meter's")
    ap.add_argument("--route", choices=("romfs", "files"), default="romfs")
    ap.add_argument("--image", help="the ROMFS image (romfs route; default: the tree's, build/mpy-esp32.romfs)")
    ap.add_argument("--tree", default=TREE)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--no-reset", action="store_true")
    ap.add_argument("--wait", type=float, default=60, help="seconds to wait for the status line")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    args.image = args.image or args.tree.rstrip("/") + ".romfs"
    if not os.path.isdir(args.tree):
        sys.exit("no %s: run `make compile` first" % args.tree)
    needed = args.image if args.route == "romfs" else os.path.join(package_dir(args.tree), "package.json")
    if not os.path.isfile(needed):
        print("no %s: run `make compile` first" % needed, file=sys.stderr)
        return 2
    try:
        deploy(args)
    except DeployError as e:
        print("deploy: " + str(e), file=sys.stderr)
        return 2 if isinstance(e, ProvisioningError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
