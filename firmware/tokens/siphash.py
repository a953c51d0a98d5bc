# SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
# 2012): the keyed hash OpenPAYGO Token chains its codes with.
#
# Why 16-bit limbs: a 64-bit word is a big int in MicroPython (small ints
# hold 31 bits on the ESP32, 63 on the unix port), and every big-int
# operation allocates. Held as four 16-bit limbs (least significant first),
# every add, xor and rotation stays in small ints: hash8() allocates
# nothing, so the decoder can run it thousands of times per token without
# filling the heap with garbage (tests/test_tokens_siphash.py proves it with
# micropython.heap_lock()). The four state words live in one preallocated
# array('H') of 16 limbs: v0 = s[0..3], v1 = s[4..7], v2 = s[8..11], v3 = s[12..15].
from array import array

from micropython import const

_M = const(0xFFFF)


def _rounds(s, n):
    # n SipRounds on the state. Every shift left is masked first, so no
    # intermediate value reaches 2**31 (a big int on the ESP32). Tuple
    # assignments are avoided: four or more targets build a tuple.
    a0 = s[0]; a1 = s[1]; a2 = s[2]; a3 = s[3]
    b0 = s[4]; b1 = s[5]; b2 = s[6]; b3 = s[7]
    c0 = s[8]; c1 = s[9]; c2 = s[10]; c3 = s[11]
    d0 = s[12]; d1 = s[13]; d2 = s[14]; d3 = s[15]
    while n:
        n -= 1
        # v0 += v1
        t = a0 + b0; a0 = t & _M
        t = a1 + b1 + (t >> 16); a1 = t & _M
        t = a2 + b2 + (t >> 16); a2 = t & _M
        a3 = (a3 + b3 + (t >> 16)) & _M
        # v1 = rotl(v1, 13)
        t = b3
        b3 = ((b3 & 0x7) << 13) | (b2 >> 3)
        b2 = ((b2 & 0x7) << 13) | (b1 >> 3)
        b1 = ((b1 & 0x7) << 13) | (b0 >> 3)
        b0 = ((b0 & 0x7) << 13) | (t >> 3)
        # v1 ^= v0; v0 = rotl(v0, 32)
        b0 ^= a0; b1 ^= a1; b2 ^= a2; b3 ^= a3
        t = a0; a0 = a2; a2 = t
        t = a1; a1 = a3; a3 = t
        # v2 += v3
        t = c0 + d0; c0 = t & _M
        t = c1 + d1 + (t >> 16); c1 = t & _M
        t = c2 + d2 + (t >> 16); c2 = t & _M
        c3 = (c3 + d3 + (t >> 16)) & _M
        # v3 = rotl(v3, 16); v3 ^= v2
        t = d3; d3 = d2 ^ c3; d2 = d1 ^ c2; d1 = d0 ^ c1; d0 = t ^ c0
        # v0 += v3
        t = a0 + d0; a0 = t & _M
        t = a1 + d1 + (t >> 16); a1 = t & _M
        t = a2 + d2 + (t >> 16); a2 = t & _M
        a3 = (a3 + d3 + (t >> 16)) & _M
        # v3 = rotl(v3, 21): one limb, then 5 bits
        t = d3; u = d2
        d3 = ((d2 & 0x7FF) << 5) | (d1 >> 11)
        d2 = ((d1 & 0x7FF) << 5) | (d0 >> 11)
        d1 = ((d0 & 0x7FF) << 5) | (t >> 11)
        d0 = ((t & 0x7FF) << 5) | (u >> 11)
        # v3 ^= v0
        d0 ^= a0; d1 ^= a1; d2 ^= a2; d3 ^= a3
        # v2 += v1
        t = c0 + b0; c0 = t & _M
        t = c1 + b1 + (t >> 16); c1 = t & _M
        t = c2 + b2 + (t >> 16); c2 = t & _M
        c3 = (c3 + b3 + (t >> 16)) & _M
        # v1 = rotl(v1, 17): one limb, then 1 bit
        t = b3; u = b2
        b3 = ((b2 & 0x7FFF) << 1) | (b1 >> 15)
        b2 = ((b1 & 0x7FFF) << 1) | (b0 >> 15)
        b1 = ((b0 & 0x7FFF) << 1) | (t >> 15)
        b0 = ((t & 0x7FFF) << 1) | (u >> 15)
        # v1 ^= v2; v2 = rotl(v2, 32)
        b0 ^= c0; b1 ^= c1; b2 ^= c2; b3 ^= c3
        t = c0; c0 = c2; c2 = t
        t = c1; c1 = c3; c3 = t
    s[0] = a0; s[1] = a1; s[2] = a2; s[3] = a3
    s[4] = b0; s[5] = b1; s[6] = b2; s[7] = b3
    s[8] = c0; s[9] = c1; s[10] = c2; s[11] = c3
    s[12] = d0; s[13] = d1; s[14] = d2; s[15] = d3


