"""tools/heap_census.py names what the heap holds (docs/benchmarks.md,
"Where the heap goes"): its figures must add up to the heap in use and name
most of it, or the breakdown the memory budget is argued from is wrong."""
import heap_census


def test_the_census_adds_up_to_the_heap_in_use_and_names_most_of_it(broker, sim_meters, tmp_path):
    m = sim_meters("hc1", broker.port, config={"initial_balance_minor": 500}).start()
    m.control({"cmd": "load", "w": 1500})
    m.wait_for(lambda s: s["meter"]["link_up"] and s["meter"]["import_wh"] > 0, timeout=30)
    mem = m.mem()
    pools = m.qstr_pools()
    kinds = heap_census.census(m, str(tmp_path))
    total = sum(size for _, size in kinds.values())
    used = mem["total"] - mem["free"]
    # the census is taken with the REPL session open (about 10 KB more)
    assert used <= total <= used + 16384, (used, total, kinds)
    assert kinds["qstr pool"][0] == pools["n_pool"]
    assert kinds["function"][0] > 300 and kinds["class"][0] > 30 and kinds["module"][0] > 40
    assert kinds["name-keyed table"][1] > 10000
    # what it cannot name stays a minority
    assert kinds.get("other", (0, 0))[1] < total // 4, kinds


def test_the_block_map_is_read_as_the_interpreter_prints_it():
    lines = ["GC memory layout; from 7f0000001000:",
             "00000000: MDh=hhL==.Sh",
             "       (2 lines all free)",
             "00001800: h==.B"]
    base, heads = heap_census.block_map(lines)
    assert base == 0x7f0000001000
    assert heads == [(0, 1), (32, 1), (64, 2), (128, 1), (160, 1), (192, 3), (320, 1), (352, 1),
                     (0x1800, 3), (0x1800 + 4 * 32, 1)]
