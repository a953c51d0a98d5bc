# The store's once-in-a-life file operations, kept out of the resident store
# code (firmware/store/store.py loads this module for the occasion and drops
# it): the directory tree of a first build on a factory flash, setting damaged
# files aside for a technician's restore, and sealing. See docs/storage.md.
# It works on the paths and names the store hands it, and imports nothing of
# the store's: the store writes the records and keeps its own fields.
import os


def new_tree(tmp, dirs):
    """An empty directory `tmp` holding the copies' directories `dirs`."""
    remove_tree(tmp)
    os.mkdir(tmp)
    for d in dirs:
        os.mkdir(tmp + "/" + d)


def install(tmp, store_dir, root):
    # The rename makes the whole store appear at once: a cut after it is a
    # complete store. Never a half-made one.
    os.rename(tmp, store_dir)
    seal(root)
    seal(store_dir)


def set_aside(store_dir, dirs, files):
    """Make every directory a restore writes into, and move the damaged
    `files` beside as *.bad for a post-mortem."""
    for d in ("",) + dirs:
        if not _exists(store_dir + "/" + d):
            os.mkdir(store_dir + "/" + d)
    for n in files:
        p = store_dir + "/" + n
        if _exists(p):
            os.rename(p, p + ".bad")


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


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
