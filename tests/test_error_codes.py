"""docs/error-codes.md lists exactly the error codes the firmware can raise:
the store's and the provisioning's FAULT_LCD tables and the LCD's language
fault, with their names."""
import os
import re

from mpy import ROOT, run_mpy_json


def _doc_rows():
    with open(os.path.join(ROOT, "docs", "error-codes.md")) as f:
        return {int(m.group(1)): m.group(2)
                for m in re.finditer(r"^\| E(\d\d) \| `(\w+)` \|", f.read(), re.M)}


def test_the_technicians_table_has_every_code_the_firmware_raises_and_no_other():
    got = run_mpy_json("""
import json, sys
from firmware.store import store
from firmware import config
codes = {}
for k, n in store.FAULT_LCD.items():
    codes[n] = k
for k, n in config.FAULT_LCD.items():
    codes[n] = k
print(json.dumps({str(n): k for n, k in codes.items()}))
""", None)
    with open(os.path.join(ROOT, "firmware", "ui", "screens.py")) as f:
        lang = int(re.search(r"^_E_LANGUAGE = const\((\d+)\)", f.read(), re.M).group(1))
    want = {int(n): k for n, k in got.items()}
    want[lang] = "language"
    assert _doc_rows() == want
