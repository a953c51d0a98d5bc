"""Rules about the firmware's source text that no behaviour test would catch.

They read the tree (firmware/ and our own lib/ drivers) with CPython's ast,
so a rule broken in a file no test imports still fails here."""
import ast
import os

from mpy import ROOT

# lib/umqtt is third-party and git-ignored (installed, not ours)
_THIRD_PARTY = (os.path.join("lib", "umqtt"),)


def _sources():
    for top in ("firmware", "lib"):
        for d, _, names in os.walk(os.path.join(ROOT, top)):
            rel = os.path.relpath(d, ROOT)
            if rel.startswith(_THIRD_PARTY):
                continue
            for n in sorted(names):
                if n.endswith(".py"):
                    yield os.path.join(rel, n)


def _tree(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return ast.parse(f.read(), rel)


def test_every_module_that_calls_const_imports_it_from_micropython():
    # const() is a builtin only to the compiler in some modes; a module that
    # leans on that fails to import wherever it is not (CPython shims, a port
    # built without it).
    missing = []
    for rel in _sources():
        tree = _tree(rel)
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Name) and n.func.id == "const"]
        imported = any(isinstance(n, ast.ImportFrom) and n.module == "micropython"
                       and any(a.name == "const" and a.asname is None for a in n.names)
                       for n in tree.body)
        if calls and not imported:
            missing.append(rel)
    assert missing == []


def test_the_tree_is_scanned():
    # the rules above mean nothing if the walk found nothing
    found = set(_sources())
    assert {os.path.join("firmware", "localtime.py"), os.path.join("lib", "atmodem.py")} <= found
    assert not any(p.startswith(_THIRD_PARTY) for p in found)


def test_lib_drivers_import_nothing_from_firmware():
    # lib/ holds reusable drivers: they must run without this firmware
    bad = []
    for rel in _sources():
        if not rel.startswith("lib"):
            continue
        for n in ast.walk(_tree(rel)):
            names = ([a.name for a in n.names] if isinstance(n, ast.Import)
                     else [n.module or ""] if isinstance(n, ast.ImportFrom) else [])
            bad += [(rel, m) for m in names if m.split(".")[0] == "firmware"]
    assert bad == []


def test_calendar_maths_has_one_source_in_the_firmware():
    # 719468 days from 0000-03-01 to 1970-01-01: the constant every
    # days <-> civil date conversion needs. firmware/localtime.py owns it;
    # lib/atmodem.py keeps its own small +CCLK parser (lib/ stays free of
    # firmware/).
    holders = []
    for rel in _sources():
        for n in ast.walk(_tree(rel)):
            if isinstance(n, ast.Constant) and n.value == 719468:
                holders.append(rel)
                break
    assert sorted(holders) == [os.path.join("firmware", "localtime.py"),
                               os.path.join("lib", "atmodem.py")]


def _firmware_imports():
    """{module: firmware modules it imports, at the top or inside a function}."""
    mods = {}
    for rel in _sources():
        if rel.startswith("firmware"):
            name = rel[:-3].replace(os.sep, ".")
            mods[name[:-9] if name.endswith(".__init__") else name] = rel
    graph = {}
    for name, rel in mods.items():
        deps = set()
        for n in ast.walk(_tree(rel)):
            if isinstance(n, ast.Import):
                deps.update(a.name for a in n.names)
            elif isinstance(n, ast.ImportFrom) and n.module:
                deps.add(n.module)
                deps.update(n.module + "." + a.name for a in n.names)
        graph[name] = sorted(d for d in deps if d in mods and d not in (name, "firmware"))
    return graph


def test_no_firmware_module_imports_itself_back_through_another():
    # a cycle (store.py <-> store/build.py was one) means two modules that
    # cannot be read, loaded or tested apart
    graph = _firmware_imports()
    assert "firmware.store.build" in graph["firmware.store.store"]   # the walk sees lazy imports
    cycles = []

    def walk(node, path):
        for nxt in graph[node]:
            if nxt == path[0]:
                cycles.append(path + [nxt])
            elif nxt not in path and nxt > path[0]:   # each cycle once, from its smallest name
                walk(nxt, path + [nxt])

    for start in graph:
        walk(start, [start])
    assert cycles == []


def _members(rel, cls):
    """Names a board class defines: methods and class attributes, and the
    attributes its methods set on self."""
    for node in _tree(rel).body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            names = set()
            for n in ast.walk(node):
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(n.name)
                elif isinstance(n, ast.Assign):
                    for t in n.targets:
                        if isinstance(t, ast.Name):
                            names.add(t.id)
                        elif (isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                              and t.value.id == "self"):
                            names.add(t.attr)
            return names
    raise AssertionError(cls)


def test_every_member_of_the_documented_board_boundary_exists_on_the_boards():
    import re
    with open(os.path.join(ROOT, "docs", "architecture.md")) as f:
        text = f.read()
    table = text[text.index("## The board boundary"):]
    table = table[table.index("| member |"):]
    table = table[:table.index("\n\n")]
    esp32 = _members(os.path.join("firmware", "boards", "esp32.py"), "Esp32Board")
    sim = _members(os.path.join("firmware", "boards", "sim.py"), "SimBoard")
    missing = []
    rows = table.splitlines()[2:]
    for row in rows:
        first, meaning = row.split("|")[1:3]
        for name in re.findall(r"`(\w+)", first):
            boards = [("esp32", esp32)] + ([] if "ESP32 only" in meaning else [("sim", sim)])
            missing += [(b, name) for b, have in boards if name not in have]
    assert len(rows) > 20 and missing == []
