"""What the sim meter's heap holds, by kind of object (docs/benchmarks.md,
"Where the heap goes"): every block of micropython.mem_info(1)'s map is named
by its first word (the type of an object, or the form of a name pool or a
name-keyed table), inside the meter, through the technician's REPL
(tools/heap_census_probe.py). The REPL's own code is then in the heap too,
and is counted with the rest.

Run: .venv/bin/python tools/heap_census.py   (a host-network meter at 108wk)
"""
import os
import re
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from broker import Broker                       # noqa: E402
from simmeter import SimMeter, ensure_compiled  # noqa: E402

BLOCK = 32        # bytes per GC block on the 64-bit host (4 words)
ROM_BLOCKS = 1000  # a run this long is the ROMFS image the sim holds in the heap (not the board's)


def block_map(lines):
    """(base address, [(offset, blocks)] of each allocation) from
    mem_info(1)'s printed map: one character a block ('.' free, '=' the
    tail of the allocation before it, any other its head), each line led
    by the byte offset of its first block; runs of free lines are elided."""
    base, heads = None, []
    run = None   # [offset, blocks] of the allocation being read
    for line in lines:
        m = re.match(r"^GC memory layout; from ([0-9a-f]+):", line)
        if m:
            base = int(m.group(1), 16)
            continue
        m = re.match(r"^([0-9a-f]{8}): (.*)$", line)
        if not m:
            continue
        at = int(m.group(1), 16)
        for i, c in enumerate(m.group(2)):
            if c == "=" and run is not None:
                run[1] += 1
                continue
            if run is not None:
                heads.append(tuple(run))
            run = [at + i * BLOCK, 1] if c != "." else None
    if run is not None:
        heads.append(tuple(run))
    return base, heads


def census(meter, work):
    """{kind: (allocations, bytes)} of the meter's heap, the ROMFS image left out."""
    meter.console("1")   # the REPL session first: its code is in the map then
    start = len(meter.log_lines)
    meter.control({"cmd": "mem_map"})
    # the map reaches the log through a reader thread: read it once it has
    # stopped growing
    deadline, seen = time.monotonic() + 10, -1
    while time.monotonic() < deadline and len(meter.log_lines) != seen:
        seen = len(meter.log_lines)
        time.sleep(0.3)
    base, heads = block_map(meter.log_lines[start:])
    path = os.path.join(work, "heads.bin")
    with open(path, "wb") as f:
        for off, n in heads:
            if n < ROM_BLOCKS:
                f.write(struct.pack("<IH", off, n))
    with open(os.path.join(HERE, "heap_census_probe.py")) as f:
        probe = f.read()
    meter.console(probe.replace("\r", ""), timeout=30)
    out = {}
    for line in meter.console("_census(%d, %r)" % (base, path), timeout=60):
        if line.startswith("census "):
            name, count, size = line[7:].split("|")
            out[name] = (int(count), int(size))
    meter.console("del _census")
    return out


def main():
    ensure_compiled()
    with tempfile.TemporaryDirectory(prefix="census-") as work:
        broker = Broker(os.path.join(work, "broker")).start()
        m = SimMeter("census", work, broker_port=broker.port, config={"initial_balance_minor": 500})
        try:
            m.start()
            m.control({"cmd": "load", "w": 1500})
            m.wait_for(lambda s: s["meter"]["link_up"] and s["meter"]["import_wh"] > 0, timeout=30)
            time.sleep(2)
            mem = m.mem()
            kinds = census(m, work)
        finally:
            m.stop()
            broker.stop()
    total = sum(b for _, b in kinds.values())
    print("heap %d B, %d B in use (the ROMFS image left out)" % (mem["total"], total))
    for name, (count, size) in sorted(kinds.items(), key=lambda kv: -kv[1][1]):
        print("%-24s %5d %8d B %5.1f %%" % (name, count, size, 100.0 * size / total))


if __name__ == "__main__":
    main()
