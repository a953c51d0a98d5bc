# Integer arithmetic that stays inside the ESP32's small-int range.
#
# On the ESP32 a MicroPython int is stored inline only while |x| < 2**30; a
# larger one is a heap-allocated bignum, and a float is always a heap object.
# The ADC path runs every second and must allocate nothing, so its wide
# intermediate values (sums of 3200 squared samples, gain products) are
# handled here as two limbs and reduced with exact long division.
#
# Every function documents the operand bounds under which each intermediate
# stays below 2**30; callers keep to them.

from micropython import const

_M14 = const(0x3FFF)


def div_wide(hi, lo, bits, den):
    """floor((hi * 2**bits + lo) / den), truncated towards zero for negatives.

    0 <= lo < 2**bits, bits <= 28, |hi| < 2**29, 0 < den < 2**28, and the
    quotient must be below 2**30 in magnitude.
    """
    neg = hi < 0
    if neg:
        # -(hi*2^b + lo) = (-hi-1)*2^b + (2^b - lo), keeping the low limb positive
        if lo:
            hi = -hi - 1
            lo = (1 << bits) - lo
        else:
            hi = -hi
    q = hi // den
    r = hi - q * den
    bit = 1 << (bits - 1) if bits else 0
    # restoring division, one bit of the low limb at a time: r < den keeps 2r+1 < 2**29
    while bit:
        q += q
        r += r
        if lo & bit:
            r += 1
        if r >= den:
            r -= den
            q += 1
        bit >>= 1
    return -q if neg else q


def muldiv(a, b, c):
    """floor(a * b / c), truncated towards zero when a < 0.

    |a| < 2**28, 0 <= b < 2**28, 0 < c < 2**28, result below 2**30.
    """
    neg = a < 0
    if neg:
        a = -a
    a1 = a >> 14
    a0 = a & _M14
    b1 = b >> 14
    b0 = b & _M14
    low = a0 * b0
    mid = a1 * b0 + a0 * b1 + (low >> 14)
    top = a1 * b1 + (mid >> 14)
    q = div_wide(top, ((mid & _M14) << 14) | (low & _M14), 28, c)
    return -q if neg else q


def isqrt(n):
    """floor(sqrt(n)) for 0 <= n < 2**30, by Newton's method on ints."""
    if n <= 0:
        return 0
    x = n
    y = (x + 1) >> 1
    while y < x:
        x = y
        y = (x + n // x) >> 1
    return x
