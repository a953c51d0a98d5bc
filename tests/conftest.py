import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))


def pytest_addoption(parser):
    parser.addoption("--soak-cuts", type=int, default=0, help="power cuts for the long campaign")


def pytest_configure(config):
    config.addinivalue_line("markers", "soak: long campaigns, run by `make soak`")
    config.addinivalue_line("markers", "bench: benchmarks, run by `make bench`")
    # `kill` (SIGTERM) or a closed terminal (SIGHUP) unwinds like Ctrl-C:
    # fixtures tear down, brokers and sim meters stop (tools/children.py)
    import children
    children.exit_on_signals()


def pytest_sessionfinish(session, exitstatus):
    # An interrupted soak leaves no temp folder: its campaigns remove their
    # own, and the broker fixture's log is no use without the run's result.
    import shutil
    if exitstatus == 2 and "soak" in (session.config.getoption("-m") or ""):
        factory = getattr(session.config, "_tmp_path_factory", None)
        base = factory and factory._basetemp
        if base:
            shutil.rmtree(str(base), ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    import pytest
    if "soak" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="long campaign: run `make soak`")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


import pytest


@pytest.fixture
def broker(tmp_path):
    """A real mosquitto on a free loopback port, stopped after the test."""
    from broker import Broker
    b = Broker(str(tmp_path / "broker")).start()
    yield b
    b.stop()


@pytest.fixture
def sim_meters(tmp_path):
    """Factory for sim meters; every process it starts is killed at teardown."""
    from simmeter import SimMeter
    made = []

    def make(meter_id="m1", broker_port=1, **kw):
        m = SimMeter(meter_id, str(tmp_path / "meters"), broker_port=broker_port, **kw)
        made.append(m)
        return m
    yield make
    for m in made:
        m.stop()
