"""Long steps say how far they are: the soak campaigns print cuts done /
total, the rate and an ETA (tools/progress.py)."""
import io

import bench_store
import powercut
from progress import Progress, line


def test_a_progress_line_gives_done_total_rate_and_eta():
    assert line("power cuts", 1200, 10000, 400.0) == "power cuts: 1200/10000 (12.0 %), 3.0/s, ETA 0:48:53"
    assert line("power cuts", 0, 10000, 0.0).endswith("ETA ?")


def test_progress_prints_at_most_every_interval_and_once_at_the_end():
    now = [0.0]
    out = io.StringIO()
    p = Progress("cuts", 100, every_s=10, out=out, clock=lambda: now[0])
    for i in range(1, 101):
        now[0] = i * 0.5          # 2 cuts a second: a line every 20 cuts
        p.update(i)
    p.done()
    lines = out.getvalue().splitlines()
    assert lines[0] == "cuts: 20/100 (20.0 %), 2.0/s, ETA 0:00:40"
    assert [l.split()[1] for l in lines[:-1]] == ["20/100", "40/100", "60/100", "80/100", "100/100"]
    assert lines[-1] == "cuts: 100/100 done in 0:00:50"


def _counts(text):
    return [int(l.split()[-6].split("/")[0]) for l in text.splitlines() if "/s, ETA" in l]


def test_the_store_model_soak_reports_progress_while_it_runs(tmp_path):
    out = io.StringIO()
    stats = bench_store.campaign(60, seed=3, workdir=str(tmp_path), progress=Progress("cuts", 60, every_s=0, out=out))
    assert stats["cuts"] == 60 and stats["violations"] == 0
    counts = _counts(out.getvalue())
    assert len(counts) >= 10 and counts == sorted(counts) and counts[-1] == 60
    assert out.getvalue().splitlines()[-1].startswith("cuts: 60/60 done in ")
    assert stats == bench_store.campaign(60, seed=3, workdir=str(tmp_path))   # reporting changes nothing


def test_the_running_meter_soak_reports_progress_after_every_cut(tmp_path, broker):
    out = io.StringIO()
    stats = powercut.campaign(3, seed=5, workdir=str(tmp_path), broker_port=broker.port,
                              progress=Progress("cuts", 3, every_s=0, out=out))
    assert stats["violations"] == 0, stats["msgs"]
    assert _counts(out.getvalue()) == [1, 2, 3]
