"""The board image (boards/METER_ESP32, docs/deploy.md): what can be checked
without ESP-IDF. The partition table is read as ESP-IDF reads it
(tools/partitions.py) and held to ESP-IDF's rules and to what the firmware
assumes; the frozen manifest is run against a stand-in of MicroPython's
manifest functions; the ROMFS image and the mip package are built for real.
"""
import ast
import hashlib
import json
import os
import re
import subprocess
import sys

import pytest

from simmeter import ROOT, ensure_compiled

sys.path.insert(0, os.path.join(ROOT, "tools"))
import compile_mpy  # noqa: E402
import partitions  # noqa: E402

BOARD = os.path.join(ROOT, "boards", "METER_ESP32")


def module_constants(rel):
    """Module-level NAME = value (or const(value)) of a firmware file, read
    with CPython's ast (the file is MicroPython, so it is not imported)."""
    tree = ast.parse(open(os.path.join(ROOT, rel)).read())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            v = node.value
            if isinstance(v, ast.Call) and getattr(v.func, "id", "") == "const":
                v = v.args[0]
            try:
                out[node.targets[0].id] = ast.literal_eval(v)
            except ValueError:
                pass
    return out


# --- the partition table
def test_the_partition_table_parses_is_aligned_does_not_overlap_and_fits_4_mb():
    table = partitions.read()
    assert [p.name for p in table] == ["nvs", "phy_init", "factory", "romfs", "romfs_b", "meterdata", "vfs"]
    assert partitions.problems(table) == []
    assert max(p.end for p in table) <= 4 * 1024 * 1024
    for p in table:
        assert p.offset % (0x10000 if p.type == "app" else 0x1000) == 0, p
    # and the board's ESP-IDF settings say the same flash size
    assert "CONFIG_ESPTOOLPY_FLASHSIZE_4MB=y" in open(os.path.join(BOARD, "sdkconfig.board")).read()


