# ADC maths: voltage and current sample buffers -> Vrms, Irms, P, S, PF, Hz,
# and import/export energy integrated from real power.
#
# Inputs are the board's two array('h') buffers of raw 12-bit samples around
# mid-scale, taken at `rate_hz`. Each `analyze()`:
#   1. finds rising zero crossings of the voltage (with hysteresis) and keeps
#      the samples between the first and the last one: whole mains cycles, so
#      DC offset, ripple and harmonics average out exactly;
#   2. removes each channel's DC offset (the mean over those cycles);
#   3. delays the voltage by a calibrated fraction of a sample (linear
#      interpolation) to cancel the V/I sampling skew and CT phase shift;
#   4. sums v*v, i*i and v*i in a tight loop (viper, or plain Python to compare);
#   5. turns the sums into engineering units with integer gains.
# The window's length is measured between interpolated crossing times, not
# in whole samples, so a buffer that is not a whole number of samples per
# cycle (49 Hz at 3200 S/s) carries no systematic error.
#
# Everything is integer and stays below 2**30 (see fixmath.py), so analyze()
# and accumulate() allocate nothing: they run under micropython.heap_lock().
# Units: vrms_mv, irms_ma, p_mw (signed: negative is export), s_mva,
# pf_milli, freq_mhz (millihertz). Energy: import_wh/export_wh plus carried
# millijoule and microjoule remainders.
import array
import micropython
from micropython import const

from firmware.metering.fixmath import div_wide, muldiv, isqrt

FLAG_NO_CYCLES = const(1)   # fewer than two voltage zero crossings: no mains
FLAG_REVERSE = const(2)     # real power flows out of the premises
FLAG_CLIPPED = const(4)     # a sample hit the ADC rails: reading is low

_HYST = const(40)           # counts below the mid-line that re-arm crossing detection
_BLOCK = const(32)          # samples summed before folding into limbs (32 * 2**24 < 2**30)
_M14 = const(0x3FFF)
_MAX_DT_MS = const(30000)   # accumulate() splits longer steps: 23 kW * 30 s in mJ < 2**30
_MJ_PER_WH = const(3600000)

# calibration defaults for the reference front end (tools/waveforms.py,
# boards/sim_adc.py): 450 V and 100 A peak at full scale of +-2048 counts.
DEFAULT_CAL = {
    "v_uv_per_count": 219727,   # microvolts per ADC count
    "i_ua_per_count": 48828,    # microamps per ADC count
    "delay_q8": 0,              # voltage delay in 1/256 sample (negative: advance)
    "p_offset_mw": 0,           # real-power offset removed from every reading
    "i_floor_q4": 0,            # current-channel noise power (counts^2 * 16) removed from Irms
}


# --- kernels: plain Python -------------------------------------------------
# p (array 'i') carries parameters in and results out so the kernels keep to
# four arguments and allocate nothing. Inputs in p are never negative: viper
# loads ptr32 items unsigned, which on a 64-bit host does not sign-extend.

def _sum_py(buf, a, b):
    s = 0
    for k in range(a, b):
        s += buf[k]
    return s


def _cross_py(vb, p):
    # p in: [n, dc]; out: [first, last, count]
    n = p[0]
    dc = p[1]
    lo = dc - _HYST
    armed = 0
    first = -1
    last = -1
    count = 0
    for k in range(1, n - 1):
        x = vb[k]
        if x < lo:
            armed = 1
        elif armed and x >= dc:
            armed = 0
            if first < 0:
                first = k
            last = k
            count += 1
    p[2] = first
    p[3] = last
    p[4] = count


def _sums_py(vb, ib, p):
    # p in: [a, b, ov, oi, d, off]; out p[6..14]: vv hi/lo, ii hi/lo, vi hi/lo, sv, si, clipped
    a = p[0]
    b = p[1]
    ov = p[2]
    oi = p[3]
    d = p[4]
    e = 256 - d
    off = p[5] - 1
    svv = sii = svi = sv = si = 0
    vvh = vvl = iih = iil = vih = vil = 0
    m = clip = 0
    for k in range(a, b):
        x = vb[k]
        y = ib[k]
        if x <= 0 or x >= 4095 or y <= 0 or y >= 4095:
            clip += 1
        v = ((x - ov) * e + (vb[k + off] - ov) * d + 128) >> 8
        c = y - oi
        svv += v * v
        sii += c * c
        svi += v * c
        sv += v
        si += c
        m += 1
        if m == _BLOCK:
            vvh += svv >> 14
            vvl += svv & _M14
            iih += sii >> 14
            iil += sii & _M14
            vih += svi >> 14
            vil += svi & _M14
            svv = sii = svi = m = 0
    p[6] = vvh + (svv >> 14)
    p[7] = vvl + (svv & _M14)
    p[8] = iih + (sii >> 14)
    p[9] = iil + (sii & _M14)
    p[10] = vih + (svi >> 14)
    p[11] = vil + (svi & _M14)
    p[12] = sv
    p[13] = si
    p[14] = clip


# --- kernels: viper (same arithmetic, machine words) ------------------------

