"""What events the firmware can send, read from its source (CPython's ast),
and what docs/protocol.md's "Events" section says about them: so a test can
hold the one against the other without a meter having to raise every kind.

    sent = queued_events()        # {kind: [(fields, "firmware/x.py"), ...]}
    rows, common = documented_events()

Every event is queued in one of two ways, and only these (the test checks
that nothing else reaches the outbox):
- `<...>.events.add("kind", {...})`, or `self.add(...)` inside core/events.py's
  `Events`: the fields are the dict's keys; a dict held in a variable is the
  dict it was made as plus the keys set on it before the call, in the same
  block (so the `topup` and `ledger` branches of one dict stay apart);
- `<list>.append({"kind": "...", ...})`: an event sent live, never stored
  (the store-fault state, core/boot.py).
"""
import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _str(n):
    return n.value if isinstance(n, ast.Constant) and isinstance(n.value, str) else None


def _kinds(n):
    """The kind names an `add` call's first argument can be."""
    if _str(n):
        return [_str(n)]
    if isinstance(n, ast.IfExp) and _str(n.body) and _str(n.orelse):
        return [_str(n.body), _str(n.orelse)]
    return []


def _on_events(call, cls):
    r = call.func.value
    if isinstance(r, ast.Attribute):
        return r.attr == "events"
    return isinstance(r, ast.Name) and (r.id == "events" or (r.id == "self" and cls == "Events"))


def _keys(d):
    return {_str(k) for k in d.keys}


def queued_events():
    """{kind: [(set of the kind's fields, file), one per place that sends it]}."""
    out = {}
    for dirpath, _, files in os.walk(os.path.join(ROOT, "firmware")):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                with open(path) as f:
                    tree = ast.parse(f.read(), path)
                _walk(tree, None, None, out, os.path.relpath(path, ROOT))
    return out


def _walk(node, cls, fn, out, where):
    for field in ("body", "orelse", "finalbody"):
        stmts = getattr(node, field, None)
        if isinstance(stmts, list):
            for i, s in enumerate(stmts):
                if isinstance(s, ast.stmt):
                    _statement(s, stmts[:i], cls, fn, out, where)
    for child in ast.iter_child_nodes(node):
        _walk(child, child.name if isinstance(child, ast.ClassDef) else cls,
              child if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else fn, out, where)


def _statement(s, before, cls, fn, out, where):
    call = s.value if isinstance(s, (ast.Expr, ast.Assign)) else None
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Attribute):
        return
    if call.func.attr == "append" and call.args and isinstance(call.args[0], ast.Dict):
        d = call.args[0]
        fields = _keys(d)
        if "kind" in fields:
            kind = _str(d.values[[_str(k) for k in d.keys].index("kind")])
            out.setdefault(kind, []).append((fields - {"kind"}, where))
        return
    if call.func.attr != "add" or len(call.args) < 2 or not _on_events(call, cls):
        return
    arg = call.args[1]
    if isinstance(arg, ast.Dict):
        fields = _keys(arg)
    elif isinstance(arg, ast.Name):
        fields = set()
        for n in ast.walk(fn):
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Dict) and any(
                    isinstance(t, ast.Name) and t.id == arg.id for t in n.targets):
                fields |= _keys(n.value)
        for b in before:
            for t in getattr(b, "targets", ()):
                if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id == arg.id:
                    fields.add(_str(t.slice))
    else:
        raise AssertionError("%s:%d: an event whose fields this reader cannot see" % (where, s.lineno))
    for kind in _kinds(call.args[0]):
        out.setdefault(kind, []).append((fields, where))


def _placeholder(n):
    """A reason as the source makes it, with `<>` for what is filled in:
    "payment", "t%d/p%d" % ... -> "t<>/p<>", "tech: " + why -> "tech: <>"."""
    if _str(n) is not None:
        return n.value.replace("%d", "<>").replace("%s", "<>")
    if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mod):
        return _placeholder(n.left)
    if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add) and _str(n.left) is not None:
        return n.left.value + "<>"
    return None


