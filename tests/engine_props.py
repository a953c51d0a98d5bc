"""What the credit engine's property tests share (tests/test_credit_props.py,
tests/test_forecast.py): their hypothesis settings, the time-of-use part of
a drawn tariff, and the run that feeds many sequences to a driver in one
MicroPython process and compares each step with a CPython model."""
import json

from hypothesis import HealthCheck, Phase, settings, strategies as st

from mpy import run_mpy

# a second of the day: often on a half hour, as real schedules are
sod = st.one_of(st.integers(0, 47).map(lambda h: h * 1800), st.integers(0, 86399))


def engine_settings(max_examples):
    # No shrinking: a list of sequences shrinks slowly, and assert_agree
    # already names the one sequence, step and op that disagree.
    return settings(max_examples=max_examples, deadline=None,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def draw_schedule(draw, n_periods, holidays):
    """The "days" and "holidays" keys of a tariff with n_periods periods:
    a weekday schedule, maybe weekend and holiday ones, each a sorted list
    of [second of day, period]; `holidays` draws the holiday list."""
    days = {}
    for name in ["weekday"] + sorted(draw(st.sets(st.sampled_from(["weekend", "holiday"])))):
        starts = sorted(draw(st.sets(sod, min_size=1, max_size=5)))
        days[name] = [[s, draw(st.integers(0, n_periods - 1))] for s in starts]
    return {"days": days, "holidays": draw(holidays)}


def run_driver(driver, seqs):
    """Run every sequence through `driver` in one MicroPython process (a
    process costs ~30 ms); the driver reads a sequence a JSON line and
    prints a JSON list a step, then "END". Returns each sequence's steps."""
    out = run_mpy(driver, stdin="".join(json.dumps(s) + "\n" for s in seqs))
    rows, steps = [], []
    for line in out.splitlines():
        if line == "END":
            rows.append(steps)
            steps = []
        elif line.startswith("["):
            steps.append(json.loads(line))
    assert len(rows) == len(seqs), out[-2000:]
    return rows


def assert_agree(driver, seqs, model_run, check=None):
    """The firmware's steps equal model_run(seq)'s for every sequence;
    check(step, i), if given, is asserted on each firmware step first."""
    for n, (seq, fw) in enumerate(zip(seqs, run_driver(driver, seqs))):
        # a JSON round trip, so that tuples and lists compare equal
        model = json.loads(json.dumps(model_run(seq)))
        for i, (got, want) in enumerate(zip(fw, model)):
            if check:
                check(got, i)
            if got != want:
                raise AssertionError("sequence %d step %d op %r\ncfg %r\nfirmware %r\nmodel    %r"
                                     % (n, i, seq["ops"][i], seq["cfg"], got, want))
        assert len(fw) == len(model)
