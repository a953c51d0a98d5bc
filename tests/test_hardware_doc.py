"""docs/hardware.md's pin map is pins.py's: every constant of
firmware/boards/pins.py is in one of its two tables with the same value,
and nothing else is."""
import ast
import os
import re

from simmeter import ROOT

DOC = os.path.join(ROOT, "docs", "hardware.md")
PINS = os.path.join(ROOT, "firmware", "boards", "pins.py")


def pins_constants():
    out = {}
    for node in ast.parse(open(PINS).read()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            v = node.value
            if isinstance(v, ast.Call) and getattr(v.func, "id", "") == "const":
                v = v.args[0]
            out[node.targets[0].id] = ast.literal_eval(v)
    return out


def doc_tables():
    """{name: value} of the pin table (GPIO first) and the settings table."""
    pins, settings = {}, {}
    for line in open(DOC).read().splitlines():
        m = re.match(r"^\| (\d+) \| `([A-Z0-9_]+)` \|", line)
        if m:
            assert m.group(2) not in pins, "%s twice in the pin map" % m.group(2)
            pins[m.group(2)] = int(m.group(1))
            continue
        m = re.match(r"^\| `([A-Z0-9_]+)` \| (\d+) \|", line)
        if m:
            settings[m.group(1)] = int(m.group(2))
    return pins, settings


def test_the_pin_map_in_the_docs_is_the_one_in_pins_py():
    code = pins_constants()
    pins, settings = doc_tables()
    assert len(pins) >= 20, "the pin map table was not found in docs/hardware.md"
    assert not set(pins) & set(settings)
    doc = dict(pins, **settings)
    assert doc == {k: v for k, v in code.items() if v is not None}, (
        "docs/hardware.md and firmware/boards/pins.py differ: only in the docs %s, only in pins.py %s, "
        "different values %s" % (sorted(set(doc) - set(code)), sorted(set(code) - set(doc)),
                                 sorted(k for k in set(doc) & set(code) if doc[k] != code[k])))
    # no GPIO is used twice
    assert len(set(pins.values())) == len(pins)


def test_the_keypad_row_says_pending_only_while_pins_py_has_no_keypad():
    text = open(DOC).read()
    has_keypad = any(k.startswith("KEYPAD") for k in pins_constants())
    assert ("(not yet in pins.py)" in text) != has_keypad, (
        "pins.py now has the keypad's pins: put them in docs/hardware.md's pin map" if has_keypad
        else "the keypad is in no table of docs/hardware.md")
