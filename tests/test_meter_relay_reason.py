"""One answer to "why is the relay open?" (issue 12): for every cause, the
state, the LCD, the latest relay event and the console's `status` report the
same position and the same reason, on the running sim meter."""
import json
import os

import pytest

import signed
from mqttc import Watcher
from test_meter_faults import corrupt
from test_repl import PIN, _pin_config


def cmd(m, kind, **fields):
    return m.control({"cmd": "command", "raw": signed.command(m.meter_id, kind, **fields).decode()})["reply"]


from lcd import SUPPLY_OFF, SUPPLY_ON, WORDED, goto, lcd_cut_reason  # noqa: E402


class Views:
    def __init__(self, m, watcher):
        self.m = m
        self.w = watcher
        self.relay_events = []

    def latest_relay_event(self, closed, reason, timeout=10):
        """The newest relay event published so far, once it is (closed, reason)."""
        last = [None]

        def newest_is_it():
            # called under the watcher's lock, at every message that arrives
            evs = [json.loads(p) for t, p, _ in self.w.msgs if t.endswith("/evt")]
            relays = [e for e in evs if e.get("kind") == "relay"]
            last[0] = relays[-1] if relays else None
            return last[0] and last[0]["closed"] == closed and last[0]["reason"] == reason
        with self.w.cond:
            if self.w.cond.wait_for(newest_is_it, timeout):
                return last[0]
        last = last[0]
        raise AssertionError("latest relay event %r, wanted %r" % (last, (closed, reason)))

    def home(self):
        """A press also moves the LCD to its next screen: walk on to the
        balance screen (a press with the supply on and credit changes nothing)."""
        goto(self.m, 0)

    def check(self, closed, reason):
        """Wait until the meter reports (closed, reason), then read every view."""
        m = self.m
        st = m.wait_for(lambda s: s["meter"]["relay_closed"] == closed
                        and s["meter"]["relay_reason"] == reason, timeout=15)
        if closed:
            self.home()
        # the LCD says it too (it refreshes within a second): the reason's
        # words, or none for a closed relay that has nothing to explain
        words = reason if reason in WORDED else None
        st = m.wait_for(lambda s: (SUPPLY_ON if closed else SUPPLY_OFF) in s["lcd"]
                        and lcd_cut_reason(s["lcd"]) == words, timeout=5)
        assert st["relay_closed"] is closed                     # the board's relay
        state = m.control({"cmd": "meter_state"})["state"]
        assert (state["relay_closed"], state["relay_reason"]) == (closed, reason)
        ev = self.latest_relay_event(1 if closed else 0, reason)
        assert ev["closed"] == (1 if closed else 0) and ev["reason"] == reason
        line = [l for l in m.console("status()") if l.startswith("relay ")][0]
        assert line == "relay %s  reason %s" % ("closed" if closed else "open", reason)
        retained = self.w.wait(lambda t, b: t.endswith("/state") and b.get("relay_reason") == reason
                               and b.get("relay_closed") == (1 if closed else 0))
        assert retained["relay_reason"] == reason


