"""The LCD bench's render half (tools/bench_display.py) on the firmware
from its ROMFS image: it renders every screen, and its allocation and
heap-lock figures agree with each other."""
import bench_display

# a meter snapshot as the app makes it (docs/simulator.md, `meter` fields)
SNAP = {"meter_id": "bench-lcd", "balance_minor": 1234, "owed_minor": 0, "import_wh": 4567, "today_wh": 890,
        "relay_closed": True, "relay_reason": "topup", "warning": 0, "load_w": 1000, "voltage_v": 230, "seq": 7,
        "tariff_version": 1, "price_milli_per_kwh": 150000, "mode": "prepaid", "decimals": 2, "currency": "EUR",
        "clock_synced": True, "link_up": True, "fault": None, "error_code": 0}
CUT = dict(SNAP, balance_minor=-5, relay_closed=False, relay_reason="credit", warning=2, link_up=False)


def test_every_screen_is_rendered_timed_and_its_allocations_counted():
    r = bench_display.render_figures([SNAP, CUT])
    assert r["screen_render_screens"] >= 4
    assert 0 < r["screen_render_ms_p50"] <= r["screen_render_ms_p99"]
    assert 0 <= r["lcd_alloc_bytes_per_frame"] <= r["lcd_alloc_bytes_max_frame"]
    # a path that allocates nothing cannot fail under the heap lock, and one
    # that fails under it allocated
    assert r["lcd_heap_locked_frames_ok"] in (0, 1)
    if r["lcd_alloc_bytes_max_frame"] == 0:
        assert r["lcd_heap_locked_frames_ok"] == 1
    if r["lcd_heap_locked_frames_ok"] == 0:
        assert r["lcd_alloc_bytes_max_frame"] > 0


def test_percentiles_are_taken_from_the_sorted_samples():
    assert bench_display.pct([5, 1, 3, 2, 4], 50) == 3
    assert bench_display.pct(list(range(100)), 99) == 99
    assert bench_display.pct([7], 99) == 7
