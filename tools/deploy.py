"""Deploy the compiled firmware to a meter over its serial port with mpremote.

    .venv/bin/python tools/deploy.py /dev/ttyUSB0 [--config provisioning.json]

Copies build/mpy-esp32 (run `make compile` first): boot.py, main.py and the
firmware and lib trees as .mpy, plus, optionally, the board's provisioning
file as /config.json. The data partition (/flash) is left alone, so a
redeploy keeps the customer's balance and registers. `--tree` picks another
build (the tests deploy build/mpy-host to a unix-port MicroPython on a pty),
`--resume` keeps mpremote from soft-resetting the board first.

    .venv/bin/python tools/deploy.py /dev/ttyUSB0 --romfs [--config provisioning.json]

The production way (docs/deploy.md): writes build/mpy-esp32.romfs into the
board's romfs partition (`mpremote romfs deploy`; the MicroPython image must
be built with ROMFS), copies only boot.py and main.py as files, and removes
a firmware or lib tree left on the filesystem by a file deploy, which would
otherwise shadow the image ('' comes before /rom on sys.path).
"""
import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREE = os.path.join(ROOT, "build", "mpy-esp32")
MPREMOTE = os.path.join(os.path.dirname(sys.executable), "mpremote")


IMAGE = TREE + ".romfs"
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


def plan(port, tree=TREE, config=None, resume=False, reset=True, image=None):
    """One mpremote command line: a chain of fs operations joined by "+".
    With `image` (a ROMFS image), the code goes to the romfs partition and
    only boot.py and main.py (from `tree`) to the filesystem."""
    if image:
        steps = [["romfs", "deploy", image], ["exec", _RM_TREE]]
        steps += [["fs", "cp", os.path.join(tree, n), ":" + n] for n in ("boot.py", "main.py")]
        return _chain(port, steps, config, resume, reset)
    steps = []
    for dirpath, dirnames, files in sorted(os.walk(tree)):
        rel = os.path.relpath(dirpath, tree)
        for d in sorted(dirnames):
            steps.append(["exec", "import os\ntry:\n os.mkdir(%r)\nexcept OSError:\n pass"
                          % (d if rel == "." else rel + "/" + d)])
        for name in sorted(files):
            target = name if rel == "." else rel + "/" + name
            steps.append(["fs", "cp", os.path.join(dirpath, name), ":" + target])
    return _chain(port, steps, config, resume, reset)


def _chain(port, steps, config, resume, reset):
    if config:
        steps.append(["fs", "cp", config, ":config.json"])
    if reset:
        steps.append(["reset"])
    cmd = [MPREMOTE, "connect", port] + (["resume"] if resume else [])
    for i, step in enumerate(steps):
        cmd += (["+"] if i else []) + step
    return cmd


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port")
    ap.add_argument("--config")
    ap.add_argument("--tree", default=TREE)
    ap.add_argument("--romfs", nargs="?", const=IMAGE, default=None, metavar="IMAGE",
                    help="deploy the code as a ROMFS image (default build/mpy-esp32.romfs)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--no-reset", action="store_true")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    if not os.path.isdir(args.tree):
        sys.exit("no %s: run `make compile` first" % args.tree)
    if args.romfs and not os.path.isfile(args.romfs):
        sys.exit("no %s: run `make compile` first" % args.romfs)
    cmd = plan(args.port, args.tree, args.config, args.resume, not args.no_reset, args.romfs)
    print(" ".join(cmd[1:]))
    if not args.dry_run:
        sys.exit(subprocess.run(cmd).returncode)


if __name__ == "__main__":
    main()
