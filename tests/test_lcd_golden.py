"""The LCD as the customer sees it, pixel for pixel: every scenario of
tools/screen_scenarios.py, run on sim meters, draws exactly its golden frame
(tests/golden/<name>.png, 128x64, one bit a pixel).

A frame that differs fails with the scenario's name and the pictures to look
at: build/golden/<name>.actual.png and build/golden/<name>.diff.png (red: on
only now, blue: on only in the golden). When the change is meant, `make
golden` writes the new goldens and the docs' pictures (docs/screens/).
"""
import os
import random

import pytest

import lcd_png
import screen_scenarios
import screenshots

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAIL_DIR = os.path.join(ROOT, "build", "golden")
NAMES = [s["name"] for s in screen_scenarios.SCENARIOS]


def _random_frame(seed):
    rnd = random.Random(seed)
    return bytes(rnd.randrange(256) for _ in range(lcd_png.FRAME_BYTES))


def test_a_frame_reads_as_pixels_in_the_controllers_page_layout():
    frame = bytearray(lcd_png.FRAME_BYTES)
    frame[0] = 0x01            # page 0, column 0, top bit: pixel (0, 0)
    frame[127] = 0x80          # page 0, column 127, bottom bit: pixel (127, 7)
    frame[7 * 128 + 5] = 0x40  # page 7, column 5, bit 6: pixel (5, 62)
    bits = lcd_png.frame_bits(frame.hex())
    on = {(x, y) for y in range(64) for x in range(128) if bits[y][x]}
    assert on == {(0, 0), (127, 7), (5, 62)}
    with pytest.raises(ValueError):
        lcd_png.frame_bits(b"\x00" * 1000)


def test_the_picture_the_terminal_and_the_golden_show_every_pixel_of_the_frame(tmp_path):
    for seed in range(3):
        frame = _random_frame(seed)
        bits = lcd_png.frame_bits(frame)
        assert lcd_png.bits_to_frame(bits) == frame
        png = str(tmp_path / "f.png")
        lcd_png.write_png(frame, png)
        assert lcd_png.png_bits(png) == bits
        golden = str(tmp_path / "g.png")
        screenshots.write_golden(frame, golden)
        assert screenshots.read_golden(golden) == bits
        rows = lcd_png.half_block_rows(frame)
        assert len(rows) == 32 and {len(r) for r in rows} == {128}
        assert lcd_png.half_block_decode(rows) == bits
        cells = lcd_png.braille_rows(frame)
        assert len(cells) == 16 and {len(r) for r in cells} == {64}
        assert lcd_png.braille_decode(cells) == bits


def test_the_same_frame_always_writes_the_same_file(tmp_path):
    frame = _random_frame(7)
    lcd_png.write_png(frame, str(tmp_path / "a.png"))
    lcd_png.write_png(frame, str(tmp_path / "b.png"))
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_every_scenario_has_a_golden_and_a_picture_and_nothing_is_left_over():
    assert len(NAMES) >= 16 and len(set(NAMES)) == len(NAMES)
    for folder, what in ((screenshots.GOLDEN_DIR, "make golden"), (screenshots.DOCS_DIR, "make screenshots")):
        have = sorted(f[:-4] for f in os.listdir(folder) if f.endswith(".png"))
        assert have == sorted(NAMES), "%s is out of date with tools/screen_scenarios.py: run `%s`" % (
            os.path.relpath(folder, ROOT), what)
    for name in NAMES:   # the docs show the frames the goldens hold
        assert lcd_png.png_bits(os.path.join(screenshots.DOCS_DIR, name + ".png")) == screenshots.read_golden(
            screenshots.golden_path(name)), "docs/screens/%s.png is not its golden: run `make golden`" % name


def test_every_screen_and_state_draws_its_golden_frame_bit_for_bit(tmp_path):
    frames = screenshots.capture(workdir=str(tmp_path))
    assert list(frames) == NAMES
    os.makedirs(FAIL_DIR, exist_ok=True)
    failed = []
    for name, frame in frames.items():
        got = lcd_png.frame_bits(frame)
        assert any(any(row) for row in got), "%s: a blank screen" % name
        path = screenshots.golden_path(name)
        if not os.path.exists(path):
            failed.append("%s: no golden %s" % (name, os.path.relpath(path, ROOT)))
            continue
        want = screenshots.read_golden(path)
        if got != want:
            n = sum(got[y][x] != want[y][x] for y in range(64) for x in range(128))
            actual = os.path.join(FAIL_DIR, name + ".actual.png")
            diff = os.path.join(FAIL_DIR, name + ".diff.png")
            lcd_png.write_png(frame, actual)
            lcd_png.diff_image(want, got).save(diff)
            failed.append("%s: %d pixels differ; see %s and %s" % (name, n, os.path.relpath(actual, ROOT),
                                                                  os.path.relpath(diff, ROOT)))
    assert not failed, ("frames differ from their goldens (`make golden` if the change is meant):\n"
                        + "\n".join(failed))
