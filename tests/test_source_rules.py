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
    """{module: firmware modules it imports, at the top or inside a function}.
    A module loaded for the occasion (firmware/transient.py's once()) may
    import its loader: the loader is in memory already, and the two load
    and test in that order."""
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
    assert "firmware.ota.agent" in graph["firmware.app"]   # the walk sees lazy imports
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


# Names a simulated world is read by, whichever board class defines them: the
# sim's supply and load (issue 12: the core once took volts and watts from the
# sim's measured(), which no real board has).
_SIM_WORLD = {"volts", "watts", "load_w", "measured"}


def _public_members(rel, cls):
    """The public surface of a board class: its methods and class attributes,
    and the attributes its methods set on self (not their local names)."""
    for node in _tree(rel).body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            names = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(item.name)
                    for n in ast.walk(item):
                        targets = n.targets if isinstance(n, ast.Assign) else (
                            [n.target] if isinstance(n, (ast.AugAssign, ast.AnnAssign)) else [])
                        names.update(t.attr for t in targets if isinstance(t, ast.Attribute)
                                     and isinstance(t.value, ast.Name) and t.value.id == "self")
                elif isinstance(item, ast.Assign):
                    names.update(t.id for t in item.targets if isinstance(t, ast.Name))
            return {n for n in names if not n.startswith("_")}
    raise AssertionError(cls)


def _sim_only_names():
    sim = _public_members(os.path.join("firmware", "boards", "sim.py"), "SimBoard")
    esp32 = _public_members(os.path.join("firmware", "boards", "esp32.py"), "Esp32Board")
    return (sim - esp32) | _SIM_WORLD


def _board_reads(tree):
    """(line, member) of every member read from a board in a module: on
    `board`, on any `.board` (self.board, app.board), on a local bound to
    one (`b = self.board`), and by name through hasattr/getattr."""
    def is_board(e, aliases):
        return ((isinstance(e, ast.Name) and e.id in aliases)
                or (isinstance(e, ast.Attribute) and e.attr == "board"))
    reads = set()
    scopes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for scope in scopes:
        aliases = {"board"}
        for n in ast.walk(scope):
            if isinstance(n, ast.Assign) and is_board(n.value, aliases):
                aliases.update(t.id for t in n.targets if isinstance(t, ast.Name))
        for n in ast.walk(scope):
            if isinstance(n, ast.Attribute) and is_board(n.value, aliases):
                reads.add((n.lineno, n.attr))
            elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                  and n.func.id in ("hasattr", "getattr") and len(n.args) >= 2
                  and isinstance(n.args[1], ast.Constant) and isinstance(n.args[1].value, str)):
                reads.add((n.lineno, n.args[1].value))
    return reads


def _sim_imports(tree):
    """Lines that import a sim board module, by statement or by name (a lazy
    import through a helper takes the module's name as a string)."""
    def sim(mod):
        return mod.startswith("firmware.boards.sim")
    lines = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            lines += [(n.lineno, a.name) for a in n.names if sim(a.name)]
        elif isinstance(n, ast.ImportFrom) and n.module:
            lines += [(n.lineno, n.module + "." + a.name) for a in n.names
                      if sim(n.module) or sim(n.module + "." + a.name)]
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and sim(n.value):
            lines.append((n.lineno, n.value))
    return lines


def test_no_module_outside_the_boards_reads_a_sim_only_board_member_or_imports_the_sim():
    # "No sim-only branches in the core" (issue 12): the core sees the sim only
    # through what an ESP32 board also offers, so what runs on the sim is what
    # runs on the board. A sim-only member is one SimBoard has and Esp32Board
    # lacks (its test controls: set_load, advance, snapshot...), or a name of
    # the simulated world; ESP32-only members (modem_ppp) are the core's to
    # probe for.
    forbidden = _sim_only_names()
    assert {"set_load", "inject_pulses", "snapshot", "advance", "volts", "load_w"} <= forbidden
    assert not forbidden & {"pulse_count", "cf1_count", "relay_set", "mono_ms", "name"}
    bad, seen = [], set()
    for rel in _sources():
        if not rel.startswith("firmware") or rel.startswith(os.path.join("firmware", "boards")):
            continue
        tree = _tree(rel)
        reads = _board_reads(tree)
        seen.update(name for _, name in reads)
        bad += ["%s:%d reads board.%s" % (rel, line, name) for line, name in sorted(reads)
                if name in forbidden]
        bad += ["%s:%d imports %s" % (rel, line, mod) for line, mod in _sim_imports(tree)]
        # the simulated world's names are the sim's whatever object holds them
        bad += ["%s:%d reads .%s" % (rel, n.lineno, n.attr) for n in ast.walk(tree)
                if isinstance(n, ast.Attribute) and n.attr in _SIM_WORLD]
    # the scan sees the core's real board reads, so an empty answer means something
    assert {"pulse_count", "cf1_count", "relay_set", "lcd_show", "mono_ms", "adc_capture"} <= seen
    assert bad == []
    # and it sees the forms a sim-only read takes
    probe = ast.parse("import firmware.boards.sim\n"
                      "def f(app, core):\n"
                      "    b = app.board\n"
                      "    v = b.volts + core.board.load_w\n"
                      "    if hasattr(board, 'measured'):\n"
                      "        once('firmware.boards.sim_adc')\n")
    assert sorted(name for _, name in _board_reads(probe)) == ["load_w", "measured", "volts"]
    assert [line for line, _ in _sim_imports(probe)] == [1, 6]
