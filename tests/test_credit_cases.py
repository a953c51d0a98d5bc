"""The credit engine's specific cases from issue 4, each run in the unix-port
MicroPython (all scenarios in one process) and checked against hand-worked
figures."""
import json

import pytest

from mpy import run_mpy

T0 = 1767225600  # 2026-01-01 00:00 local (Thursday)
H = 3600
DAY = 86400
JAN31 = T0 + 30 * DAY

SCRIPT = r"""
import json
from firmware.credit.engine import CreditEngine
T0 = %d
H = 3600
DAY = 86400
out = {}

def flat(v, price):
    return {"version": v, "price_milli_per_kwh": price}

def ev_of(e):
    return [list(x) for x in e.pop_events()]

# a tier boundary inside one increment: 199.5 kWh used, then 1 kWh more
e = CreditEngine({"initial_balance_minor": 100000, "tariff": {"version": 1, "tiers_wh": [200000],
                  "prices_milli_per_kwh": [[100000], [200000]]}})
e.tick(0, T0, 0)
e.tick(199500, T0 + H, H)
e.pop_events()
b = e.balance_minor()
e.tick(1000, T0 + H + 60, 60)
e.ledger.close_charge(e.events)
out["tier"] = {"charged": b - e.balance_minor(), "events": ev_of(e), "month_wh": e.month_wh}

# a TOU boundary inside one increment: valley until 08:00, peak after
tou = {"version": 1, "periods": ["peak", "valley"], "prices_milli_per_kwh": [[300000, 100000]],
       "days": {"weekday": [[0, 1], [8 * H, 0]]}}
e = CreditEngine({"initial_balance_minor": 100000, "tariff": tou})
e.tick(0, T0 + 7 * H + 1800, 0)
e.tick(1000, T0 + 8 * H + 1800, H)
e.ledger.close_charge(e.events)
out["tou"] = {"balance": e.balance_minor(), "events": ev_of(e)}

# a month rollover during a friendly period (20:00-08:00), balance already negative
e = CreditEngine({"initial_balance_minor": 0, "reconnect": "press",
                  "friendly": {"windows": [[20 * H, 8 * H]]},
                  "tariff": {"version": 1, "tiers_wh": [1000], "prices_milli_per_kwh": [[100000], [500000]]}})
jan31 = T0 + 30 * DAY
e.tick(0, jan31 + 22 * H, 0)
e.tick(1500, jan31 + 23 * H, H)          # Jan: 1000 Wh tier 0, 500 Wh tier 1
e.pop_events()
e.tick(2000, jan31 + 25 * H, 2 * H)      # 23:00 -> 01:00 Feb 1: 1000 Wh in Jan, 1000 Wh in Feb
e.ledger.close_charge(e.events)
out["month"] = {"events": ev_of(e), "month_wh": e.month_wh, "month_key": e.month_key,
                "balance": e.balance_minor(), "relay": e.relay_closed, "reason": e.relay_reason}
e.tick(0, jan31 + 32 * H, 7 * H)         # 08:00 Feb 1: the friendly period ends
out["month_after"] = {"relay": e.relay_closed, "reason": e.relay_reason}

# emergency credit repaid by a top-up smaller than the loan
e = CreditEngine({"initial_balance_minor": 300, "emergency_minor": 500, "emergency_below_minor": 1000,
                  "reconnect": "auto", "tariff": flat(1, 100000)})
e.tick(0, T0, 0)
e.tick(3000, T0 + H, H)                  # 300 charged: balance 0, relay opens
r0 = (e.relay_closed, e.relay_reason)
e.pop_events()
res = [e.long_press(), e.long_press()]
after_loan = (e.balance_minor(), e.relay_closed)
res.append(e.topup("pay-1", 200))
small = (e.balance_minor(), e.ledger.owed_minor())
res.append(e.topup("pay-2", 1000))
out["ec"] = {"r0": r0, "res": res, "after_loan": after_loan, "small": small,
             "final": (e.balance_minor(), e.ledger.owed_minor()), "events": ev_of(e),
             "conserved": e.ledger.conserved()}

# a re-sent top-up is acknowledged but not credited twice
e = CreditEngine({"initial_balance_minor": 0, "tariff": flat(1, 0)})
e.tick(0, T0, 0)
out["dup"] = [e.topup("A7", 500), e.topup("A7", 500), e.balance_minor(), e.topup("A8", -1)]

# a clock stepped backwards never charges twice nor resets the month
e = CreditEngine({"initial_balance_minor": 10000, "tariff": flat(1, 100000)})
e.tick(0, T0 + 31 * DAY + H, 0)          # Feb 1 01:00
e.tick(1000, T0 + 31 * DAY + 2 * H, H)
e.tick(1000, T0 + 31 * DAY - H, H)       # time sync stepped back into January
e.tick(1000, T0 + 31 * DAY + 3 * H, H)   # and forward across Feb 1 again
out["back"] = {"balance": e.balance_minor(), "month_wh": e.month_wh, "month_key": e.month_key,
               "events": [x[0] for x in e.pop_events()]}

# a pending tariff takes over exactly at its activation time
e = CreditEngine({"initial_balance_minor": 10000, "tariff": flat(1, 100000)})
e.tick(0, T0, 0)
res = [e.set_tariff(flat(2, 300000), T0 + 1800), e.set_tariff(flat(2, 300000), T0 + 1800)]
v_before = e.tariff.version, e.pending.version
e.tick(1000, T0 + H, H)
out["pending"] = {"res": res, "before": v_before, "balance": e.balance_minor(),
                  "version": e.tariff.version, "pending": e.pending, "events": ev_of(e)}

# reconnection: "press" waits for the button, "auto" does not
res = {}
for mode in ("press", "auto"):
    e = CreditEngine({"initial_balance_minor": 10, "reconnect": mode, "tariff": flat(1, 100000)})
    e.tick(0, T0, 0)
    e.tick(100, T0 + 60, 60)
    steps = [(e.relay_closed, e.relay_reason)]
    e.topup("t1", 1000)
    steps.append((e.relay_closed, e.relay_reason))
    e.press()
    steps.append((e.relay_closed, e.relay_reason))
    res[mode] = steps
    res[mode + "_events"] = [x for x in ev_of(e) if x[0] == "relay"]
out["reconnect"] = res

# remote override; postpaid keeps registers and never disconnects for balance
e = CreditEngine({"initial_balance_minor": 5000, "tariff": flat(1, 100000)})
e.tick(0, T0, 0)
steps = [e.remote("disconnect"), e.relay_closed, e.relay_reason, e.remote("auto"), e.relay_closed]
e.set_mode("postpaid")
e.tick(100000, T0 + H, H)                 # 10000 charged: balance -5000
steps += [e.relay_closed, e.relay_reason, e.balance_minor(), e.level]
e.remote("disconnect")
steps += [e.relay_closed, e.relay_reason]
e.remote("auto")
charged_wh = e.ledger.charged_wh
e.set_mode("prepaid")
steps += [e.relay_closed, e.relay_reason, e.ledger.charged_wh == charged_wh, e.balance_minor()]
out["remote"] = steps

# over-power: 5 s over 3000 W trips, retry after 60 s, give up after 2 tries
e = CreditEngine({"initial_balance_minor": 100000, "tariff": flat(1, 0),
                  "protection": {"over_power": {"limit": 3000, "hold_s": 5, "retry_s": 60, "tries": 2},
                                 "under_voltage": {"limit": 170, "hold_s": 10, "retry_s": 30, "tries": 3}}})
t = T0
e.tick(0, t, 0)
trace = []
def step(span, volts, watts):
    global t
    t += span
    e.tick(0, t, span, True, volts, watts)
    trace.append((e.relay_closed, e.relay_reason))
for _ in range(5):
    step(1, 230, 3500)                    # 5 s over: trips on the 5th
step(60, 230, 0)                          # retry
for _ in range(5):
    step(1, 230, 4000)                    # trips again: second try
step(60, 230, 0)                          # gives up
step(600, 230, 0)                         # still locked out
e.press()                                 # the customer resets it
trace.append((e.relay_closed, e.relay_reason))
step(10, 160, 100)                        # 10 s under 170 V
out["protection"] = {"trace": trace, "events": [x for x in ev_of(e) if x[0] != "warn"]}

# warnings: an event at each crossing, both ways; level 2 repeats until a press
e = CreditEngine({"initial_balance_minor": 6000, "warn_minor": [5000, 1000], "silence_s": 600,
                  "tariff": flat(1, 100000)})
e.tick(0, T0, 0)
e.tick(20000, T0 + 60, 60)                # 6000 -> 4000: level 1
a1 = e.alarm
e.tick(0, T0 + 61, 1)
a1b = e.alarm
e.tick(40000, T0 + 120, 59)               # 4000 -> 0: level 2
a2 = e.alarm
e.press()
a2s = e.alarm
e.tick(0, T0 + 120 + 601, 601)
a2r = e.alarm
e.topup("w", 10000)
out["warn"] = {"alarms": [a1, a1b, a2, a2s, a2r, e.alarm],
               "events": [x for x in ev_of(e) if x[0] == "warn"]}

# no drift: 3600 one-Wh increments at 123.457 minor/kWh
e = CreditEngine({"initial_balance_minor": 0, "tariff": flat(1, 123457), "mode": "postpaid"})
e.tick(0, T0, 0)
for i in range(3600):
    e.tick(1, T0 + i + 1, 1)
out["drift"] = [e.ledger.charges_minor, e.ledger.rem_micro]

# unsynced clock: TOU at the unsynced period, friendly only for the grace time
e = CreditEngine({"initial_balance_minor": 0, "unsynced_friendly_s": 3 * H, "reconnect": "auto",
                  "friendly": {"windows": [[20 * H, 8 * H]]},
                  "tariff": {"version": 1, "periods": ["peak", "flat", "valley"],
                             "prices_milli_per_kwh": [[300000, 200000, 100000]],
                             "days": {"weekday": [[0, 2], [8 * H, 0]]}}})
e.tick(0, T0 + 12 * H, 0)
e.tick(1000, T0 + 13 * H, H, False)       # noon, peak hours, clock unsynced: flat price
u1 = (e.balance_minor(), e.relay_closed, e.relay_reason)
e.tick(0, T0 + 15 * H, 2 * H, False)      # unsynced for 3 h: still friendly
u2 = (e.relay_closed, e.in_friendly)
e.tick(0, T0 + 15 * H + 1, 1, False)      # grace over
u3 = (e.relay_closed, e.relay_reason)
e.tick(0, T0 + 21 * H, 1, True)           # synced at 21:00: a real friendly period
u4 = (e.relay_closed, e.relay_reason)
out["unsynced"] = [u1, u2, u3, u4]

print(json.dumps(out))
""" % T0


