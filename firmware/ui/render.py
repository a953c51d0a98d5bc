# Draws text screens into the 128x64 monochrome LCD frame (ST7565/UC1701 class,
# MONO_VLSB page layout) with framebuf's built-in 8x8 font: 8 lines of 16 chars.
import framebuf
from micropython import const

WIDTH = const(128)
HEIGHT = const(64)
COLS = const(16)
ROWS = const(8)


class Renderer:
    def __init__(self):
        # one buffer for the life of the firmware: the LCD path allocates no frames
        self.buf = bytearray(WIDTH * HEIGHT // 8)
        self.fb = framebuf.FrameBuffer(self.buf, WIDTH, HEIGHT, framebuf.MONO_VLSB)

    def draw(self, lines, inverse_row=-1):
        fb = self.fb
        fb.fill(0)
        for row, text in enumerate(lines[:ROWS]):
            y = row * 8
            if row == inverse_row:
                fb.fill_rect(0, y, WIDTH, 8, 1)
                fb.text(text[:COLS], 0, y, 0)
            else:
                fb.text(text[:COLS], 0, y, 1)
        return self.buf
