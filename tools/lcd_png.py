"""The meter's LCD frame as pictures: PNG files, a 2-D bit array, terminal text.

The frame is what the firmware hands the board (firmware/ui/render.py, the
sim's `{"cmd": "lcd_frame"}`): 128x64 pixels, MONO_VLSB, the ST7565/UC1701
page layout. Byte `page * 128 + x` holds the column x of the 8-pixel band
`page` (rows page*8 .. page*8+7), least significant bit at the top.

    bits = lcd_png.frame_bits(hex_or_bytes)      # 64 rows of 128 ints 0/1
    lcd_png.write_png(hex_or_bytes, "home.png")  # x4, LCD colours, thin border
    rich_console.print(lcd_png.half_blocks(hex_or_bytes))   # 128 cols x 32 rows
"""
from PIL import Image

WIDTH, HEIGHT = 128, 64
FRAME_BYTES = WIDTH * HEIGHT // 8
# A reflective STN panel: dark blue-grey segments on a yellow-green glass,
# a darker bezel round it.
PIXEL_ON = (28, 40, 38)
PIXEL_OFF = (158, 186, 100)
BEZEL = (60, 72, 52)
SCALE = 4
BORDER = 6   # the bezel round the glass, in pixels of the picture


def frame_bytes(frame):
    """The frame as 1024 bytes, from the sim's hex text or from bytes."""
    if isinstance(frame, str):
        frame = bytes.fromhex(frame)
    frame = bytes(frame)
    if len(frame) != FRAME_BYTES:
        raise ValueError("an LCD frame is %d bytes (128x64 MONO_VLSB), not %d" % (FRAME_BYTES, len(frame)))
    return frame


def frame_bits(frame):
    """The frame as rows of pixels: bits[y][x] is 1 where the pixel is on."""
    buf = frame_bytes(frame)
    return [[(buf[(y >> 3) * WIDTH + x] >> (y & 7)) & 1 for x in range(WIDTH)] for y in range(HEIGHT)]


def bits_to_frame(bits):
    """The inverse of frame_bits: rows of 0/1 back to the 1024 MONO_VLSB bytes."""
    buf = bytearray(FRAME_BYTES)
    for y, row in enumerate(bits):
        for x, on in enumerate(row):
            if on:
                buf[(y >> 3) * WIDTH + x] |= 1 << (y & 7)
    return bytes(buf)


def image(frame, scale=SCALE, border=BORDER, on=PIXEL_ON, off=PIXEL_OFF, bezel=BEZEL):
    """A Pillow RGB image of the frame: each pixel a scale x scale square,
    with a `border`-pixel bezel round the glass."""
    img = Image.new("1", (WIDTH, HEIGHT))
    img.putdata([v for row in frame_bits(frame) for v in row])
    glass = Image.new("RGB", (WIDTH, HEIGHT), off)
    glass.paste(on, mask=img)
    glass = glass.resize((WIDTH * scale, HEIGHT * scale), Image.NEAREST)
    out = Image.new("RGB", (WIDTH * scale + 2 * border, HEIGHT * scale + 2 * border), bezel)
    out.paste(glass, (border, border))
    return out


def write_png(frame, path, **kw):
    """Write the frame as a PNG. No time stamp or other metadata goes in, so
    the same frame always gives the same file (docs/screens/ stays put in git)."""
    image(frame, **kw).save(path, format="PNG", optimize=True)


def png_bits(path, scale=SCALE, border=BORDER):
    """Read a PNG written by write_png back into rows of 0/1 (pixel centres)."""
    img = Image.open(path).convert("RGB")
    want = (WIDTH * scale + 2 * border, HEIGHT * scale + 2 * border)
    if img.size != want:
        raise ValueError("%s is %dx%d, not an LCD picture of %dx%d" % ((path,) + img.size + want))
    px = img.load()
    half = scale // 2
    mid = sum(PIXEL_ON[i] + PIXEL_OFF[i] for i in range(3)) / 2
    return [[1 if sum(px[border + x * scale + half, border + y * scale + half]) < mid else 0
             for x in range(WIDTH)] for y in range(HEIGHT)]


