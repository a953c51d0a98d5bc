# Run inside a sim meter by tools/heap_census.py, at the technician's REPL
# (exec of this file's text): names the kind of every heap block listed in
# HEADS (offset and length in 32-byte blocks, from micropython.mem_info(1)'s
# map, at BASE) by the first word of the block, and prints one line per
# kind: "census <kind> <blocks> <bytes>". MicroPython, not CPython. It
# allocates little (a dict of kinds), so that it fits the meter's heap.
def _census(base, heads):
    import struct
    import sys
    import select
    import uctypes
    kinds = {}

    def kind(t, name):
        kinds[id(t)] = name
    for t, name in ((dict, "dict"), (list, "list"), (tuple, "tuple"), (str, "str"), (bytes, "bytes"),
                    (bytearray, "bytearray"), (type, "class"), (type(sys), "module"),
                    (type(_census), "function"), (float, "float"), (int, "big int"),
                    (memoryview, "memoryview"), (set, "set")):
        kind(t, name)

    def gen():
        yield 1
    kind(type(gen()), "generator or coroutine")
    kind(type(gen), "generator function")

    def outer():
        x = 1

        def inner():
            return x
        return inner
    kind(type(outer()), "closure")
    kind(type(kinds.get), "bound method")
    for mod in ("framebuf", "vfs", "array", "select", "socket", "io", "collections", "ssl", "_asyncio"):
        try:
            m = __import__(mod)
        except ImportError:
            continue
        for v in m.__dict__.values():
            if type(v) is type:
                kinds[id(v)] = "built-in object"
    kind(type(select.poll()), "built-in object")
    for m in list(sys.modules.values()):
        for v in m.__dict__.values():
            if type(v) is type and id(v) not in kinds:
                kinds[id(v)] = "instance"
    word = bytearray(32)
    seen = {}
    f = open(heads, "rb")
    rec = bytearray(6)
    while f.readinto(rec) == 6:
        off, n = struct.unpack("<IH", rec)
        w = uctypes.bytearray_at(base + off, 32)
        word[:] = w
        first, prev_len, alloc, used = struct.unpack_from("<QQQQ", word)
        name = kinds.get(first)
        if name is None:
            if first and 0 < used <= alloc and 48 + alloc * 9 <= n * 32 <= 48 + alloc * 12 + 32:
                # prev, total_prev_len, alloc, len, then per name a pointer,
                # a hash and a length: the block is just that big
                name = "qstr pool"
            elif first & 0xFFFF == 0 and 0 < (first >> 16) & 0xFF < 8 and (first >> 24) & 0xFF < 2:
                name = "raw code"          # a function's descriptor: kind, is_generator
            elif first & 7 == 2:
                name = "name-keyed table"  # a map's first key is an interned name
            elif first == 0:
                name = "zeroed"
            else:
                name = "other"
        c = seen.get(name)
        if c is None:
            c = seen[name] = [0, 0]
        c[0] += 1
        c[1] += n * 32
    f.close()
    for name in seen:
        print("census %s|%d|%d" % (name, seen[name][0], seen[name][1]))