@pytest.fixture(scope="module")
def r():
    out = run_mpy(SCRIPT)
    return json.loads(out.strip().splitlines()[-1])


def test_an_increment_crossing_a_tier_boundary_is_split_exactly(r):
    t = r["tier"]
    # 500 Wh at 0.100/kWh (50) + 500 Wh at 0.200/kWh (100)
    assert t["charged"] == 150
    assert t["month_wh"] == 200500
    # the tier-0 entry gathers the first 199500 Wh and the 500 Wh up to the boundary
    charges = [[x[6], x[7], x[4]] for x in t["events"] if x[0] == "entry"]
    assert charges == [["t0/p0", 200000, 20000], ["t1/p0", 500, 100]]


def test_an_increment_crossing_a_tou_boundary_is_split_exactly(r):
    t = r["tou"]
    # 07:30-08:30: 500 Wh valley at 0.100 (50) + 500 Wh peak at 0.300 (150)
    assert t["balance"] == 100000 - 200
    entries = [[x[6], x[7], x[4]] for x in t["events"] if x[0] == "entry"]
    assert entries == [["t0/p1", 500, 50], ["t0/p0", 500, 150]]


def test_month_rollover_during_a_friendly_period(r):
    m = r["month"]
    kinds = [x[0] for x in m["events"]]
    # January closes with its 2500 Wh; February starts again in tier 0
    assert ["month", 2026 * 12 + 0, 2500] in m["events"]
    assert kinds.index("month") < len(kinds) - 1
    assert m["month_key"] == 2026 * 12 + 1 and m["month_wh"] == 1000
    # January's tier-1 entry: 500 Wh before and 1000 Wh in this increment
    entries = [[x[6], x[7], x[4]] for x in m["events"] if x[0] == "entry"]
    assert entries == [["t1/p0", 1500, 750], ["t0/p0", 1000, 100]]
    # all of it charged into a negative balance: 1000 Wh at 0.1 + 1500 at 0.5 + 1000 at 0.1
    assert m["balance"] == -(100 + 750 + 100)
    assert m["relay"] is True and m["reason"] != "credit"
    # the friendly period ends at 08:00 and the supply goes off
    assert r["month_after"] == {"relay": False, "reason": "credit"}


