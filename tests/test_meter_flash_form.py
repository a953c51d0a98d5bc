"""The meter's hot record keeps its on-flash form: a positional JSON list,
[import_wh, balance_minor, rem_micro, pulse_rem, seq, local_s], as every
firmware so far has written it (docs/storage.md, "Layout"). A meter whose
flash holds a snapshot and a newer hot record in that form boots with the
hot record's money and energy, nothing lost and nothing counted twice."""
import json
import os

from mpy import run_mpy
from simmeter import COMPILED, ensure_compiled

SCRIPT = r"""
import json
from firmware.boards.sim import SimBoard
from firmware.meter import MeterCore
from firmware import config

def boot():
    board = SimBoard(["--flash", %(dir)r, "--step", "--imp", "1000"])
    cfg = config.load({"meter_id": "FF-1", "initial_balance_minor": 100000, "imp_per_kwh": 1000})
    return MeterCore(board, cfg)

core = boot()
core.durable.commit()   # a snapshot of a running meter (its billing month started)
st = core.durable.store
snap = json.loads(json.dumps(core.durable.snapshot()))
h0 = snap["h"]
# a hot record written after that snapshot, in the positional form: 7 Wh
# charged at the flat 150000 milli-minor/kWh (1 minor, 50000 micro left over)
hot = [h0[0] + 7, h0[1] - 1, h0[2] + 50000, 0, h0[4], h0[5]]
st.checkpoint({"h": hot})
del core
core = boot()
led = core.engine.ledger
print(json.dumps({"hot": hot, "import_wh": core.regs.import_wh, "balance": led.balance_minor,
                  "rem": led.rem_micro, "charged_wh": led.charged_wh, "seq": core.events.seq,
                  "conserved": led.conserved(), "month_wh": core.engine.month_wh,
                  "now_s": core.engine.now_s, "next_hot": core.durable.hot()}))
"""


def test_a_hot_record_in_the_positional_form_on_flash_is_applied_at_boot(tmp_path):
    ensure_compiled()
    out = run_mpy(SCRIPT % {"dir": str(tmp_path / "sim")}, heap="108wk", timeout=60,
                  extra_path=(COMPILED, os.path.join(COMPILED, "lib")))
    r = json.loads(out.strip().splitlines()[-1])
    hot = r["hot"]
    assert r["import_wh"] == hot[0] and r["balance"] == hot[1] and r["rem"] == hot[2]
    assert r["charged_wh"] == 7 and r["month_wh"] == 7 and r["conserved"]
    assert r["seq"] == hot[4] and r["now_s"] >= hot[5]
    # and the meter writes the same form back
    assert r["next_hot"][:5] == hot[:5] and len(r["next_hot"]) == 6