def ledger_entries():
    """{entry: set of reasons} the firmware's ledger can post: the entry
    kinds are credit/ledger.py's constants; the reasons those given to
    `post(KIND, ref, amount, reason, ...)`, to the engine's `adjust(ref,
    amount, reason)` and the charge entry's own."""
    with open(os.path.join(ROOT, "firmware", "credit", "ledger.py")) as f:
        consts = dict(re.findall(r'^([A-Z]+) = "([a-z_]+)"$', f.read(), re.M))
    out = {v: set() for v in consts.values()}
    for dirpath, _, files in os.walk(os.path.join(ROOT, "firmware")):
        for name in files:
            if not name.endswith(".py"):
                continue
            with open(os.path.join(dirpath, name)) as f:
                tree = ast.parse(f.read())
            for n in ast.walk(tree):
                args = getattr(n, "args", None) if isinstance(n, ast.Call) else None
                if args and isinstance(n.func, ast.Attribute) and n.func.attr == "post" and len(args) >= 4 \
                        and isinstance(args[0], ast.Name) and args[0].id in consts:
                    kind, reason = consts[args[0].id], args[3]
                elif args and isinstance(n.func, ast.Attribute) and n.func.attr == "adjust" and len(args) == 3:
                    kind, reason = "adjust", args[2]
                elif isinstance(n, ast.Tuple) and len(n.elts) == 8 and _str(n.elts[0]) == "entry" \
                        and isinstance(n.elts[2], ast.Name) and n.elts[2].id in consts:
                    kind, reason = consts[n.elts[2].id], n.elts[6]   # the entry tuple itself (ledger.py)
                else:
                    continue
                r = _placeholder(reason)
                if r is not None:
                    out[kind].add(r)
    return out


def envelope_fields():
    """(fields every stored event gets, fields every live one gets), besides
    its own: Outbox.add's body dict, and the keywords Delivery.pump adds to a
    live event (with its `kind`); `mac` is the signature both get."""
    with open(os.path.join(ROOT, "firmware", "link", "outbox.py")) as f:
        add = f.read().split("    def add(", 1)[1].split("\n    def ", 1)[0]
    stored = set(re.findall(r'"([a-z_]+)": ', re.search(r"body = \{(.*?)\}", add).group(1)))
    with open(os.path.join(ROOT, "firmware", "link", "delivery.py")) as f:
        live = set(re.findall(r"\b([a-z_]+)=", re.search(r"dict\(live\[0\], (.*?)\)\n", f.read()).group(1)))
    return stored | {"mac"}, live | {"kind", "mac"}


def _unparen(s):
    while True:
        t = re.sub(r"\([^()]*\)", "", s)
        if t == s:
            return s
        s = t


def events_section():
    with open(os.path.join(ROOT, "docs", "protocol.md"), encoding="utf-8") as f:
        return f.read().split("\n## Events\n", 1)[1].split("\n## ", 1)[0]


def documented_events():
    """({kind: (class, set of fields)} from the events table, the fields the
    section says every event has).

    A row's fields are read from its fields cell as a reader would: leave out
    what is in parentheses (values, notes), split at `,` and `;`, and the
    first backticked name of each piece is a field (what follows it, like
    the `topup` of "`entry` `topup`", is its value)."""
    sec = events_section()
    table = sec.split("\n| kind | class | fields |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        fields = set()
        for piece in re.split(r"[,;]", _unparen(cells[2])):
            m = re.search(r"`([a-z_0-9]+)`", piece)
            if m:
                fields.add(m.group(1))
        for kind in re.findall(r"`([a-z_]+)`", cells[0]):
            rows[kind] = (cells[1], fields)
    said = re.search(r"Fields: (.*?), the kind's fields, (.*?)\.", sec, re.S)
    common = set(re.findall(r"`([a-z_]+)`", _unparen(said.group(1) + said.group(2))))
    return rows, common


def documented_ledger_entries():
    """{entry: {column: cell}} from the `ledger` entries table."""
    sec = events_section()
    table = sec.split("\n| `entry` |", 1)[1].split("\n\n", 1)[0]
    head = ["entry"] + [re.sub(r"`", "", c).strip() for c in table.split("\n", 1)[0].strip().strip("|").split("|")]
    out = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        out[re.search(r"`([a-z_]+)`", cells[0]).group(1)] = dict(zip(head, cells))
    return out