def test_emergency_credit_is_repaid_first_by_a_smaller_top_up(r):
    ec = r["ec"]
    assert ec["r0"] == [False, "credit"]
    assert ec["res"] == ["ok", "in_use", "ok", "ok"]
    assert ec["after_loan"] == [500, True]
    assert ec["small"] == [500, 300]          # 200 paid, all of it repays the loan
    assert ec["final"] == [1200, 0]           # 1000 paid: 300 repays, 700 is credit
    kinds = [[x[2], x[4]] for x in ec["events"] if x[0] == "entry" and x[2] != "charge"]
    assert kinds == [["loan", 500], ["topup", 200], ["repay", 200], ["topup", 1000], ["repay", 300]]
    assert ec["conserved"] is True


def test_a_re_sent_top_up_is_acknowledged_but_not_credited_twice(r):
    assert r["dup"] == ["ok", "duplicate", 500, "bad_amount"]


def test_a_clock_stepped_backwards_never_charges_twice_nor_resets_the_month(r):
    b = r["back"]
    assert b["balance"] == 10000 - 300        # 3 kWh at 1.00, each charged once
    assert b["month_key"] == 2026 * 12 + 1 and b["month_wh"] == 3000
    assert "month" not in b["events"]


def test_a_pending_tariff_takes_over_exactly_at_its_activation_time(r):
    p = r["pending"]
    assert p["res"] == ["ok", "duplicate"]
    assert p["before"] == [1, 2]
    assert p["version"] == 2 and p["pending"] is None
    assert p["balance"] == 10000 - 50 - 150   # 500 Wh at 0.100, 500 Wh at 0.300
    assert ["tariff", 1, 2] in p["events"]


