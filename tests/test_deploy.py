"""tools/deploy.py puts the compiled firmware on a board with mpremote. Here
the board is a unix-port MicroPython REPL on a pty (socat), and the deployed
tree then boots as a sim meter and meters."""
import os
import shutil
import subprocess
import sys
import time

import pytest

from simmeter import COMPILED, MICROPYTHON, ROOT, SimMeter, ensure_compiled


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
        for _ in range(100):
            if os.path.exists(tty):
                break
            time.sleep(0.05)
        out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "deploy.py"), tty,
                              "--tree", COMPILED, "--resume", "--no-reset"],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    finally:
        socat.kill()
        socat.wait()
    assert (device / "main.py").exists() and (device / "firmware" / "app.mpy").exists()
    assert (device / "lib" / "umqtt" / "simple.mpy").exists()
    # only boot.py and main.py travel as source
    assert sorted(p.name for p in device.rglob("*.py")) == ["boot.py", "main.py"]
    m = SimMeter("d1", str(tmp_path / "meters"), broker_port=1,
                 config={"initial_balance_minor": 15}, code_root=str(device)).start()
    try:
        m.control({"cmd": "pulses", "n": 100})
        st = m.wait_for(lambda s: not s["relay_closed"])
        assert st["meter"]["import_wh"] == 100
    finally:
        m.stop()
