"""`make run` (tools/run_demo.py) as a person meets it: in an 80-column
terminal, keys that undo each other, an event log in words that keeps the
newest lines in view, a head-end CLI that reaches the demo meter, and a
failed start that leaves nothing behind.

The terminal test drives the real program in a private tmux server
(`tmux -L`): send-keys in, capture-pane out."""
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from rich.console import Console

import lcd_png
import run_demo
import screenshots
from wait import wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_s_undoes_f_step_for_step():
    up = [1]
    for _ in range(len(run_demo.SPEEDS) + 2):        # past the top: it stays there
        up.append(run_demo.faster(up[-1]))
    assert up[:len(run_demo.SPEEDS)] == list(run_demo.SPEEDS) and up[-1] == 3600
    for n in range(len(run_demo.SPEEDS)):             # n presses of f, then n of s
        scale, seen = 1, [1]
        for _ in range(n):
            scale = run_demo.faster(scale)
            seen.append(scale)
        for _ in range(n):
            scale = run_demo.slower(scale)
            assert scale == seen[-2], "s did not go back the step f took"
            seen.pop()
        assert scale == 1
    assert run_demo.slower(1) == 1


EXAMPLES = [
    ("status", "online", "meter online"),
    ("status", "offline", "meter offline (link lost)"),
    ("ack", {"kind": "topup", "order": 3, "result": "credited", "balance_minor": 1500}, "order 3 credited, bal 15.00"),
    ("ack", {"kind": "topup", "order": 3, "result": "rejected", "reason": "replayed"}, "order 3 rejected: replayed"),
    ("ack", {"kind": "relay", "result": "ok"}, "relay command ok"),
    ("evt", {"kind": "topup", "amount_minor": 1000, "balance_minor": 1500, "order": 3}, "top-up +10.00, bal 15.00"),
    ("evt", {"kind": "ledger", "entry": "loan", "amount_minor": 300, "balance_minor": 250},
     "emergency credit taken 3.00, bal 2.50"),
    ("evt", {"kind": "relay", "closed": 0, "reason": "balance"}, "relay opened (balance)"),
    ("evt", {"kind": "warning", "level": 2, "balance_minor": 90}, "low credit L2, bal 0.90"),
    ("evt", {"kind": "warning", "level": 0}, "low-credit warning cleared"),
    ("evt", {"kind": "tariff", "event": "tariff_pending", "a": 4, "b": 0}, "tariff v4 pending"),
    ("evt", {"kind": "frozen_daily", "wh": 1234}, "day closed: 1.234 kWh"),
]


@pytest.mark.parametrize("leaf,body,words", EXAMPLES)
def test_the_event_log_says_what_happened_in_words(leaf, body, words):
    text = run_demo.describe(leaf, body)
    assert text == words
    assert "{" not in text and "'" not in text


class FakeView:
    def __init__(self, lines):
        self.state = {"balance_minor": 500, "relay_closed": 1, "obis_1_8_0": 3, "seq": 9}
        self.status = "online"
        self.log = []
        for line in lines:
            self.log.append(line)
            del self.log[:-run_demo.LOG_ROWS]


class FakeBroker:
    port, kind = 41234, "mosquitto"


def golden_frame(name="credit-ok-home"):
    """A real frame of the meter: the golden of a screen (tests/golden/)."""
    return lcd_png.bits_to_frame(screenshots.read_golden(screenshots.golden_path(name)))


def render(view, width=80, height=run_demo.SCREEN_ROWS, frame=None):
    console = Console(width=width, height=height, record=True, color_system=None, force_terminal=False)
    st = {"lcd": ["BALANCE", " 5.00"], "relay_closed": True, "load_w": 1000, "volts": 230, "rtc_s": 1796161566,
          "meter": {"balance_minor": 500, "import_wh": 3}, "lcd_hex": (frame or golden_frame()).hex()}
    console.print(run_demo.screen(st, view, 3600, FakeBroker(), width, height))
    return console.export_text().splitlines()


def lcd_cells(lines, width):
    """The text inside the LCD panel's border: `width` cells a row."""
    top = next(i for i, l in enumerate(lines) if "LCD 128x64" in l)
    col = lines[top].rfind("\u256d", 0, lines[top].index("LCD 128x64")) + 1   # the LCD panel's own corner
    rows = []
    for line in lines[top + 1:]:
        if line[col - 1] != "\u2502":
            break
        rows.append(line[col:col + width])
    return rows


def test_the_screen_fits_80_columns_and_the_help_line_is_whole():
    assert len(run_demo.HELP) <= 80 - 4
    lines = render(FakeView(["21:00:00 meter online"]))
    assert max(len(l) for l in lines) <= 80
    assert len(lines) == run_demo.SCREEN_ROWS
    assert any(run_demo.HELP in l for l in lines)


def test_in_80_columns_the_lcd_shows_every_pixel_of_the_real_frame_in_braille():
    frame = golden_frame("awaiting-press")
    lines = render(FakeView([]), frame=frame)
    cells = lcd_cells(lines, 64)
    assert len(cells) == 16
    assert lcd_png.braille_decode(cells) == lcd_png.frame_bits(frame)
    text = "\n".join(lines)
    assert "BALANCE" not in text, "the text lines are shown instead of the frame"