def test_reconnection_waits_for_a_press_or_is_automatic_as_configured(r):
    rc = r["reconnect"]
    assert rc["press"] == [[False, "credit"], [False, "await_press"], [True, "press"]]
    assert rc["auto"] == [[False, "credit"], [True, "topup"], [True, "topup"]]
    # the reason changing while the relay stays open is an event too
    assert [x[1:3] for x in rc["press_events"]] == [[0, "credit"], [0, "await_press"], [1, "press"]]


def test_remote_override_and_postpaid_mode(r):
    s = r["remote"]
    assert s[:5] == ["ok", False, "remote_disconnect", "ok", True]
    # postpaid: negative, still on, no warning; the reason is the mode, not
    # the remote command that closed the relay before it
    assert s[5:9] == [True, "postpaid", -5000, 0]
    assert s[9:11] == [False, "remote_disconnect"]    # but remote disconnect is honoured
    assert s[11:] == [False, "credit", True, -5000]   # back to prepaid: registers kept, off


def test_over_power_trips_retries_and_gives_up_then_a_press_resets_it(r):
    p = r["protection"]
    trace = [tuple(x) for x in p["trace"]]
    assert trace[:4] == [(True, "boot")] * 4
    assert trace[4] == (False, "over_power")
    assert trace[5] == (True, "protection")                    # retry after 60 s
    assert trace[10] == (False, "over_power")                  # second trip
    assert trace[11] == (False, "over_power_lockout")          # K = 2 tries: gives up
    assert trace[12] == (False, "over_power_lockout")
    assert trace[13] == (True, "press")
    assert trace[14] == (False, "under_voltage")
    kinds = [x[0] for x in p["events"] if x[0] != "relay"]
    assert kinds == ["trip", "retry", "trip", "lockout", "prot_reset", "trip"]
    relays = [x[2] for x in p["events"] if x[0] == "relay"]
    assert relays == ["over_power", "protection", "over_power", "over_power_lockout", "press",
                      "under_voltage"]


def test_warnings_raise_events_both_ways_and_a_press_silences_the_repeat(r):
    w = r["warn"]
    # level 1: one beep that day; level 2: repeating; press: quiet for silence_s
    assert w["alarms"] == [1, 0, 2, 0, 2, 0]
    assert [x[1:3] for x in w["events"]] == [[0, 1], [1, 2], [2, 0]]


def test_sub_unit_remainder_is_carried_without_drift(r):
    # 3600 Wh x 123457 milli/kWh = 444.4452 minor units
    assert r["drift"] == [444, 445200]


def test_unsynced_clock_uses_the_safe_rule(r):
    u1, u2, u3, u4 = r["unsynced"]
    assert u1[0] == -200                      # 1 kWh at the flat 0.200, not the peak 0.300
    assert u1[1] is True                      # supply kept on: time of day unknown
    assert u2 == [True, True]
    assert u3 == [False, "credit"]            # after the grace time, the normal rule
    assert u4[0] is True and u4[1] == "friendly"