@micropython.viper
def _sum_vp(buf: ptr16, a: int, b: int) -> int:
    s = 0
    k = a
    while k < b:
        s += buf[k]
        k += 1
    return s


@micropython.viper
def _cross_vp(vb: ptr16, p: ptr32):
    n = p[0]
    dc = p[1]
    lo = dc - _HYST
    armed = 0
    first = -1
    last = -1
    count = 0
    k = 1
    while k < n - 1:
        x = int(vb[k])
        if x < lo:
            armed = 1
        elif armed and x >= dc:
            armed = 0
            if first < 0:
                first = k
            last = k
            count += 1
        k += 1
    p[2] = first
    p[3] = last
    p[4] = count


@micropython.viper
def _sums_vp(vb: ptr16, ib: ptr16, p: ptr32):
    a = p[0]
    b = p[1]
    ov = p[2]
    oi = p[3]
    d = p[4]
    e = 256 - d
    off = p[5] - 1     # stored as 0 or 2: ptr32 loads are unsigned on 64-bit hosts
    svv = 0
    sii = 0
    svi = 0
    sv = 0
    si = 0
    vvh = 0
    vvl = 0
    iih = 0
    iil = 0
    vih = 0
    vil = 0
    m = 0
    clip = 0
    k = a
    while k < b:
        x = int(vb[k])
        y = int(ib[k])
        if x <= 0 or x >= 4095 or y <= 0 or y >= 4095:
            clip += 1
        v = ((x - ov) * e + (int(vb[k + off]) - ov) * d + 128) >> 8
        c = y - oi
        svv += v * v
        sii += c * c
        svi += v * c
        sv += v
        si += c
        m += 1
        if m == _BLOCK:
            vvh += svv >> 14
            vvl += svv & _M14
            iih += sii >> 14
            iil += sii & _M14
            vih += svi >> 14
            vil += svi & _M14
            svv = 0
            sii = 0
            svi = 0
            m = 0
        k += 1
    p[6] = vvh + (svv >> 14)
    p[7] = vvl + (svv & _M14)
    p[8] = iih + (sii >> 14)
    p[9] = iil + (sii & _M14)
    p[10] = vih + (svi >> 14)
    p[11] = vil + (svi & _M14)
    p[12] = sv
    p[13] = si
    p[14] = clip


def _mean_q4(hi, lo, t_q8):
    # (hi*2^14 + lo) samples summed over t_q8/256 samples of time, times 16
    hi += lo >> 14
    lo &= _M14
    return div_wide(hi, lo << 12, 26, t_q8)


