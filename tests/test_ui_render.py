"""The LCD path: every screen of a real App, in many meter states, is
rendered under micropython.heap_lock() (it allocates nothing per frame), and
the glyph module is what tools/make_glyphs.py makes of its ASCII art."""
import json
import os
import subprocess
import sys

import pytest

import signed
from mpy import ROOT, run_mpy_rom

CASES = ["fresh", "topup", "link", "friendly", "credit_cut", "await_press", "emergency", "remote", "over_power",
         "used", "token", "technician", "fault"]


def _frames(tmp_path, config):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(config))
    with open(os.path.join(ROOT, "tests", "ui_frames.py")) as f:
        script = f.read()
    arg = {"flash": str(tmp_path / "flash"), "cfg": str(cfg), "cases": CASES}
    out = run_mpy_rom(script, stdin=json.dumps(arg) + "\n")
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")]


TOU = {"version": 3, "prices_milli_per_kwh": [[90000, 150000], [120000, 210000]],
       "tiers_wh": [50000], "periods": ["valley", "peak"],
       "days": {"weekday": [[0, 0], [28800, 1], [79200, 0]]}}


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui")
    return _frames(tmp, {"meter_id": "UI-1", "key_hex": signed.KEY_HEX, "initial_balance_minor": 4321, "currency": "EUR",
                         "emergency_minor": 1000, "emergency_below_minor": 5000, "tariff": TOU,
                         "friendly": {"windows": [[0, 28800]]}})


def test_every_screen_in_every_state_renders_without_allocating(frames):
    assert len(frames) == len(CASES) * 14
    bad = [(f["case"], f["mode"], f["screen"], f["error"]) for f in frames if f["error"]]
    assert not bad, bad


def test_no_screen_is_ever_blank(frames):
    for f in frames:
        assert f["lit"] > 100, (f["case"], f["screen"], f["rows"])
        assert any(r.strip() for r in f["rows"]), f


def _screen(frames, case, k, mode=0):
    return next(f["rows"] for f in frames if f["case"] == case and f["screen"] == k and f["mode"] == mode)


def test_the_home_screen_shows_the_balance_big_with_the_currency_and_the_supply_in_words(frames):
    rows = _screen(frames, "fresh", 0)
    assert rows[0].startswith("Balance EUR") and rows[1] == "43.21" and rows[4] == "Supply on"
    assert "Hold: emergency" in rows    # 43.21 is below the 50.00 emergency threshold


def test_a_cut_for_no_credit_says_what_to_do_and_never_low_credit(frames):
    rows = _screen(frames, "credit_cut", 0)
    assert rows[4] == "Supply off" and rows[5:7] == ["No credit -", "please top up"]
    assert not any("Low credit" in r for r in rows)


def test_the_price_screen_names_the_period_its_next_change_and_the_tier(frames):
    rows = _screen(frames, "fresh", 5)
    assert rows[0] == "Price" and rows[4] == "EUR/kWh"
    assert rows[5].startswith("Valley") or rows[5].startswith("Peak")
    assert rows[6].startswith("Tier 1 ") and rows[6].endswith("kWh") and rows[7].startswith("then ")


def test_the_last_top_up_shows_amount_date_and_reference_and_no_token_yet(frames):
    assert "none yet" in _screen(frames, "fresh", 6)
    rows = _screen(frames, "topup", 6)
    assert rows[2] == "25.00 EUR" and rows[4] == "Ref 7001" and rows[6] == "Token --"


def test_the_link_screen_shows_signal_registration_and_the_last_exchange(frames):
    rows = _screen(frames, "link", 8)
    assert rows[2].startswith("Signal ") and rows[2].endswith("-75 dBm")
    assert rows[3] == "Registered" and rows[4] == "Server: up" and rows[5].startswith("Last ")


def test_each_reason_for_an_open_supply_is_in_customer_words(frames):
    assert _screen(frames, "await_press", 7)[4:6] == ["Press button", "to reconnect"]
    assert _screen(frames, "remote", 7)[4:6] == ["Disconnected", "by utility"]
    over = _screen(frames, "over_power", 7)
    assert over[4] == "Overload -" and over[5].startswith("retry in ") and over[5].endswith(" s")
    fault = _screen(frames, "fault", 0)
    assert fault[1] == "E53" and fault[5:7] == ["Meter fault E53", "call service"]
    assert "43.21" not in " ".join(fault)
    assert _screen(frames, "fault", 11)[2] == "E53"


def test_a_friendly_period_says_until_when(frames):
    rows = _screen(frames, "friendly", 0)
    assert rows[4] == "Supply on" and rows[5:7] == ["Friendly credit", "until 08:00"]
    assert "\u263a" in rows[0]


def test_emergency_credit_owed_is_on_home_with_its_icon(frames):
    rows = _screen(frames, "emergency", 0)
    assert rows[5:7] == ["Emergency credit", "repaid at top-up"]
    assert "\u271a" in rows[0]


def test_the_glyphs_in_render_py_are_what_the_tool_makes_of_the_ascii_art():
    rc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_glyphs.py"), "--check"]).returncode
    assert rc == 0, "firmware/ui/render.py's _GLYPHS is stale: run tools/make_glyphs.py"


def _tables():
    import ast
    with open(os.path.join(ROOT, "firmware", "ui", "texts.py")) as f:
        tree = ast.parse(f.read())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            out[node.targets[0].id] = ast.literal_eval(node.value.args[0])
    return out


def test_every_language_table_has_every_message_and_each_fits_a_line():
    import re
    with open(os.path.join(ROOT, "firmware", "ui", "screens.py")) as f:
        ids = [int(n) for n in re.findall(r"^_M_\w+ = const\((\d+)\)", f.read(), re.M)]
    assert ids == list(range(len(ids)))          # ids 0..n-1, in table order
    tables = _tables()
    assert set(tables) == {"_EN", "_FR"}
    for name, blob in tables.items():
        lines = blob.split(b"\n")
        assert lines[-1] == b"" and len(lines) - 1 == len(ids), name
        for line in lines[:-1]:
            assert 0 < len(line) <= 16 and all(32 <= c < 127 for c in line), (name, line)


def test_remaining_electricity_and_days_come_from_the_forecast(frames):
    f = next(x for x in frames if x["case"] == "fresh")
    wh = f["forecast"][0]
    assert wh > 0
    rows = _screen(frames, "fresh", 1)
    assert rows[1] == "%d.%d" % (wh // 1000, wh // 100 % 10) and rows[4] == "kWh"
    assert "estimate" in rows[5].lower()             # a time-of-use tariff: the price can change
    days = _screen(frames, "fresh", 2)
    assert f["forecast"][2] is None and days[1] == "--"   # no whole day of history yet


def test_the_last_token_result_shows_its_code_and_amount(frames):
    rows = _screen(frames, "token", 6)
    assert rows[6] == "Token add" and rows[7] == "12.00 EUR"


def test_today_and_this_month_show_energy_and_what_it_cost(frames):
    f = next(x for x in frames if x["case"] == "used")
    rows = _screen(frames, "used", 3)
    cost = "%d.%02d EUR" % (f["charges_minor"] // 100, f["charges_minor"] % 100)
    assert f["charges_minor"] > 0
    assert rows[1] == "Today" and rows[4] == "Month"
    assert rows[3].strip() == cost and rows[6].strip() == cost   # the meter's first month and day


def test_a_technician_override_says_so(frames):
    rows = _screen(frames, "technician", 7)
    assert rows[2] == "Supply off" and rows[4:6] == ["Switched off", "by technician"]
