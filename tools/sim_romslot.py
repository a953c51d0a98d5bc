# romslot.py on the sim (docs/ota.md, "In the sim"), each call in a process
# of its own: the board runs romslot from code frozen into its MicroPython,
# which costs its heap nothing, so the meter's process must not load it
# either. tools/sim_entry.py runs this at power-up (boot) and for each call
# the firmware makes on its stand-in (record, switch, confirm, failed).
#
# Usage: micropython tools/sim_romslot.py FLASH_DIR DEPLOYED_IMAGE METER_PID RUNNING OP [ARG]
#   boot ARGV...   (the meter's command line: its --trial-ms N shortens the
#                  trial deadline) writes FLASH_DIR/romslot.boot:
#                  <slot> <due 0|1> <on trial 0|1> <image file> <image bytes>
#   record         writes FLASH_DIR/romslot.out: the record's six ints, or nothing
#   switch VER     the other slot holds version VER: boot it next, on trial
#   confirm        the trial is over, the report sent: close the record
#   failed         the slot's code raised before the meter ran: on trial, reset
#   deadline       (started by boot, after TRIAL_MS) still on trial: reset
# FLASH_DIR/romslot.cut (written by tests): a power cut before or after the
# record write of a switch or a confirm (cut() below).
#
# The record is a file replaced by rename (all or nothing, as an NVS commit
# on the ESP32). The two romfs partitions are 256 KB flash files in the
# board's folder, romfs_a.img and romfs_b.img (SimBoard.ota_slot() writes
# them); slot 0 is the deployed image until an update writes romfs_a.img.
import os
import sys

# the board's frozen modules (tools/compile_mpy.py): build/mpy-host-frozen/
# beside the code root when that is this process's working directory (a
# SimMeter), else the repository's (a board stand-in deployed to a folder)
sys.path[:0] = [os.getcwd() + "-frozen", sys.argv[0].rpartition("/")[0] + "/../build/mpy-host-frozen"]
import romslot   # noqa: E402


class SimSlots:
    def __init__(self, folder, pid, trial_ms):
        self.rec = folder + "/romslot.rec"
        self.dir, self.pid, self.trial_ms = folder, pid, trial_ms

    def load(self):
        try:
            with open(self.rec, "rb") as f:
                return f.read()
        except OSError:
            return None

    def save(self, raw):
        with open(self.rec + ".new", "wb") as f:
            f.write(raw)
        os.rename(self.rec + ".new", self.rec)

    def mount(self, slot):
        pass   # tools/sim_entry.py mounts it, in the meter's process

    def deadline(self, ms):
        # the board's one-shot timer: a watcher process that outlives this
        # one (its output to a file, so the meter's pipe ends with the meter).
        # It lives no longer than the boot it times: it looks every 200 ms
        # whether the meter's process still runs and ends when it does not (a
        # stopped, cut or reset meter), as the board's timer dies with the
        # boot; a plain sleep would outlive tests and demos by 10 minutes.
        if ms:
            ms = self.trial_ms or ms
            os.system("(sleep %.3f; n=%d; while [ $n -gt 0 ] && kill -0 %s 2>/dev/null; do sleep 0.2; n=$((n-1)); done;"
                      " kill -0 %s 2>/dev/null && exec %s %s deadline) >>%s/romslot.log 2>&1 &"
                      % (ms % 200 / 1000, ms // 200, self.pid, self.pid,
                         sys.executable, " ".join(sys.argv[:5]), self.dir))

    def reset(self, _=None):
        # machine.reset(): the meter's process ends as at a cut, and the
        # launcher (tools/simmeter.py, auto_restart) powers it up again
        try:
            os.stat("/proc/%s" % self.pid)
        except OSError:
            return   # that boot has already ended
        with open(self.dir + "/reset_cause", "w") as f:
            f.write("soft")
        os.system("kill -9 " + self.pid)


def image_of(folder, deployed, slot):
    """(file, bytes) of the ROMFS image in `slot`: 3 magic bytes, then the
    length of the rest (7 bits a byte, high bit = more follow)."""
    path = "%s/romfs_%s.img" % (folder, "ab"[slot])
    try:
        f = open(path, "rb")
    except OSError:
        path = deployed
        f = open(path, "rb")
    head = f.read(8)
    f.close()
    n, i = 0, 3
    while head[i] & 0x80:
        n = n << 7 | head[i] & 0x7F
        i += 1
    return path, i + 1 + (n << 7 | head[i])


def cut(folder, pid, op, when):
    """A power cut the tests arm at this call: FLASH_DIR/romslot.cut holds
    lines "<op> before" or "<op> after" (before or after the record write),
    each used once. The meter's process is killed as at a cut (no reset
    cause written), in the middle of its call."""
    path = folder + "/romslot.cut"
    try:
        with open(path) as f:
            lines = f.read().split("\n")
    except OSError:
        return
    if op + " " + when not in lines:
        return
    lines.remove(op + " " + when)
    with open(path, "w") as f:
        f.write("\n".join(lines))
    print("SIM: power cut at romslot %s, %s" % (op, when))
    os.system("kill -9 " + pid)
    sys.exit(0)


def main(folder, image, pid, running, op, arg=None, *rest):
    trial_ms = 0
    if op == "boot":
        argv = (arg,) + rest
        if "--trial-ms" in argv:
            trial_ms = int(argv[argv.index("--trial-ms") + 1])
    romslot.platform = SimSlots(folder, pid, trial_ms)
    romslot.running = int(running)
    out = ""
    if op == "boot":
        try:
            os.mkdir(folder)   # a board's first power-up: its flash folder is made next
        except OSError:
            pass
        slot = romslot.boot()
        rec = romslot.record()
        path, size = image_of(folder, image, slot)
        with open(folder + "/romslot.boot", "w") as f:
            f.write("%d %d %d %s %d\n" % (slot, 1 if romslot.due else 0, 1 if rec and rec[1] else 0, path, size))
        return
    if op == "record":
        rec = romslot.record()
        out = " ".join(str(v) for v in rec) if rec else ""
    elif op == "switch":
        cut(folder, pid, op, "before")
        romslot.switch(romslot.running, int(arg))
        cut(folder, pid, op, "after")
    elif op == "confirm":
        cut(folder, pid, op, "before")
        romslot.confirm()
        cut(folder, pid, op, "after")
    elif op == "failed":
        romslot.failed()
    elif op == "deadline":
        rec = romslot.record()
        if rec and rec[1]:
            print("SIM: trial deadline")
            romslot.platform.reset()
    else:
        raise SystemExit("sim_romslot: unknown op " + op)
    with open(folder + "/romslot.out", "w") as f:
        f.write(out)


main(*sys.argv[1:])
