# What the technician's helpers return: lines of text, printed one per line
# (firmware/repl/helpers.py, admin.py, selftest.py share it).


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
