# The store's once-in-a-life operations, kept out of the resident store code
# (firmware/store/store.py loads this module for the occasion and drops it):
# the first build of the store on a factory flash, and a technician's
# restore out of a fault. See docs/storage.md.
import os

from firmware.store import record
from firmware.store.store import _DIRS, _HOT, _SNAP, StoreFault, _exists, _write


def create(store, state):
    # The first commit builds the whole store in store.new and renames
    # it into place: a cut before the rename is still a factory flash, a
    # cut after it is a complete store. Never a half-made one.
    tmp = store.root + "/store.new"
    remove_tree(tmp)
    os.mkdir(tmp)
    for d in _DIRS:
        os.mkdir(tmp + "/" + d)
    write_all(store, tmp, state)
    os.rename(tmp, store.dir)
    seal(store.root)
    seal(store.dir)


def restore(store, state):
    if store.fault == "fs":
        raise StoreFault("fs")
    for d in ("",) + _DIRS:
        if not _exists(store.dir + "/" + d):
            os.mkdir(store.dir + "/" + d)
    for n in _SNAP + _HOT:
        p = store.dir + "/" + n
        if _exists(p):
            os.rename(p, p + ".bad")
    store.snap_seq += 1
    write_all(store, store.dir, state)
    seal(store.root)
    seal(store.dir)
    store.fault = None
    store._factory = False
    store.ready = True


def write_all(store, d, state):
    store._write_snaps(d, state)
    # placeholders, so a missing hot file later means damage
    store.hot_seq += 1
    empty = record.encode(record.KIND_HOT, store.hot_seq, 0, b"{}")
    _write(d + "/" + _HOT[0], empty)
    _write(d + "/" + _HOT[1], empty)
    store._hot_next = 0


def seal(d):
    # A LittleFS directory is a pair of blocks: commits append to one until it
    # fills, then the live entries are compacted into the other. Right after
    # the store is created, the older block of the pair still describes the
    # directory without it, so a zeroed newest block would quietly bring back
    # a flash that looks factory-new. Enough tiny commits (prog size 32, so
    # at most 128 fit in 4 KB) force a compaction: then both blocks know the
    # store. Done once per life, at creation and at restore.
    p = d + "/.seal"
    for _ in range(70):
        with open(p, "wb"):
            pass
        os.remove(p)


def remove_tree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for n in names:
        p = path + "/" + n
        if os.stat(p)[0] & 0x4000:
            remove_tree(p)
        else:
            os.remove(p)
    os.rmdir(path)
