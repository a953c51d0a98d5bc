# The technician's helpers in the REPL's globals (firmware/repl/session.py),
# documented with an example each in docs/tech-console.md. Each global is a
# Helper: its code is loaded from the image for the call and dropped after
# it (views.py for what looks, admin.py for what needs the PIN, selftest.py),
# so an open session keeps only these few objects in the heap. Report (what
# the helpers return) and its text helpers are here too: it stays loaded.
#
# This is not a sandbox: the serial port gives Python, and Python on the
# board reaches everything. The PIN keeps the helpers that change money,
# the relay and the config out of casual hands; the port itself is behind
# the sealed terminal cover.
VIEWS = ("status", "link", "screens", "events", "comms", "topups", "billing", "modem", "at",
         "mem", "selftest", "login", "logout", "token", "help")
PRIVILEGED = ("relay", "adjust", "config", "calibrate", "provision")


def once(path):
    """The module at `path`, loaded for the occasion and not kept."""
    import sys
    __import__(path)
    mod = sys.modules.pop(path)
    try:
        delattr(sys.modules["firmware.repl"], path.rpartition(".")[2])
    except (AttributeError, KeyError):
        pass
    return mod


class Helper:
    """One name in the REPL's globals (its index in NAMES: the one field, so
    that twenty of them stay small)."""

    def __init__(self, i):
        self.i = i

    def __call__(self, *args, **kw):
        i = self.i
        if i < len(VIEWS):
            tools = once("firmware.repl.views").Tools(_session[0])
        else:
            tools = once("firmware.repl.admin").Admin(_session[0])
        return getattr(tools, NAMES[i])(*args, **kw)

    def __repr__(self):
        return "<helper %s(); help() lists them>" % NAMES[self.i]


NAMES = VIEWS + PRIVILEGED
_session = [None]   # the REPL session the helpers serve (one serial port, one session)


def make(app, repl):
    """The REPL's globals: the helpers, and `app` for a look inside."""
    _session[0] = repl
    g = {"__name__": "__main__", "app": app, "Report": Report}
    for i in range(len(NAMES)):
        g[NAMES[i]] = Helper(i)
    g["later"] = repl.later
    g["session"] = repl    # session.stats(): how long the REPL has held the loop
    return g


class Report:
    """Lines of text; printed one per line (repr in the REPL, str in print)."""

    def __init__(self, lines):
        self.lines = lines

    def __repr__(self):
        return "\n".join(self.lines)

    def __str__(self):
        return "\n".join(self.lines)


def known(v):
    return "--" if v is None else str(v)


def text(v):
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)
