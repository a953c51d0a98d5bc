"""tools/compile_mpy.py hands mpy-cross a source whose long identifier-like
string literals are interned as names (interned_source): the module behaves
the same, its tracebacks name the same lines, and it costs less heap when it
loads from ROMFS."""
import os
import subprocess
import sys

from mpy import MICROPYTHON, ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
import compile_mpy  # noqa: E402

MPY_CROSS = compile_mpy.MPY_CROSS

# 40 keys of a config-like module, each longer than 10 characters, used as
# dict keys and compared as strings; fail() raises on RAISE_LINE
MODULE = "# a module of long keys\nKEYS = {\n%s}\n\n\ndef get(d, k):\n    return d[k]\n\n\ndef fail():\n    raise ValueError('failed')\n" % "".join(
    "    'setting_number_%02d': %d,\n" % (i, i) for i in range(40))
RAISE_LINE = MODULE.split("\n").index("    raise ValueError('failed')") + 1


def test_the_source_keeps_its_lines_and_names_its_long_identifier_strings():
    out = compile_mpy.interned_source(MODULE)
    assert out.count("\n") == MODULE.count("\n")
    first, rest = out.split("\n", 1)
    assert first.startswith("if 0: (setting_number_00, ") and first.endswith("# a module of long keys")
    assert rest == MODULE.split("\n", 1)[1]
    # short strings, non-identifiers and modules with no leading comment stay as they are
    assert compile_mpy.interned_source("X = 'short'\n# c\n") == "X = 'short'\n# c\n"
    assert compile_mpy.interned_source("# c\nX = 'not an identifier'\n") == "# c\nX = 'not an identifier'\n"
    src = "def f():\n    # inside\n    return 'long_identifier_x'\n# after\n"
    assert compile_mpy.interned_source(src) == src


def _image(tmp_path, name, src):
    d = tmp_path / name
    d.mkdir()
    (d / "m.py").write_text(src)
    subprocess.run([MPY_CROSS, "-o", str(d / "m.mpy"), "-s", "m", str(d / "m.py")], check=True)
    (d / "m.py").unlink()
    from mpremote.romfs import make_romfs
    img = tmp_path / (name + ".romfs")
    img.write_bytes(make_romfs(str(d), mpy_cross=False))
    return img


PROBE = """
import gc, sys, vfs
vfs.mount(vfs.VfsRom(open(%r, 'rb').read()), '/rom')
sys.path.insert(0, '/rom')
gc.collect()
free = gc.mem_free()
import m
gc.collect()
print(free - gc.mem_free())
print(m.get(m.KEYS, 'setting_number_' + '17'), sorted(m.KEYS)[3])
try:
    m.fail()
except ValueError as e:
    sys.print_exception(e)
"""


def test_interned_module_behaves_the_same_and_loads_in_less_heap(tmp_path):
    runs = {}
    for name, src in (("plain", MODULE), ("interned", compile_mpy.interned_source(MODULE))):
        img = _image(tmp_path, name, src)
        out = subprocess.run([MICROPYTHON, "-X", "heapsize=108wk", "-c", PROBE % str(img)],
                             capture_output=True, text=True, check=True).stdout.splitlines()
        runs[name] = out
    plain, interned = runs["plain"], runs["interned"]
    assert interned[1] == plain[1] == "17 setting_number_03"
    # the traceback names the same line in both
    assert [l for l in interned if "line" in l] == [l for l in plain if "line" in l]
    assert any("line %d, in fail" % RAISE_LINE in l for l in interned), interned
    # 40 str objects fewer: 32 B each on the 64-bit host, less a name's pool slot
    saved = int(plain[0]) - int(interned[0])
    assert saved >= 40 * 16, (plain[0], interned[0])
