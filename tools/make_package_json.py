"""A mip package of the compiled firmware, for the files route (docs/deploy.md).

    .venv/bin/python tools/make_package_json.py      (make compile runs it)

For each compiled tree (build/mpy-esp32, build/mpy-host) it writes
build/mip-<arch>/: a `package.json` that lists boot.py, main.py and every
.mpy of firmware/ and lib/ by its path on the board and the sha256 of its
contents, and beside it the file store mip fetches them from,
`file/<first two hex digits>/<sha256>`. The folder is a complete mip index
of one package: install it from disk, or serve it from any static web
server, with

    mpremote mip install --target . --index build/mip-esp32 build/mip-esp32/package.json

mip skips a file the board already holds with the same sha256, so a second
install sends only what changed. Files are named by their full sha256 (mip
compares as many digits as it is given), so a name is also a check.
"""
import hashlib
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
TREES = ("mpy-esp32", "mpy-host")


def package_files(tree):
    """(path on the board, path on the host) of what the package installs."""
    out = [(n, os.path.join(tree, n)) for n in ("boot.py", "main.py")]
    for top in ("firmware", "lib"):
        for dirpath, dirnames, files in os.walk(os.path.join(tree, top)):
            dirnames.sort()
            for name in sorted(files):
                if name.endswith(".mpy"):
                    host = os.path.join(dirpath, name)
                    out.append((os.path.relpath(host, tree).replace(os.sep, "/"), host))
    return out


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write(tree_name, build=BUILD):
    """build/mip-<arch>/ from build/<tree_name>; returns the package dict."""
    tree = os.path.join(build, tree_name)
    out = os.path.join(build, tree_name.replace("mpy-", "mip-"))
    files = [(target, host, sha256_file(host)) for target, host in package_files(tree)]
    pkg = {"version": _version(tree), "hashes": [[t, d] for t, _, d in files]}
    try:
        with open(os.path.join(out, "package.json")) as f:
            if json.load(f) == pkg:
                return pkg   # unchanged: left alone, so a deploy reading it meanwhile is not disturbed
    except (OSError, ValueError):
        pass
    stage = out + ".tmp.%d" % os.getpid()
    shutil.rmtree(stage, ignore_errors=True)
    for _, host, digest in files:
        dest = os.path.join(stage, "file", digest[:2], digest)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(host, dest)
    with open(os.path.join(stage, "package.json"), "w") as f:
        json.dump(pkg, f, indent=1)
        f.write("\n")
    # swapped in whole: a half-written package is never served
    shutil.rmtree(out, ignore_errors=True)
    os.replace(stage, out)
    return pkg


def _version(tree):
    # the package's version is the hash of its contents: equal trees, equal versions
    h = hashlib.sha256()
    for target, host in package_files(tree):
        h.update(target.encode() + b"\0" + sha256_file(host).encode() + b"\n")
    return h.hexdigest()[:12]


def main():
    for name in TREES:
        if not os.path.isdir(os.path.join(BUILD, name)):
            sys.exit("no build/%s: run `make compile` first" % name)
        pkg = write(name)
        print("mip: build/%s/package.json (%d files)" % (name.replace("mpy-", "mip-"), len(pkg["hashes"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