def test_a_wide_terminal_shows_the_frame_in_half_blocks_a_column_per_pixel():
    frame = golden_frame("cut-no-credit")
    w, h = run_demo.WIDE_COLS, run_demo.WIDE_ROWS
    lines = render(FakeView(["21:00:00 meter online"]), width=w, height=h, frame=frame)
    assert len(lines) == h and max(len(l) for l in lines) <= w
    cells = lcd_cells(lines, 128)
    assert len(cells) == 32
    assert lcd_png.half_block_decode(cells) == lcd_png.frame_bits(frame)
    assert "meter online" in "\n".join(lines) and run_demo.HELP in "\n".join(lines)
    # one row or one column short of it: braille, which fits anywhere from 80 columns
    assert not run_demo.is_wide(w - 1, h) and not run_demo.is_wide(w, h - 1)


def test_the_newest_log_lines_stay_in_view_however_long_the_lines():
    entries = ["21:00:%02d event number %d with a long tail that cannot fit in the panel at all" % (i, i)
               for i in range(40)]
    text = "\n".join(render(FakeView(entries)))
    assert "event number 39 " in text and "event number 28 " in text
    assert "event number 27 " not in text


def _tmux(sock, *args):
    return subprocess.run(["tmux", "-L", sock] + list(args), capture_output=True, text=True, timeout=10)


def _wait_screen(sock, cond, what, timeout=20):
    screen = [""]

    def shown():
        screen[0] = _tmux(sock, "capture-pane", "-p", "-t", "demo").stdout
        return screen[0] if cond(screen[0]) else None
    try:
        return wait_for(shown, timeout, what)
    except AssertionError:
        raise AssertionError("no %s on the screen:\n%s" % (what, screen[0]))


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is installed by `make setup`")
def test_the_demo_in_an_80_column_terminal_and_the_cli_pointed_at_it(tmp_path):
    sock = "meter-demo-test-%d" % os.getpid()
    demo_file = tmp_path / "demo.json"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    # the shell stays after the demo ends, so its last words can be read
    cmd = "env METER_DEMO_FILE=%s TMPDIR=%s %s %s; echo EXIT $?; sleep 60" % (
        demo_file, tmp, sys.executable, os.path.join(ROOT, "tools", "run_demo.py"))
    assert _tmux(sock, "new-session", "-d", "-x", "80", "-y", "50", "-s", "demo", cmd).returncode == 0
    try:
        screen = _wait_screen(sock, lambda s: "meter online" in s and "x1 " in s, "running meter")
        assert run_demo.HELP in screen
        assert max(len(l) for l in screen.splitlines()) <= 80
        # the LCD is the meter's frame in braille dots (its balance line drawn, not typed)
        lcd = lcd_cells(screen.splitlines(), 64)
        assert len(lcd) == 16 and any(c not in " \u2800" for c in "".join(lcd)), screen
        assert "BALANCE" not in screen
        # make run printed what the CLI needs, and the command it printed works
        assert "--demo topup demo-0001 500" in screen
        demo = json.loads(demo_file.read_text())
        assert "127.0.0.1:%d" % demo["broker_port"] in screen and demo["meter_id"] == "demo-0001"
        for key, want in (("f", "x10 "), ("f", "x100 "), ("s", "x10 "), ("s", "x1 ")):
            _tmux(sock, "send-keys", "-t", "demo", key)
            _wait_screen(sock, lambda s: want in s, "clock " + want)
        _tmux(sock, "send-keys", "-t", "demo", "t")
        _wait_screen(sock, lambda s: "order 1 credited" in s and "top-up +10.00" in s, "credited top-up in words")
        env = dict(os.environ, METER_DEMO_FILE=str(demo_file))
        proc = subprocess.run([sys.executable, "-m", "headend", "--demo", "topup", "demo-0001", "500"],
                              cwd=os.path.join(ROOT, "tools"), env=env, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["state"] == "credited"
        _wait_screen(sock, lambda s: "order 2 credited" in s, "the CLI's top-up")
        _tmux(sock, "send-keys", "-t", "demo", "q")
        _wait_screen(sock, lambda s: "meter and broker stopped" in s and "EXIT 0" in s, "clean exit")
        assert not demo_file.exists()
    finally:
        _tmux(sock, "kill-server")


def test_a_failed_start_leaves_no_broker_and_no_temp_folder(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    demo_file = tmp_path / "demo.json"
    for bad in ("/bin/false", str(tmp_path / "no-such-micropython")):
        env = dict(os.environ, TMPDIR=str(tmp), MICROPYTHON=bad, METER_DEMO_FILE=str(demo_file))
        proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "run_demo.py")], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        assert err.startswith("make run: could not start: ") and "Traceback" not in err, err
        left = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
        for pid in left:
            os.kill(int(pid), signal.SIGKILL)
        assert left == [], "processes of the failed start survived"
        assert os.listdir(str(tmp)) == []
        assert not demo_file.exists()
