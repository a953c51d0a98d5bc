# Where the store's files live on the data filesystem, and how one is read or
# written whole. Both the resident store (store.py) and its once-in-a-life
# build and restore (build.py) import this; neither imports the other's names.
# The names are the flash format: an existing meter's files are found by them.
import os

from micropython import const

STORE = "store"             # <root>/store: the live store
NEW = "store.new"           # <root>/store.new: a first build not yet renamed into place
SNAP = ("a/snap", "b/snap")   # the two snapshot mirrors
HOT = ("ha/hot", "hb/hot")    # the two alternating hot records
DIRS = ("a", "b", "ha", "hb")   # one LittleFS metadata pair per copy
HOT_MAX = const(128)        # bytes: LittleFS inline limit with MicroPython's 128-byte cache


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def write(path, buf):
    # LittleFS commits the new contents at close(), atomically.
    with open(path, "wb") as f:
        f.write(buf)


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False
