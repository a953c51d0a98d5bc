"""tools/deploy.py puts the compiled firmware on a board with mpremote. Here
the board is a plain unix-port MicroPython REPL on a pty (socat), and the
deployed tree then boots as a sim meter and meters. `make deploy` against a
board stand-in with a romfs partition and a reset: tests/test_deploy_board.py."""
import os
import shutil
import subprocess
import sys

import pytest

from simmeter import COMPILED, MICROPYTHON, ROOT, SimMeter, ensure_compiled
from wait import wait_for


@pytest.mark.skipif(not shutil.which("socat"), reason="socat not installed")
def test_deploy_copies_the_compiled_firmware_over_mpremote_and_it_boots(tmp_path):
    ensure_compiled()
    device = tmp_path / "device"
    device.mkdir()
    tty = str(tmp_path / "tty")
    socat = subprocess.Popen(["socat", "PTY,link=%s,raw,echo=0" % tty,
                              "EXEC:%s,pty,raw,echo=0" % MICROPYTHON], cwd=str(device),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(tty), 5, "socat's pty %s" % tty)
        out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "deploy.py"), tty,
                              "--route", "files", "--tree", COMPILED, "--resume", "--no-reset"],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    finally:
        socat.kill()
        socat.wait()
    assert (device / "main.py").exists() and (device / "firmware" / "app.mpy").exists()
    assert (device / "lib" / "umqtt" / "simple.mpy").exists()
    # only boot.py and main.py travel as source
    assert sorted(p.name for p in device.rglob("*.py")) == ["boot.py", "main.py"]
    # As .mpy files the bytecode sits in the heap, and the whole meter no
    # longer fits the ESP32's 108 KB (docs/deploy.md: production boards take
    # the ROMFS image or the frozen build); this checks the deployed tree
    # boots and meters, at a heap with room for it
    m = SimMeter("d1", str(tmp_path / "meters"), broker_port=1, heap="160wk",
                 config={"initial_balance_minor": 15}, code_root=str(device)).start()
    try:
        m.control({"cmd": "pulses", "n": 100})
        st = m.wait_for(lambda s: not s["relay_closed"])
        assert st["meter"]["import_wh"] == 100
    finally:
        m.stop()


def test_romfs_deploy_writes_the_image_and_leaves_only_boot_and_main_as_files(tmp_path):
    # `mpremote romfs deploy` needs a board whose MicroPython has ROMFS
    # (vfs.rom_ioctl); the unix port here has VfsRom but no partition, so the
    # chain is checked as planned, and its clean-up step runs for real.
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import deploy
    ensure_compiled()
    cmd = deploy.plan("/dev/ttyX", COMPILED, config="prov.json", image=COMPILED + ".romfs")
    steps = " ".join(cmd).split(" + ")
    assert steps[0].endswith("romfs deploy " + COMPILED + ".romfs")
    copied = [s.split()[-1] for s in steps if s.startswith("fs cp")]
    assert copied == [":boot.py", ":main.py", ":config.json"]
    assert steps[-1] == "reset"
    assert steps[1] == "exec " + deploy._CLEAR_SLOT
    # the slot record cleared: the board boots the image just deployed (slot
    # 0), not the version an update switched it to; quiet with no record
    # (esp32.NVS as documented: changes reach the store at commit(), a
    # missing key raises OSError; a module of its own, not tests/fakes')
    fakes = tmp_path / "nvs"
    fakes.mkdir()
    (fakes / "esp32.py").write_text(
        "store = {}\n"
        "class NVS:\n"
        "    def __init__(self, ns):\n"
        "        self.ns, self.pending = ns, dict(store.get(ns, {}))\n"
        "    def set_blob(self, k, v):\n"
        "        self.pending[k] = bytes(v)\n"
        "    def get_blob(self, k, buf):\n"
        "        v = store.get(self.ns, {}).get(k)\n"
        "        if v is None:\n"
        "            raise OSError(-0x1102)\n"
        "        buf[:len(v)] = v\n"
        "        return len(v)\n"
        "    def erase_key(self, k):\n"
        "        if k not in self.pending:\n"
        "            raise OSError(-0x1102)\n"
        "        del self.pending[k]\n"
        "    def commit(self):\n"
        "        store[self.ns] = dict(self.pending)\n")
    script = ("import esp32, romslot\n"
              "romslot.save(romslot.pack(1, 0, 0, 0, 7, 2))\n"
              "assert romslot.record()[0] == 1\n"
              "exec(%r)\nexec(%r)\n"
              "assert romslot.record() is None and romslot.choose(romslot.record())[0] == 0\n"
              "print('cleared')\n") % (deploy._CLEAR_SLOT, deploy._CLEAR_SLOT)
    out = subprocess.run([MICROPYTHON, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, MICROPYPATH="%s:%s" % (fakes, ROOT)))
    assert out.stdout.strip() == "cleared", out.stderr + out.stdout
    # the clean-up: a firmware/lib tree from an earlier file deploy would
    # shadow the image ('' is before /rom on sys.path); the data is kept
    device = tmp_path / "device"
    (device / "firmware" / "link").mkdir(parents=True)
    (device / "firmware" / "link" / "session.mpy").write_bytes(b"old")
    (device / "lib" / "umqtt").mkdir(parents=True)
    (device / "lib" / "umqtt" / "simple.mpy").write_bytes(b"old")
    (device / "flash").mkdir()
    (device / "flash" / "keep").write_bytes(b"balance")
    for _ in range(2):  # and again, with nothing left to remove
        subprocess.run([MICROPYTHON, "-c", deploy._RM_TREE], cwd=str(device), check=True, timeout=30)
    assert sorted(p.name for p in device.iterdir()) == ["flash"]
    assert (device / "flash" / "keep").read_bytes() == b"balance"
