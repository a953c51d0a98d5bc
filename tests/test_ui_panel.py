"""The front panel on the running sim meter (firmware/ui/panel.py): the
screens in press order, long-press actions and their results, the return
home after 30 s idle and the backlight timeout on the sim's stepped clock,
the boot self-test, the French table and a bad language in the config.
docs/screens.md describes what is checked here."""
import os
import subprocess

from lcd import SUPPLY_OFF, TITLES, goto, lcd_cut_reason, screen_of


def _next(m, st):
    at = screen_of(st["lcd"])
    m.control({"cmd": "press", "ms": 120})
    return m.wait_for(lambda s: screen_of(s["lcd"]) not in (None, at), timeout=5)


def test_short_presses_walk_the_twelve_screens_in_order_and_come_back_home(sim_meters):
    m = sim_meters("pn1", config={"initial_balance_minor": 123456, "currency": "EUR"}).start()
    st = m.wait_for(lambda s: screen_of(s["lcd"]) == 0, timeout=10)
    seen = [st["lcd"][0]]
    for _ in range(12):
        st = _next(m, st)
        seen.append(st["lcd"][0])
    assert [screen_of([t]) for t in seen] == list(range(12)) + [0], seen
    assert [t.split("  ")[0] for t in seen[1:12]] == list(TITLES[1:])
    assert seen[0].startswith("Balance EUR")


def test_a_press_shorter_than_the_poll_is_latched_and_still_moves_on(sim_meters):
    # 1 ms presses: the button is up again before the 40 ms poll looks; the
    # board latched each edge (sim: the request; ESP32: a hard interrupt)
    m = sim_meters("pn2", config={"initial_balance_minor": 100000}).start()
    st = m.wait_for(lambda s: screen_of(s["lcd"]) == 0, timeout=10)
    for k in (1, 2, 3):
        m.control({"cmd": "press", "ms": 1})
        st = m.wait_for(lambda s: screen_of(s["lcd"]) == k, timeout=5)


def test_a_long_press_asks_before_lending_emergency_credit_and_a_short_press_cancels(sim_meters):
    m = sim_meters("pn3", config={"initial_balance_minor": 0, "emergency_minor": 1500,
                                  "emergency_below_minor": 2000, "reconnect": "auto"}).start()
    st = m.wait_for(lambda s: lcd_cut_reason(s["lcd"]) == "credit", timeout=10)
    assert "Hold: emergency" in st["lcd"] and SUPPLY_OFF in st["lcd"]
    m.control({"cmd": "press", "ms": 1800})
    st = m.wait_for(lambda s: s["lcd"][0] == "Take emergency", timeout=5)
    assert st["lcd"][1:5] == ["credit of", " 15.00", "The next top-up", "repays it."]
    assert st["lcd"][6:8] == ["Hold = yes", "Press = no"]
    m.control({"cmd": "press", "ms": 120})                  # no: back, nothing lent
    st = m.wait_for(lambda s: screen_of(s["lcd"]) == 0, timeout=5)
    assert st["meter"]["owed_minor"] == 0 and not st["relay_closed"]
    m.control({"cmd": "press", "ms": 1800})
    m.wait_for(lambda s: s["lcd"][0] == "Take emergency", timeout=5)
    m.control({"cmd": "press", "ms": 1800})                 # yes
    st = m.wait_for(lambda s: "Credit given" in s["lcd"], timeout=5)
    assert " 15.00" in st["lcd"] or "15.00" in st["lcd"]
    st = m.wait_for(lambda s: s["relay_closed"], timeout=5)
    assert st["meter"]["owed_minor"] == 1500 and st["meter"]["balance_minor"] == 1500
    # the result gives way to home, which says the credit is owed
    st = m.wait_for(lambda s: "Emergency credit" in s["lcd"], timeout=10)
    assert "repaid at top-up" in st["lcd"]


def test_a_long_press_where_no_action_is_offered_does_nothing(sim_meters):
    m = sim_meters("pn4", config={"initial_balance_minor": 100000, "emergency_minor": 1500}).start()
    st = goto(m, 9)                                          # totals
    m.control({"cmd": "press", "ms": 1800})
    m.wait_for(lambda s: s["buzzer"] is False, timeout=5)
    st = m.state()
    assert screen_of(st["lcd"]) == 9 and st["meter"]["owed_minor"] == 0


