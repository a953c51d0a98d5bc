# The LCD's pixels: a 128x64 MONO_VLSB frame (ST7565/UC1701 page layout: byte
# x of page p holds column x, rows 8p..8p+7, bit 0 at the top) drawn from 8
# text rows of 16 cells. A cell holds a character code: 32-126 the built-in
# 8x8 font, 1-11 an icon (firmware/ui/glyphs.py), 32 blank. A row can be
# drawn inverse (a title bar) or in the big digits (three pages tall:
# the two rows under it are left blank).
#
# Nothing here allocates once built: the rows are preallocated bytearrays the
# screens write into (firmware/ui/screens.py), and draw() copies glyph
# columns byte by byte from an atlas made once at boot (the built-in font is
# rendered into it by framebuf, the icons and the big digits come from the
# code image). tests/test_ui_render.py renders every screen under heap_lock.
# The rows double as the text the frame shows (board.lcd_show's `lines`):
# the sim turns them into strings only when a test asks (boards/sim.py).
import framebuf
from micropython import const

from firmware.ui import glyphs

_W = const(128)
_COLS = const(16)
_ROWS = const(8)
_N_ICONS = const(11)
_BIG_W = const(10)       # columns of a big glyph (tools/make_glyphs.py)
_BIG_ADV = const(12)     # a big digit and its gap
_BIG_NARROW = const(6)   # '.' and ':' and a space
_BIG_AT = const(88)      # first big glyph in glyphs.data(): after 11 icons x 8 bytes
_BLANK = const(b"                ")
NORMAL = const(0)
INVERSE = const(1)
BIG = const(2)


def selftest(board, on):
    """All pixels on (on=1) or off (on=0): the boot self-test (also in
    maintenance mode, boot.py). Allocates its frame: runs twice a boot."""
    board.lcd_show(bytes(b"\xff" * 1024) if on else bytes(1024), [])


class Renderer:
    def __init__(self):
        # one frame for the life of the firmware: the LCD path allocates none
        self.buf = bytearray(_W * _ROWS)
        self.fb = framebuf.FrameBuffer(self.buf, _W, 64, framebuf.MONO_VLSB)
        self.rows = [bytearray(_BLANK) for _ in range(_ROWS)]
        self.kind = bytearray(_ROWS)          # NORMAL, INVERSE or BIG per row
        # glyph columns of every code 0-127, 8 bytes each
        atlas = self.atlas = bytearray(128 * 8)
        framebuf.FrameBuffer(atlas, 128 * 8, 8, framebuf.MONO_VLSB).text(
            bytes(range(32, 127)), 32 * 8, 0, 1)
        g = glyphs.data()
        atlas[8:8 + 8 * _N_ICONS] = g[:8 * _N_ICONS]
        self.big = g
        self.msgs = None
        self.at = None   # message n starts at at[n] in msgs (lang())

    def lang(self, table):
        """Use a language table (firmware/ui/texts.py): messages split at '\\n'."""
        import array
        at = array.array("H", [0])
        for i in range(len(table)):
            if table[i] == 10:
                at.append(i + 1)
        self.msgs = table
        self.at = at

    # --- writing cells; each returns the column after what it wrote
    def clear(self):
        for y in range(_ROWS):
            self.rows[y][0:_COLS] = _BLANK
            self.kind[y] = NORMAL

    def text(self, y, x, s):
        """Bytes (or a bytearray) s at row y, column x, cut at the row's end."""
        row = self.rows[y]
        for i in range(len(s)):
            if x >= _COLS:
                break
            row[x] = s[i]
            x += 1
        return x

    def msg(self, y, x, n):
        """Message n of the language table."""
        m = self.msgs
        row = self.rows[y]
        i = self.at[n]
        while m[i] != 10 and x < _COLS:
            row[x] = m[i]
            i += 1
            x += 1
        return x

    def char(self, y, x, c):
        if x < _COLS:
            self.rows[y][x] = c
        return x + 1

    def num(self, y, x, n, dec=0, pad=0):
        """Integer n written with `dec` decimals (n=1234, dec=2: 12.34), at
        least `pad` digits before the point (zero-filled: clock times)."""
        row = self.rows[y]
        if n < 0:
            x = self.char(y, x, 45)
            n = -n
        # digits of n, at least dec + 1 (0.05), at least pad + dec
        d = 1
        t = n
        while t >= 10:
            t //= 10
            d += 1
        if d < dec + 1:
            d = dec + 1
        if d < pad + dec:
            d = pad + dec
        end = x + d + (1 if dec else 0)
        i = end - 1
        k = 0
        while k < d:
            if dec and k == dec:
                if i < _COLS:
                    row[i] = 46
                i -= 1
            if i < _COLS:
                row[i] = 48 + n % 10
            n //= 10
            i -= 1
            k += 1
        return end

    def dashes(self, y, x):
        return self.char(y, self.char(y, x, 45), 45)

    # --- pixels
    def draw(self):
        """Paint the rows into the frame; returns the frame buffer."""
        buf = self.buf
        atlas = self.atlas
        self.fb.fill(0)
        y = 0
        while y < _ROWS:
            row = self.rows[y]
            kind = self.kind[y]
            if kind == BIG:
                self._big(y, row)
                y += 3
                continue
            inv = 255 if kind == INVERSE else 0
            o = y * _W
            for x in range(_COLS):
                c = row[x] & 127
                a = c * 8
                for k in range(8):
                    buf[o] = atlas[a + k] ^ inv
                    o += 1
            y += 1
        return buf

    def _big(self, y, row):
        buf = self.buf
        g = self.big
        px = 2
        for x in range(_COLS):
            c = row[x]
            if 48 <= c <= 57:
                i = c - 48
            elif c == 46:
                i = 10
            elif c == 45:
                i = 11
            elif c == 69:
                i = 12
            elif c == 58:
                i = 13
            else:
                px += _BIG_NARROW
                continue
            narrow = i == 10 or i == 13
            first = 2 if narrow else 0
            n = _BIG_NARROW if narrow else _BIG_W
            if px + n > _W:
                break
            for page in range(3):
                a = _BIG_AT + (i * 3 + page) * _BIG_W + first
                o = (y + page) * _W + px
                for k in range(n):
                    buf[o + k] = g[a + k]
            px += _BIG_NARROW if narrow else _BIG_ADV
