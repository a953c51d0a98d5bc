# Code a meter runs once or twice in its life, or once per rare event (the
# boot sequence, the store's first build, the TLS setup, an offline token,
# an over-the-air update, a technician's helper), is loaded for the
# occasion and dropped after it, so that its functions and globals leave
# the heap. Their names stay interned: the interpreter's pools never shrink.
# This is the one place that knows how an import is undone.
import sys


def once(path):
    """The module at `path`, loaded for the occasion and not kept: the
    caller's reference is then the only one (what it imported stays)."""
    __import__(path)
    mod = sys.modules[path]
    drop(path)
    return mod


def drop(*names):
    """Undo the imports of `names`: each leaves sys.modules and the package
    the import hung it on. A name that is not loaded is skipped."""
    for name in names:
        if sys.modules.pop(name, None) is not None:
            pkg, _, leaf = name.rpartition(".")
            try:
                delattr(sys.modules[pkg], leaf)
            except (KeyError, AttributeError):
                pass


def drop_package(pkg):
    """`pkg` and every module under it."""
    drop(*[name for name in sys.modules if name == pkg or name.startswith(pkg + ".")])


def make_room(n):
    """Grow sys.modules' table now to hold `n` modules at once. A dict's
    table grows in steps and never shrinks: on this meter from 67 to 97
    slots (1.5 KB on the host) at the ~70th module, which is a token or an
    update loaded beside a REPL session, late in a fragmented heap (a token
    failed with MemoryError there). Grown at boot, the heap still whole, it
    never needs that block again. The keys are str objects, not names."""
    mods = sys.modules
    i = 0
    while len(mods) < n:
        mods["_%d" % i] = None
        i += 1
    while i:
        i -= 1
        del mods["_%d" % i]