def test_a_long_press_on_the_supply_screen_reconnects_and_says_so(sim_meters):
    import signed
    m = sim_meters("pn5", config={"initial_balance_minor": 0, "key_hex": signed.KEY_HEX}).start()
    m.wait_for(lambda s: lcd_cut_reason(s["lcd"]) == "credit", timeout=10)
    raw = signed.command("pn5", "topup", order=11, amount_minor=500).decode()
    assert m.control({"cmd": "command", "raw": raw})["reply"]["result"] == "credited"
    st = m.wait_for(lambda s: lcd_cut_reason(s["lcd"]) == "await_press", timeout=5)
    assert "Hold: reconnect" in st["lcd"]
    st = goto(m, 7)                          # the press that got there reconnected already
    st = m.wait_for(lambda s: s["relay_closed"], timeout=5)
    assert st["meter"]["relay_reason"] == "press"


def test_the_display_goes_home_after_30_s_idle_and_the_backlight_off_after_20_s(sim_meters):
    # meter time is stepped by hand: the panel's timers read it, no sleeping
    m = sim_meters("pn6", config={"initial_balance_minor": 100000}, step=True).start()
    st = goto(m, 3)
    assert st["backlight"] is True
    st = m.control({"cmd": "advance", "ms": 21000})
    st = m.wait_for(lambda s: s["backlight"] is False, timeout=5)
    assert screen_of(st["lcd"]) == 3                        # not yet home
    m.control({"cmd": "advance", "ms": 10000})
    st = m.wait_for(lambda s: screen_of(s["lcd"]) == 0, timeout=5)
    m.control({"cmd": "press", "ms": 120})                  # a press lights it again
    st = m.wait_for(lambda s: s["backlight"] is True and screen_of(s["lcd"]) == 1, timeout=5)


def test_boot_runs_the_all_on_all_off_self_test_before_the_first_screen(sim_meters):
    m = sim_meters("pn7", config={"initial_balance_minor": 500}).start()
    m.wait_for(lambda s: screen_of(s["lcd"]) == 0, timeout=10)
    frames = [l for l in m.log_lines if l.startswith("SIM-LCD-FRAME")]
    assert frames[:2] == ["SIM-LCD-FRAME lit 8192", "SIM-LCD-FRAME lit 0"]


def test_holding_the_button_at_power_up_runs_the_self_test_in_maintenance_mode(tmp_path):
    from simmeter import MICROPYTHON, ROOT
    env = dict(os.environ, MICROPYPATH=":".join([ROOT, ROOT + "/lib", ".frozen"]))
    out = subprocess.run([MICROPYTHON, "-X", "heapsize=108k", "tools/sim_entry.py", "--flash",
                          str(tmp_path), "--hold-button"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=20).stdout
    assert "maintenance mode" in out
    frames = [l for l in out.splitlines() if l.startswith("SIM-LCD-FRAME")]
    assert frames == ["SIM-LCD-FRAME lit 8192", "SIM-LCD-FRAME lit 0"]


def test_the_french_table_speaks_french(sim_meters):
    m = sim_meters("pn8", config={"initial_balance_minor": 0, "language": "fr"}).start()
    st = m.wait_for(lambda s: s["lcd"] and s["lcd"][0].startswith("Solde"), timeout=10)
    assert "Courant coupe" in st["lcd"]
    assert ["Plus de credit -", "rechargez SVP"] == st["lcd"][5:7]
    m.control({"cmd": "press", "ms": 120})
    m.wait_for(lambda s: s["lcd"][0] == "Energie restante", timeout=5)


def test_an_unknown_language_is_a_shown_config_fault_in_english_never_a_blank_screen(sim_meters):
    m = sim_meters("pn9", config={"initial_balance_minor": 100000, "language": "xx"}).start()
    st = m.wait_for(lambda s: s["lcd"] and s["lcd"][0].startswith("Balance"), timeout=10)
    assert "E65 bad language" in st["lcd"] and "call service" in st["lcd"]
    st = goto(m, 11)
    assert "E65" in st["lcd"]
