"""`make deploy PORT=... METER=...` end to end, against a board stand-in on a
pty (tests/fakes/serial_board.py: a unix-port MicroPython REPL with the
ESP32 port's romfs partition and hard reset put in).

What each step is checked against here, since the unix port is not an ESP32:
- compile: for real (`make compile`, incremental);
- the ROMFS image: `mpremote romfs deploy`, for real, into the stand-in's
  romfs partition (a host file the size of the romfs partition of
  boards/METER_ESP32/partitions.csv, written through the block protocol the
  ESP32 port's partition object offers); its bytes are compared with
  build/mpy-esp32.romfs here, and by sha256 on the board by the deploy;
- the files (ROUTE=files): `mpremote mip install` of build/mip-esp32, for real;
- boot.py, main.py and provisioning/<id>.json: copied, for real, and hashed
  on the board;
- the reset: `machine.reset()` is the stand-in's (the unix port has none):
  it powers up as the ESP32 does, mounting the partition's image at /rom and
  running boot.py then main.py on the sim board, whose output is the port's;
- the first status line: the real firmware's, from the deployed image.
The .mpy files are built -march=xtensawin for the ESP32; holding no native
code, they load on the host too, so the stand-in boots the very image the
board gets.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from simmeter import MICROPYTHON, ROOT, ensure_compiled
from wait import wait_for

sys.path.insert(0, os.path.join(ROOT, "tools"))
import deploy  # noqa: E402

pytestmark = pytest.mark.skipif(not shutil.which("socat"), reason="socat not installed")

KEY_HEX = bytes(range(32)).hex()
STAND_IN = os.path.join(ROOT, "tests", "fakes", "serial_board.py")


@pytest.fixture
def board(tmp_path):
    """(pty path, board filesystem folder, provisioning folder)."""
    ensure_compiled()
    fs = tmp_path / "board"
    fs.mkdir()
    prov = tmp_path / "provisioning"
    prov.mkdir()
    (prov / "MTR-0042.json").write_text(json.dumps({
        "meter_id": "MTR-0042", "key_hex": KEY_HEX, "broker_host": "127.0.0.1", "broker_port": 1}))
    tty = str(tmp_path / "ttyUSB0")
    socat = subprocess.Popen(["socat", "PTY,link=%s,raw,echo=0" % tty,
                              "EXEC:%s %s %s %s,pty,raw,echo=0" % (sys.executable, STAND_IN, fs, MICROPYTHON)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: os.path.exists(tty), 10, "socat's pty")
        yield tty, fs, prov
    finally:
        socat.terminate()
        try:
            socat.wait(10)
        except subprocess.TimeoutExpired:
            socat.kill()
            socat.wait()


def make_deploy(tty, prov, *extra):
    return subprocess.run(["make", "-s", "deploy", "PORT=" + tty, "PROVISIONING=" + str(prov)] + list(extra),
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def partition_image(fs):
    sys.path.insert(0, os.path.join(ROOT, "tests", "fakes"))
    import serial_board
    return serial_board.Board(str(fs), MICROPYTHON).image()


def test_make_deploy_writes_the_image_checks_it_on_the_board_and_the_meter_boots_from_it(board):
    tty, fs, prov = board
    (fs / "firmware").mkdir()  # an earlier file deploy's tree would shadow the image
    (fs / "firmware" / "app.mpy").write_bytes(b"old")
    out = make_deploy(tty, prov, "METER=MTR-0042")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "ROMFS image deployed" in out.stdout
    assert "checked on the board: 3 files and the ROMFS image, sha256 as built" in out.stdout
    assert "the meter is up: [MTR-0042] boot reset_cause=" in out.stdout
    # the code is only in the partition; the filesystem holds the entry
    # points and this meter's provisioning file
    assert sorted(p.name for p in fs.iterdir()) == ["boot.py", "config.json", "main.py"]
    assert (fs / "config.json").read_bytes() == (prov / "MTR-0042.json").read_bytes()
    with open(os.path.join(ROOT, "build", "mpy-esp32.romfs"), "rb") as f:
        assert partition_image(fs) == f.read()


def test_make_deploy_of_the_files_installs_the_mip_package_and_sends_only_what_changed(board):
    tty, fs, prov = board
    out = make_deploy(tty, prov, "METER=MTR-0042", "ROUTE=files")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "the meter is up: [MTR-0042] boot" in out.stdout
    with open(os.path.join(ROOT, "build", "mip-esp32", "package.json")) as f:
        listed = json.load(f)["hashes"]
    for target, digest in listed:
        assert hashlib.sha256((fs / target).read_bytes()).hexdigest() == digest, target
    # the meter is running; the next deploy interrupts it, and mip finds
    # every file already there by its hash
    again = make_deploy(tty, prov, "METER=MTR-0042", "ROUTE=files")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("Exists:") == len(listed)
    assert "Installing:" not in again.stdout


def test_the_check_names_a_file_or_an_image_the_board_holds_differently(board):
    tty, fs, prov = board
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "deploy.py"), tty, "--meter", "MTR-0042",
                          "--provisioning", str(prov), "--no-reset"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    image = os.path.join(ROOT, "build", "mpy-esp32.romfs")
    config = str(prov / "MTR-0042.json")
    want = deploy.expected_hashes(deploy.TREE, config, image)
    # one flipped byte in main.py, one in the image, config.json gone
    main = bytearray((fs / "main.py").read_bytes())
    main[0] ^= 1
    (fs / "main.py").write_bytes(bytes(main))
    (fs / "config.json").unlink()
    part = os.path.join(str(fs) + ".flash", "romfs")
    with open(part, "r+b") as f:
        f.seek(5000)
        b = f.read(1)
        f.seek(5000)
        f.write(bytes([b[0] ^ 0x80]))
    b = deploy.Board(tty)
    try:
        bad = deploy.compare(want, b.run(deploy.hash_script(want, image)))
    finally:
        b.close()
    assert [x.split(":")[0] for x in bad] == ["<romfs>", "config.json", "main.py"], bad
    assert "not on the board" in bad[1]


def test_a_meter_without_a_provisioning_file_is_refused_before_the_board_is_touched(board):
    tty, fs, prov = board

    def tool(meter):
        return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "deploy.py"), tty, "--meter", meter,
                               "--provisioning", str(prov)], capture_output=True, text=True, timeout=60)
    out = make_deploy(tty, prov, "METER=MTR-9999")
    assert out.returncode != 0
    assert "no provisioning file %s/MTR-9999.json for meter MTR-9999" % prov in out.stderr
    assert tool("MTR-9999").returncode == 2   # a mistake to fix, not a failed deploy
    out = make_deploy(tty, prov)
    assert out.returncode != 0 and "say which meter" in out.stderr
    (prov / "MTR-0007.json").write_text(json.dumps({"meter_id": "MTR-0008", "key_hex": KEY_HEX}))
    out = tool("MTR-0007")
    assert out.returncode == 2 and "is for meter 'MTR-0008', not 'MTR-0007'" in out.stderr
    (prov / "MTR-0009.json").write_text(json.dumps({"meter_id": "MTR-0009"}))
    out = tool("MTR-0009")
    assert out.returncode == 2 and "holds no key_hex" in out.stderr
    assert list(fs.iterdir()) == []


def test_the_provisioning_folder_is_never_committed():
    out = subprocess.run(["git", "check-ignore", "-q", "provisioning/MTR-0001.json"], cwd=ROOT)
    assert out.returncode == 0, "provisioning/ must be in .gitignore: it holds the meters' keys"