def test_every_opening_and_closing_is_reported_alike_everywhere(sim_meters, broker):
    m = sim_meters("rr1", broker.port, config=dict(_pin_config(), **{
        "initial_balance_minor": 100, "key_hex": signed.KEY_HEX, "reconnect": "press",
        "protection": {"over_power": {"limit": 5000, "hold_s": 2, "retry_s": 4, "tries": 1},
                       "over_voltage": {"limit": 260, "hold_s": 2, "retry_s": 4, "tries": 1},
                       "under_voltage": {"limit": 200, "hold_s": 2, "retry_s": 4, "tries": 3}}}))
    w = Watcher(broker.port, ["meters/rr1/evt", "meters/rr1/state"])
    try:
        m.start()
        m.wait_for(lambda s: s["meter"]["link_up"], timeout=20)
        v = Views(m, w)
        m.control({"cmd": "pulses", "n": 1000})            # 1 kWh at 1.50: credit used up
        v.check(False, "credit")
        assert cmd(m, "topup", order=1, amount_minor=10000)["result"] == "credited"
        v.check(False, "await_press")                      # still off: a press is wanted
        assert cmd(m, "mode", mode="postpaid")["result"] == "ok"
        v.check(True, "postpaid")                          # the mode change clears it
        assert cmd(m, "mode", mode="prepaid")["result"] == "ok"
        v.check(True, "mode")                              # not the stale "postpaid"
        # over-power from the pulse interval, then its lockout after one try
        m.control({"cmd": "load", "w": 8000})
        v.check(False, "over_power")
        v.check(False, "over_power_lockout")
        m.control({"cmd": "load", "w": 0})
        m.control({"cmd": "press"})                        # the customer resets it
        v.check(True, "press")
        # a high supply, measured from the IC's CF1 output (it reads the supply
        # side, so the voltage stays known with the relay open), then its lockout
        m.control({"cmd": "load", "w": 0, "v": 280})
        v.check(False, "over_voltage")
        v.check(False, "over_voltage_lockout")
        m.control({"cmd": "load", "w": 0, "v": 230})
        m.control({"cmd": "press"})
        v.check(True, "press")
        # a low supply
        m.control({"cmd": "load", "w": 0, "v": 150})
        v.check(False, "under_voltage")
        assert cmd(m, "relay", action="disconnect")["result"] == "ok"
        v.check(False, "remote_disconnect")                # the higher-priority reason shows
        m.control({"cmd": "load", "w": 0, "v": 230})     # the trip's retry comes, unseen
        # the technician's open at the REPL outranks even the utility's
        assert m.console('login("%s")' % PIN)[0].startswith("logged in")
        assert m.console('relay("open")') == ["ok: relay open  reason technician_open"]
        v.check(False, "technician_open")
        assert m.console('relay("auto")') == ["ok: relay open  reason remote_disconnect"]
        v.check(False, "remote_disconnect")                # back to the rule below it
        assert cmd(m, "relay", action="connect")["result"] == "ok"
        v.check(True, "remote_connect")
        assert m.console('relay("close")') == ["ok: relay closed  reason technician_close"]
        v.check(True, "technician_close")                  # above a remote connect
        assert m.console('relay("auto")') == ["ok: relay closed  reason remote_connect"]
        v.check(True, "remote_connect")
        assert cmd(m, "mode", mode="postpaid")["result"] == "ok"
        v.check(True, "remote_connect")                    # the override outranks the mode
    finally:
        w.close()


def test_a_friendly_period_keeps_the_supply_on_without_credit_and_its_end_opens_it_alike_everywhere(
        sim_meters, broker):
    # 00:00-01:00 is friendly; the sim starts at 2026-01-01 00:00 UTC
    m = sim_meters("rr4", broker.port, config={
        "initial_balance_minor": 100, "key_hex": signed.KEY_HEX, "reconnect": "press",
        "friendly": {"windows": [[0, 3600]]}})
    w = Watcher(broker.port, ["meters/rr4/evt", "meters/rr4/state"])
    try:
        m.start()
        m.wait_for(lambda s: s["meter"]["link_up"], timeout=20)
        # the server's time: the window is known, not assumed (docs/credit.md)
        assert cmd(m, "time", utc_s=m.state()["rtc_s"])["result"] == "ok"
        m.wait_for(lambda s: s["meter"]["clock_synced"])
        v = Views(m, w)
        m.control({"cmd": "pulses", "n": 1000})            # 1 kWh at 1.50: credit used up
        m.wait_for(lambda s: s["meter"]["balance_minor"] < 0)
        v.check(True, "friendly")                          # on, and the LCD says until when
        assert "until 01:00" in m.state()["lcd"]
        m.control({"cmd": "advance", "ms": 3600 * 1000})   # the window ends
        v.check(False, "credit")
    finally:
        w.close()