class Analyzer:
    """One metering channel pair: analyze buffers, accumulate energy."""

    def __init__(self, rate_hz, cal=None, creep_mw=4000, fast=True):
        self.rate_hz = rate_hz
        self.creep_mw = creep_mw
        self.fast = fast
        self._p = array.array("i", bytes(4 * 16))
        # import: [uJ, mJ], export: [uJ, mJ] carried below one Wh
        self._rem = array.array("i", bytes(4 * 4))
        self.import_wh = 0
        self.export_wh = 0
        self.configure(cal or DEFAULT_CAL)
        self._clear()

    def configure(self, cal):
        """Take a calibration dict (see DEFAULT_CAL); floats allowed here only."""
        c = dict(DEFAULT_CAL)
        c.update(cal)
        self.cal = c
        self.kv = int(c["v_uv_per_count"])
        self.ki = int(c["i_ua_per_count"])
        d = int(c["delay_q8"])
        d = -256 if d < -256 else 256 if d > 256 else d
        self.delay = d if d >= 0 else -d
        self.off = -1 if d >= 0 else 1
        self.p_offset = int(c["p_offset_mw"])
        self.i_floor = int(c["i_floor_q4"])
        # mW per (count^2 * 16) as num / 2**shift with num < 2**27 for muldiv
        kp = self.kv * self.ki / 16e9
        shift = 27
        while shift > 0 and kp * (1 << shift) >= (1 << 27):
            shift -= 1
        self.kp_num = int(kp * (1 << shift) + 0.5)
        self.kp_den = 1 << shift

    def _clear(self):
        self.vrms_mv = 0
        self.irms_ma = 0
        self.p_mw = 0        # measured real power, after the offset correction
        self.p_reg_mw = 0    # what registers: 0 inside the no-load (creep) band
        self.s_mva = 0
        self.pf_milli = 0
        self.freq_mhz = 0
        self.cycles = 0
        self.flags = 0
        # mean squares in counts^2 * 16, DC removed (Irms's after the noise
        # floor): exact, for calibration, which needs more than Irms's 1 mA
        self.ms_v_q4 = 0
        self.ms_i_q4 = 0

    def analyze(self, vbuf, ibuf, n):
        """Measure the whole cycles in the first `n` samples. Returns flags."""
        p = self._p
        self._clear()
        fast = self.fast
        if n > len(vbuf):
            n = len(vbuf)
        if n < 8:
            self.flags = FLAG_NO_CYCLES
            return self.flags
        p[0] = n
        p[1] = (_sum_vp(vbuf, 0, n) if fast else _sum_py(vbuf, 0, n)) // n
        if fast:
            _cross_vp(vbuf, p)
        else:
            _cross_py(vbuf, p)
        count = p[4]
        if count < 2:
            self.flags = FLAG_NO_CYCLES
            return self.flags
        a = p[2]
        b = p[3]
        dc = p[1]
        # interpolated crossing times in 1/256 sample
        x1 = vbuf[a]
        x0 = vbuf[a - 1]
        ta = a * 256 - ((x1 - dc) * 256) // (x1 - x0)
        x1 = vbuf[b]
        x0 = vbuf[b - 1]
        tb = b * 256 - ((x1 - dc) * 256) // (x1 - x0)
        t = tb - ta
        nw = b - a
        # DC offsets over exactly the window (rounded to a count; the
        # residual is removed below from the sums of v and i)
        if fast:
            sv = _sum_vp(vbuf, a, b)
            si = _sum_vp(ibuf, a, b)
        else:
            sv = _sum_py(vbuf, a, b)
            si = _sum_py(ibuf, a, b)
        p[0] = a
        p[1] = b
        p[2] = (sv + (nw >> 1)) // nw
        p[3] = (si + (nw >> 1)) // nw
        p[4] = self.delay
        p[5] = self.off + 1
        if fast:
            _sums_vp(vbuf, ibuf, p)
        else:
            _sums_py(vbuf, ibuf, p)
        rv = p[12]
        ri = p[13]
        if p[14]:
            self.flags |= FLAG_CLIPPED
        nn = nw * nw
        mvv = _mean_q4(p[6], p[7], t) - (rv * rv * 16) // nn
        mii = _mean_q4(p[8], p[9], t) - (ri * ri * 16) // nn - self.i_floor
        mvi = _mean_q4(p[10], p[11], t) - (rv * ri * 16) // nn
        if mvv < 0:
            mvv = 0
        if mii < 0:
            mii = 0
        self.ms_v_q4 = mvv
        self.ms_i_q4 = mii
        self.cycles = count - 1
        self.freq_mhz = muldiv(self.cycles * self.rate_hz, 256000, t)
        # rms in counts * 4, then microunits per count / 4000 -> milli-units
        self.vrms_mv = muldiv(isqrt(mvv), self.kv, 4000)
        self.irms_ma = muldiv(isqrt(mii), self.ki, 4000)
        pw = muldiv(mvi, self.kp_num, self.kp_den) - self.p_offset
        self.p_mw = pw
        self.s_mva = muldiv(self.vrms_mv, self.irms_ma, 1000)
        if self.s_mva > 0:
            pf = muldiv(pw, 1000, self.s_mva)
            # P and S carry separate rounding: keep |PF| <= 1
            self.pf_milli = 1000 if pf > 1000 else -1000 if pf < -1000 else pf
        if pw >= self.creep_mw:
            self.p_reg_mw = pw
        elif pw <= -self.creep_mw:
            self.p_reg_mw = pw
            self.flags |= FLAG_REVERSE
        return self.flags

    def accumulate(self, dt_ms):
        """Integrate the last real power over `dt_ms` of meter time.

        Returns the whole Wh newly added to import (export goes to
        export_wh and never to import). Allocates nothing.
        """
        p = self.p_reg_mw
        if p == 0 or dt_ms <= 0:
            return 0
        if p > 0:
            wh = self._add(0, p, dt_ms)
            self.import_wh += wh
            return wh
        self.export_wh += self._add(2, -p, dt_ms)
        return 0

    def _add(self, base, p_mw, dt_ms):
        # W*ms are mJ and leftover mW*ms are uJ: both stay < 2**30 per 30 s step
        r = self._rem
        w = p_mw // 1000
        m = p_mw - w * 1000
        wh = 0
        while dt_ms > 0:
            step = dt_ms if dt_ms < _MAX_DT_MS else _MAX_DT_MS
            dt_ms -= step
            uj = r[base] + m * step
            mj = r[base + 1] + w * step + uj // 1000
            r[base] = uj % 1000
            whole = mj // _MJ_PER_WH
            r[base + 1] = mj - whole * _MJ_PER_WH
            wh += whole
        return wh

    def state(self):
        r = self._rem
        return {"imp_wh": self.import_wh, "exp_wh": self.export_wh,
                "imp_rem": [r[0], r[1]], "exp_rem": [r[2], r[3]]}

    def restore(self, d):
        r = self._rem
        self.import_wh = int(d.get("imp_wh", 0))
        self.export_wh = int(d.get("exp_wh", 0))
        a = d.get("imp_rem", (0, 0))
        b = d.get("exp_rem", (0, 0))
        r[0], r[1], r[2], r[3] = int(a[0]), int(a[1]), int(b[0]), int(b[1])

    def readings(self):
        """A small dict for telemetry and the screen (allocates: call rarely)."""
        return {"v_mv": self.vrms_mv, "i_ma": self.irms_ma, "p_mw": self.p_mw,
                "s_mva": self.s_mva, "pf_milli": self.pf_milli, "f_mhz": self.freq_mhz,
                "flags": self.flags}