def diff_image(want_bits, got_bits, scale=SCALE):
    """Where two frames differ: red = on only in `got`, blue = on only in
    `want`, dim grey = on in both."""
    img = Image.new("RGB", (WIDTH, HEIGHT), (255, 255, 255))
    px = img.load()
    for y in range(HEIGHT):
        for x in range(WIDTH):
            w, g = want_bits[y][x], got_bits[y][x]
            if w and g:
                px[x, y] = (170, 170, 170)
            elif g:
                px[x, y] = (220, 0, 0)
            elif w:
                px[x, y] = (0, 60, 220)
    return img.resize((WIDTH * scale, HEIGHT * scale), Image.NEAREST)


# --- terminal renderings (rich). A character cell is about twice as tall as
# it is wide, so two stacked pixels per cell keep the LCD's proportions.
_HALF = {(0, 0): " ", (1, 0): "\u2580", (0, 1): "\u2584", (1, 1): "\u2588"}


def half_block_rows(frame):
    """The frame as 32 strings of 128 characters: each cell is one column of
    two pixel rows (upper half block, lower half block, full block, space)."""
    bits = frame_bits(frame)
    return ["".join(_HALF[bits[y][x], bits[y + 1][x]] for x in range(WIDTH)) for y in range(0, HEIGHT, 2)]


def half_block_decode(rows):
    """Rows of half_block_rows back to pixel rows (the test's proof that the
    terminal shows every pixel of the frame)."""
    back = {c: k for k, c in _HALF.items()}
    bits = []
    for row in rows:
        pairs = [back[c] for c in row]
        bits.append([p[0] for p in pairs])
        bits.append([p[1] for p in pairs])
    return bits


# Braille: 2 x 4 pixels per cell, also every pixel, in 64 x 16 cells (for an
# 80-column terminal, where 128 half-block columns do not fit). Dot numbers
# 1-8 of U+2800 by (dx, dy).
_BRAILLE_DOT = {(0, 0): 0x01, (0, 1): 0x02, (0, 2): 0x04, (1, 0): 0x08, (1, 1): 0x10, (1, 2): 0x20,
                (0, 3): 0x40, (1, 3): 0x80}


def braille_rows(frame):
    """The frame as 16 strings of 64 braille characters (2x4 pixels each)."""
    bits = frame_bits(frame)
    rows = []
    for y in range(0, HEIGHT, 4):
        rows.append("".join(chr(0x2800 + sum(d for (dx, dy), d in _BRAILLE_DOT.items() if bits[y + dy][x + dx]))
                            for x in range(0, WIDTH, 2)))
    return rows


def braille_decode(rows):
    bits = [[0] * WIDTH for _ in range(len(rows) * 4)]
    for r, row in enumerate(rows):
        for c, ch in enumerate(row):
            v = ord(ch) - 0x2800
            for (dx, dy), d in _BRAILLE_DOT.items():
                if v & d:
                    bits[r * 4 + dy][c * 2 + dx] = 1
    return bits


def _rich_text(rows):
    from rich.text import Text
    return Text("\n".join(rows), style="rgb(%d,%d,%d) on rgb(%d,%d,%d)" % (PIXEL_ON + PIXEL_OFF), no_wrap=True)


def half_blocks(frame):
    """A rich Text of the whole frame in half blocks: 128 columns, 32 rows."""
    return _rich_text(half_block_rows(frame))


def braille(frame):
    """A rich Text of the whole frame in braille: 64 columns, 16 rows."""
    return _rich_text(braille_rows(frame))


def blank_frame():
    return bytes(FRAME_BYTES)


if __name__ == "__main__":
    # lcd_png.py FRAME_HEX_FILE OUT.png: one frame (hex text) to a picture;
    # without OUT, the frame in half blocks on the terminal
    import sys
    from rich.console import Console
    text = open(sys.argv[1]).read().strip()
    if len(sys.argv) > 2:
        write_png(text, sys.argv[2])
    else:
        Console().print(half_blocks(text))