def test_a_store_fault_opens_the_relay_with_its_reason_in_every_view(sim_meters, broker):
    m = sim_meters("rr2", broker.port, config={"initial_balance_minor": 500, "key_hex": signed.KEY_HEX})
    m.start()
    m.control({"cmd": "command", "raw": signed.command("rr2", "topup", order=1, amount_minor=100).decode()})
    m.kill()
    corrupt(m, ["a/snap", "b/snap"])
    w = Watcher(broker.port, ["meters/rr2/evt", "meters/rr2/state"])
    try:
        m.start()
        st = m.wait_for(lambda s: s["lcd"] and s["lcd"][0].startswith("Meter fault"), timeout=5)
        assert lcd_cut_reason(st["lcd"]) == "store_fault" and SUPPLY_OFF in st["lcd"]
        assert st["relay_closed"] is False
        assert st["meter"]["relay_closed"] is False and st["meter"]["relay_reason"] == "store_fault"
        state = m.control({"cmd": "meter_state"})["state"]
        assert (state["relay_closed"], state["relay_reason"]) == (False, "store_fault")
        ev = w.wait(lambda t, b: t.endswith("/evt") and b.get("kind") == "relay")
        assert ev["closed"] == 0 and ev["reason"] == "store_fault"
        signed.verify(json.dumps(ev).encode())
        line = [l for l in m.console("status()") if l.startswith("relay ")][0]
        assert line == "relay open  reason store_fault"
        retained = w.wait(lambda t, b: t.endswith("/state") and b.get("fault"))
        assert retained["relay_closed"] == 0 and retained["relay_reason"] == "store_fault"
    finally:
        w.close()


def test_the_supply_voltage_is_shown_where_the_board_measures_it_and_dashes_where_not(sim_meters):
    m = sim_meters("rr3", config={"initial_balance_minor": 500,
                                  "protection": {"under_voltage": {"limit": 200, "hold_s": 2}}}).start()
    goto(m, 4)   # live power
    m.wait_for(lambda s: "230 V" in s["lcd"], timeout=5)
    m.kill()
    # the same meter on a board without the CF1 output: the voltage is unknown
    m.extra_args = ["--no-cf1"]
    m.start()
    m.control({"cmd": "load", "w": 1000})
    goto(m, 4)
    st = m.wait_for(lambda s: "-- V" in s["lcd"], timeout=5)
    line = [l for l in m.console("status()") if l.startswith("price ")][0]
    assert line.endswith("voltage -- V")
    # under-voltage is configured, but never trips on a voltage the meter cannot see
    m.wait_for(lambda s: any(l.endswith(" W") and l != "0 W" for l in s["lcd"]), timeout=10)
    st = m.state()
    assert st["relay_closed"] and st["meter"]["relay_reason"] != "under_voltage"


@pytest.mark.parametrize("damage, code, lcd", [("missing", "config_missing", "E63"),
                                               ("not json", "config_bad", "E64")])
def test_an_unusable_config_file_opens_the_relay_with_the_store_fault_reason_in_every_view(
        sim_meters, damage, code, lcd):
    # the store's safe state (docs/provisioning.md): nothing is stored and no
    # link will start, so the fault's events are kept live, where the
    # console's events() shows them
    m = sim_meters("rr5", config={"initial_balance_minor": 500})
    os.remove(m.config_path)
    if damage == "not json":
        with open(m.config_path, "w") as f:
            f.write('{"meter_id": "rr5",')
    m.start()
    st = m.wait_for(lambda s: s["lcd"] and s["lcd"][0].startswith("Meter fault"), timeout=5)
    assert st["lcd"][1] == lcd
    assert lcd_cut_reason(st["lcd"]) == "store_fault" and SUPPLY_OFF in st["lcd"]
    assert st["relay_closed"] is False
    assert st["meter"]["relay_closed"] is False and st["meter"]["relay_reason"] == "store_fault"
    state = m.control({"cmd": "meter_state"})["state"]
    assert (state["relay_closed"], state["relay_reason"]) == (False, "store_fault")
    lines = m.console("events(50)")
    assert lines and all(l.startswith("live {") for l in lines), lines
    events = [json.loads(l[5:]) for l in lines]
    assert [e for e in events if e["kind"] == "fault"][-1]["code"] == code
    relays = [e for e in events if e["kind"] == "relay"]
    assert relays and relays[-1]["closed"] == 0 and relays[-1]["reason"] == "store_fault"
    line = [l for l in m.console("status()") if l.startswith("relay ")][0]
    assert line == "relay open  reason store_fault"