# "somepseudorandomlygeneratedbytes", the initial state, as limbs (v0..v3)
_IV = b"\x75\x65\x73\x70\x65\x6d\x6f\x73\x6d\x6f\x64\x6e\x61\x72\x6f\x64" \
      b"\x61\x72\x65\x6e\x65\x67\x79\x6c\x73\x65\x74\x79\x62\x64\x65\x74"


class SipHash:
    """SipHash-2-4 under one 16-byte key. hash8() is the allocation-free
    path for 8-byte messages (all the token chain needs); digest() takes
    any bytes."""

    def __init__(self, key):
        if len(key) != 16:
            raise ValueError("siphash key: 16 bytes")
        # k0, k1 as 8 limbs (little-endian, as the paper reads the key)
        self.k = array("H", [key[2 * i] | (key[2 * i + 1] << 8) for i in range(8)])
        self.s = array("H", bytes(32))
        self.out = array("H", bytes(8))   # hash8()'s result, limbs, least significant first

    def _init(self):
        s = self.s
        k = self.k
        for i in range(16):
            # v0 = k0 ^ c0, v1 = k1 ^ c1, v2 = k0 ^ c2, v3 = k1 ^ c3
            s[i] = (_IV[2 * i] | (_IV[2 * i + 1] << 8)) ^ k[(i & 3) + (4 if i & 4 else 0)]

    def _block(self, m0, m1, m2, m3):
        s = self.s
        s[12] ^= m0; s[13] ^= m1; s[14] ^= m2; s[15] ^= m3
        _rounds(s, 2)
        s[0] ^= m0; s[1] ^= m1; s[2] ^= m2; s[3] ^= m3

    def _finish(self):
        s = self.s
        s[8] ^= 0xFF
        _rounds(s, 4)
        o = self.out
        for i in range(4):
            o[i] = s[i] ^ s[4 + i] ^ s[8 + i] ^ s[12 + i]
        return o

    def hash8(self, m0, m1, m2, m3):
        """Hash of the 8-byte message whose little-endian 16-bit limbs are
        m0..m3 (m0 = byte0 | byte1 << 8). Returns self.out, the hash as
        four limbs (overwritten by the next call)."""
        self._init()
        self._block(m0, m1, m2, m3)
        self._block(0, 0, 0, 0x0800)   # the length block: 8 bytes, no tail
        return self._finish()

    def digest(self, data):
        """The 64-bit hash of `data` (any length) as an int."""
        self._init()
        n = len(data)
        full = n - n % 8
        for i in range(0, full, 8):
            self._block(data[i] | data[i + 1] << 8, data[i + 2] | data[i + 3] << 8,
                        data[i + 4] | data[i + 5] << 8, data[i + 6] | data[i + 7] << 8)
        tail = bytearray(8)
        tail[:n - full] = data[full:]
        tail[7] = n & 0xFF
        self._block(tail[0] | tail[1] << 8, tail[2] | tail[3] << 8,
                    tail[4] | tail[5] << 8, tail[6] | tail[7] << 8)
        o = self._finish()
        return (o[3] << 48) | (o[2] << 32) | (o[1] << 16) | o[0]
