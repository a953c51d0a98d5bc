"""Property tests: the firmware credit engine, running in the unix-port
MicroPython, agrees exactly with the CPython reference model
(tests/credit_model.py) on random sequences of consumption, clock steps
(backwards too), unsynced spells, tariff changes and pending activations,
top-ups (re-sent ones too), adjustments, presses, emergency credit, remote
overrides, mode switches, friendly periods, protection trips and persistence
round trips; and money is conserved after every step."""
import datetime
import random

import pytest
from hypothesis import given, strategies as st

from credit_model import DRIVER, run_model
from engine_props import assert_agree, draw_schedule, engine_settings, sod

T0 = 1767225600  # 2026-01-01 00:00 local, a Thursday
SEQS_PER_PROCESS = 12


def _date(offset_days, yearly):
    d = datetime.date(2026, 1, 1) + datetime.timedelta(days=offset_days)
    return "%02d-%02d" % (d.month, d.day) if yearly else d.isoformat()


holiday = st.builds(_date, st.integers(-5, 90), st.booleans())


@st.composite
def tariffs(draw, version):
    n_tiers = draw(st.integers(1, 3))
    n_periods = draw(st.integers(1, 4))
    tops = sorted(draw(st.sets(st.integers(1, 30000), min_size=n_tiers - 1, max_size=n_tiers - 1)))
    price = st.one_of(st.integers(0, 400000), st.sampled_from([150000, 999999, 1]))
    d = {"version": version, "tiers_wh": tops,
         "prices_milli_per_kwh": [[draw(price) for _ in range(n_periods)] for _ in range(n_tiers)]}
    if n_periods > 1:
        d.update(draw_schedule(draw, n_periods, st.lists(holiday, max_size=3)))
        if draw(st.booleans()):
            d["weekend_days"] = sorted(draw(st.sets(st.integers(0, 6), max_size=3)))
        if draw(st.booleans()):
            d["unsynced_period"] = draw(st.integers(0, n_periods - 1))
        if draw(st.booleans()):
            d["periods"] = ["sharp", "peak", "flat", "valley"][:n_periods]
    return d


@st.composite
def friendly_cfg(draw):
    windows = draw(st.lists(st.tuples(sod, sod).map(list), max_size=2))
    return {"windows": windows, "weekend": draw(st.booleans()),
            "holidays": draw(st.lists(holiday, max_size=2))}


trip = st.fixed_dictionaries({}, optional={"hold_s": st.integers(0, 20), "retry_s": st.integers(0, 120),
                                           "tries": st.integers(1, 3), "clear_s": st.integers(0, 900)})


@st.composite
def protection_cfg(draw):
    out = {}
    for kind, limit in (("over_power", st.integers(2000, 9000)), ("over_voltage", st.integers(250, 270)),
                        ("under_voltage", st.integers(160, 190))):
        if draw(st.booleans()):
            c = draw(trip)
            c["limit"] = draw(limit)
            out[kind] = c
    return out


@st.composite
def configs(draw):
    cfg = {"initial_balance_minor": draw(st.integers(-2000, 20000)),
           "tariff": draw(tariffs(1)),
           "warn_minor": sorted(draw(st.sets(st.integers(-100, 8000), max_size=3)), reverse=True),
           "reconnect": draw(st.sampled_from(["auto", "press"])),
           "emergency_minor": draw(st.sampled_from([0, 500, 2000])),
           "emergency_below_minor": draw(st.integers(-500, 3000)),
           "mode": draw(st.sampled_from(["prepaid", "prepaid", "postpaid"])),
           "silence_s": draw(st.sampled_from([0, 60, 3600])),
           "unsynced_friendly_s": draw(st.sampled_from([0, 3600, 86400]))}
    if draw(st.booleans()):
        cfg["friendly"] = draw(friendly_cfg())
    if draw(st.booleans()):
        cfg["protection"] = draw(protection_cfg())
    return cfg


SPANS = [0, 1, 1, 30, 600, 3600, 4 * 3600, 86400, 3 * 86400]
STEPS = [0] * 8 + [-1, -120, -3600, -2 * 86400, 7200, 40 * 86400]


@st.composite
def sequences(draw):
    cfg = draw(configs())
    now = T0 + draw(st.integers(0, 80)) * 86400 + draw(sod)
    ops = [["tick", 0, now, 0, True, None, None]]
    synced = True
    version = 1
    for _ in range(draw(st.integers(1, 30))):
        kind = draw(st.sampled_from(["tick"] * 8 + ["topup", "topup", "adjust", "press", "long", "remote",
                                                   "mode", "tariff", "tariff", "config", "persist"]))
        if kind == "tick":
            span = draw(st.one_of(st.sampled_from(SPANS), st.integers(0, 7200)))
            now += span + draw(st.sampled_from(STEPS))
            if draw(st.integers(0, 9)) == 0:
                synced = not synced
            ops.append(["tick", draw(st.integers(0, 4000)), now, span, synced,
                        draw(st.one_of(st.none(), st.integers(150, 280))),
                        draw(st.one_of(st.none(), st.integers(0, 12000)))])
        elif kind == "topup":
            ops.append(["topup", draw(st.sampled_from(["o1", "o2", "o3", "o4", "o5", "o6"])),
                        draw(st.integers(-5, 5000))])
        elif kind == "adjust":
            ops.append(["adjust", draw(st.sampled_from(["a1", "a2", "a3"])), draw(st.integers(-3000, 3000)),
                        "billing_fix"])
        elif kind == "remote":
            ops.append(["remote", draw(st.sampled_from(["connect", "disconnect", "auto", "auto", "bogus"]))])
        elif kind == "mode":
            ops.append(["mode", draw(st.sampled_from(["prepaid", "postpaid", "credit"]))])
        elif kind == "tariff":
            version = draw(st.sampled_from([version, version + 1, version + 1]))
            at = draw(st.one_of(st.none(), st.integers(-3600, 3 * 86400).map(lambda x: now + x)))
            ops.append(["tariff", draw(tariffs(version)), at])
        elif kind == "config":
            change = draw(st.sampled_from(["friendly", "reconnect", "warn", "protection"]))
            if change == "friendly":
                ops.append(["config", {"friendly": draw(friendly_cfg())}])
            elif change == "reconnect":
                ops.append(["config", {"reconnect": draw(st.sampled_from(["auto", "press"]))}])
            elif change == "warn":
                ops.append(["config", {"warn_minor": [draw(st.integers(0, 9000))]}])
            else:
                ops.append(["config", {"protection": draw(protection_cfg())}])
        else:
            ops.append([kind])
    return {"cfg": cfg, "ops": ops}


def conserved(step, i):
    assert step[5] is True, "conservation broken at step %d" % i


@engine_settings(25)
@given(st.lists(sequences(), min_size=SEQS_PER_PROCESS, max_size=SEQS_PER_PROCESS))
def test_firmware_engine_agrees_with_model_and_conserves_money(seqs):
    assert_agree(DRIVER, seqs, run_model, conserved)


@pytest.mark.soak
@engine_settings(400)
@given(st.lists(sequences(), min_size=40, max_size=40))
def test_soak_firmware_engine_agrees_with_model(seqs):
    assert_agree(DRIVER, seqs, run_model, conserved)
