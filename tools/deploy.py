"""Deploy the compiled firmware to an ESP32 meter over its serial port with mpremote.

    .venv/bin/python tools/deploy.py /dev/ttyUSB0 [--config provisioning.json]

Copies build/mpy-esp32 (run `make compile` first): boot.py, main.py, the
firmware and lib trees as .mpy, and optionally the board's provisioning file as
/config.json. Nothing on the data partition (/flash) is touched, so a
redeploy keeps the customer's balance and registers.
"""
import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TREE = os.path.join(ROOT, "build", "mpy-esp32")
MPREMOTE = os.path.join(os.path.dirname(sys.executable), "mpremote")


def plan(port, config=None):
    """The mpremote command lines, in order (also used by tests, without a device)."""
    cmds = []
    for dirpath, dirnames, files in sorted(os.walk(TREE)):
        rel = os.path.relpath(dirpath, TREE)
        for d in sorted(dirnames):
            target = d if rel == "." else rel + "/" + d
            cmds.append([MPREMOTE, "connect", port, "fs", "mkdir", ":" + target])
        for name in sorted(files):
            target = name if rel == "." else rel + "/" + name
            cmds.append([MPREMOTE, "connect", port, "fs", "cp", os.path.join(dirpath, name), ":" + target])
    if config:
        cmds.append([MPREMOTE, "connect", port, "fs", "cp", config, ":config.json"])
    cmds.append([MPREMOTE, "connect", port, "reset"])
    return cmds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port")
    ap.add_argument("--config")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    if not os.path.isdir(TREE):
        sys.exit("no %s: run `make compile` first" % TREE)
    for cmd in plan(args.port, args.config):
        print(" ".join(cmd[1:]))
        if not args.dry_run:
            # mkdir of an existing folder fails harmlessly; copies must succeed
            rc = subprocess.run(cmd).returncode
            if rc and cmd[4] != "mkdir":
                sys.exit(rc)


if __name__ == "__main__":
    main()
