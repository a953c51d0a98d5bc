"""`make bench`: run every tools/bench_*.py, print one table, write build/bench.json.

Each bench module exposes `run() -> dict` of figures and may expose
`TARGETS = {key: (op, value)}` with op one of "<=", ">=", "==". Figures are
for comparison within one run on a shared machine, never timed assertions.
"""
import glob
import importlib.util
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "build", "bench.json")
OPS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "==": lambda a, b: a == b}


def load(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(selected=()):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    results, targets = {}, {}
    if selected and os.path.exists(OUT):  # a partial run updates the last full one
        with open(OUT) as f:
            results = json.load(f)
    for path in sorted(glob.glob(os.path.join(ROOT, "tools", "bench_*.py"))):
        name = os.path.basename(path)[6:-3]
        if selected and name not in selected:
            continue
        mod = load(path)
        t0 = time.time()
        print("bench %-12s ..." % name, flush=True)
        results.update(mod.run())
        targets.update(getattr(mod, "TARGETS", {}))
        print("bench %-12s done in %.1f s" % (name, time.time() - t0), flush=True)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    print()
    print("%-34s %16s %10s  %s" % ("key", "value", "target", "ok"))
    print("-" * 70)
    failed = 0
    for key in sorted(results):
        value = results[key]
        op_value = targets.get(key)
        target, ok = "", ""
        if op_value:
            op, want = op_value
            target = "%s %s" % (op, want)
            ok = "yes" if OPS[op](value, want) else "NO"
            failed += ok == "NO"
        shown = ("%.4g" % value) if isinstance(value, float) else str(value)
        print("%-34s %16s %10s  %s" % (key, shown, target, ok))
    print("\nwrote", os.path.relpath(OUT, ROOT))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import children
    # Ctrl-C, `kill` and a closed terminal all unwind through the benches'
    # `finally`s; what they miss, children's atexit hook kills
    children.exit_on_signals()
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        children.kill_all()
        print("\nbench: interrupted; brokers and meters stopped", file=sys.stderr)
        sys.exit(130)