def test_the_checker_names_what_esp_idf_would_refuse(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("# Name, Type, SubType, Offset, Size\n"
                   "nvs, data, nvs, 0x9000, 0x6000,\n"
                   "factory, app, factory, 0x18000, 1M\n"      # not 64 KB aligned
                   "a, data, 0x8f, 0x100000, 0x800\n"         # overlaps factory, not whole sectors
                   "b, data, 0x83, , 4M\n")                   # after a, rounded up; past the end
    got = partitions.problems(partitions.read(str(bad)))
    assert any(g.startswith("factory: offset 0x18000 is not a multiple of 0x10000") for g in got), got
    assert any(g.startswith("a: size 0x800 is not a whole number") for g in got), got
    assert any(g.startswith("factory and a overlap") for g in got), got
    assert any(g.startswith("b: ends at 0x501000, past the") for g in got), got
    assert partitions.find("b", partitions.read(str(bad))).offset == 0x101000


def test_the_data_partition_is_the_one_the_esp32_board_mounts_with_its_block_size():
    esp32 = module_constants("firmware/boards/esp32.py")
    data = partitions.find(esp32["DATA_PARTITION"])
    assert (data.type, data.subtype) == ("data", "0x83")   # ESP-IDF's littlefs subtype
    assert data.size == 1024 * 1024
    assert data.size % esp32["_BLOCK_SIZE"] == 0 and esp32["_BLOCK_SIZE"] == 4096
    # the sim's flash (flashdev.py) is the same partition: 256 blocks of 4 KB
    dev = module_constants("firmware/boards/flashdev.py")
    count = int(re.search(r"def __init__\(self, path, block_count=(\d+)",
                          open(os.path.join(ROOT, "firmware", "boards", "flashdev.py")).read()).group(1))
    assert count * dev["_BLOCK_SIZE"] == data.size


def test_the_romfs_pair_and_micropythons_own_filesystem_are_there():
    a, b = partitions.find("romfs"), partitions.find("romfs_b")
    assert a.size == b.size and a.subtype == b.subtype == "0x8f"
    # MicroPython's flashbdev mounts the partition labelled vfs at "/", where
    # boot.py, main.py and /config.json (Esp32Board.CONFIG_PATH) live
    assert partitions.find("vfs").type == "data"
    assert module_constants("firmware/boards/esp32.py")["FLASH_ROOT"] == "/flash"
    assert "#define MICROPY_VFS_ROM (1)" in open(os.path.join(BOARD, "mpconfigboard.h")).read()


# --- the ROMFS image against the partition
def test_make_compile_builds_an_image_that_fits_the_romfs_partition():
    ensure_compiled()
    size = os.path.getsize(os.path.join(ROOT, "build", "mpy-esp32.romfs"))
    assert size <= partitions.romfs_bytes()
    assert compile_mpy.romfs_limit() == (partitions.romfs_bytes(),
                                         "the romfs partition in boards/METER_ESP32/partitions.csv")


def test_make_compile_fails_and_says_by_how_much_when_the_image_would_not_fit():
    ensure_compiled()
    size = os.path.getsize(os.path.join(ROOT, "build", "mpy-esp32.romfs"))
    limit = size - 100
    out = subprocess.run(["make", "-s", "compile", "ROMFS_LIMIT=%d" % limit], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode != 0
    assert ("romfs: build/mpy-esp32.romfs is %d bytes, 100 more than the %d bytes of ROMFS_LIMIT: "
            "the image would not fit on the board" % (size, limit)) in out.stderr, out.stderr
    # the image is still built (and the host's is not held to the board's limit)
    assert os.path.getsize(os.path.join(ROOT, "build", "mpy-esp32.romfs")) == size
    ok = subprocess.run(["make", "-s", "compile", "ROMFS_LIMIT=%d" % size], cwd=ROOT, capture_output=True,
                        text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr


# --- the frozen manifest
class ManifestStandIn:
    """MicroPython's manifest functions (tools/manifestfile.py), as its docs
    give them, collecting the frozen module paths instead of freezing."""

    def __init__(self, path):
        self.dir = os.path.dirname(path)
        self.frozen = set()
        self.included = []

    def _walk(self, top, prefix):
        for dirpath, _, files in os.walk(top):
            for name in files:
                if name.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dirpath, name), top)
                    self.frozen.add(os.path.join(prefix, rel).replace(os.sep, "/"))

    def include(self, path):
        self.included.append(path)

    def package(self, name, files=None, base_path=".", opt=None):
        base = os.path.normpath(os.path.join(self.dir, base_path))
        if files:
            self.frozen.update(name + "/" + f for f in files)
        else:
            self._walk(os.path.join(base, name), name)

    def module(self, path, base_path=".", opt=None):
        self.frozen.add(path)

    def freeze(self, path, script=None, opt=None):
        top = os.path.normpath(os.path.join(self.dir, path))
        if script:
            self.frozen.update([script] if isinstance(script, str) else script)
        else:
            self._walk(top, "")

    def run(self):
        path = os.path.join(self.dir, "manifest.py")
        api = {k: getattr(self, k) for k in ("include", "package", "module", "freeze")}
        exec(compile(open(path).read(), path, "exec"), api)
        return self


def test_the_frozen_manifest_freezes_every_firmware_and_lib_module_under_its_import_name():
    m = ManifestStandIn(os.path.join(BOARD, "manifest.py")).run()
    # the name a module is imported by: firmware/link/session.py, umqtt/simple.py
    wanted = {rel[4:] if rel.startswith("lib/") else rel for rel in compile_mpy.sources()}
    assert "umqtt/simple.py" in wanted, "lib/umqtt is installed by make setup"
    assert m.frozen == wanted, "missing: %s; extra: %s" % (sorted(wanted - m.frozen), sorted(m.frozen - wanted))
    # and the port's own frozen modules (_boot.py mounts the filesystem) stay
    assert m.included == ["$(PORT_DIR)/boards/manifest.py"]
    variant = open(os.path.join(BOARD, "mpconfigvariant_FROZEN.cmake")).read()
    assert "set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)" in variant


# --- the mip package
@pytest.mark.parametrize("tree", ["mpy-esp32", "mpy-host"])
def test_the_mip_package_lists_every_module_with_the_sha256_of_the_file_it_serves(tree):
    ensure_compiled()
    pkg_dir = os.path.join(ROOT, "build", tree.replace("mpy-", "mip-"))
    with open(os.path.join(pkg_dir, "package.json")) as f:
        pkg = json.load(f)
    listed = dict(pkg["hashes"])
    wanted = {rel[:-3] + ".mpy" for rel in compile_mpy.sources()} | {"boot.py", "main.py"}
    assert set(listed) == wanted
    assert len(listed) == len(pkg["hashes"])       # each path once
    for target, digest in listed.items():
        built = open(os.path.join(ROOT, "build", tree, target), "rb").read()
        assert hashlib.sha256(built).hexdigest() == digest, target
        served = os.path.join(pkg_dir, "file", digest[:2], digest)
        assert open(served, "rb").read() == built, target
    # nothing else in the file store
    stored = {n for _, _, fs in os.walk(os.path.join(pkg_dir, "file")) for n in fs}
    assert stored == set(listed.values())
    assert re.fullmatch(r"[0-9a-f]{12}", pkg["version"])


def test_the_partitions_holding_keys_state_or_mapped_code_are_encrypted_once_flash_encryption_is_on():
    flags = {p.name: p.flags for p in partitions.read()}
    assert {n for n, f in flags.items() if f == "encrypted"} == {"romfs", "romfs_b", "meterdata", "vfs"}
    assert flags["nvs"] == ""   # NVS has its own encryption; ESP-IDF refuses the flag there
