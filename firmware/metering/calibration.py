# Calibration: gain, phase and offset constants from a known reference load.
#
# A technician connects a reference source (clean sine, known V, I and PF,
# ideally PF 0.5 lagging so phase errors show) and calls `calibrate()` with
# one buffer pair of about a second. Then, at rated voltage and no load,
# `calibrate_offsets()` averages captures until the real-power offset is
# known well enough. The result is a plain dict of integers, stored with the
# meter's state and handed to Analyzer.configure(). docs/metering.md gives
# the steps.
#
# Phase: with unit gains the analyzer reports real power in counts^2. Delaying
# the voltage by +1 and -1 whole samples turns the unknown angle phi0 into
#   P(+1) - P(-1) = 2 A sin(phi0) sin(theta),  P(+1) + P(-1) = 2 A cos(phi0) cos(theta)
# with theta = 2 pi f / rate, so phi0 = atan2(...) needs no amplitude. The
# delay that brings phi0 to the reference angle is then (phi0 - phi_ref)/theta.
# This runs rarely and may use floats and big integers.
#
# Gains: they come from the analyzer's exact mean squares (ms_v_q4, ms_i_q4,
# counts^2 * 16), not from its Vrms/Irms readings. Those are the integer
# square root of the mean square, a quarter count of resolution: up to
# 0.12 % of the current at Ib (about 200 counts rms), always upwards in the
# gain, so that on held-out waveforms every point from half Ib read 0.07 to
# 0.23 % high. The square root here keeps 16 more bits.
import math

from firmware.metering.fixmath import isqrt
from firmware.metering.waveform import Analyzer, DEFAULT_CAL, FLAG_CLIPPED

# unit gains: readings come out in milli-counts and milli-counts^2
_UNIT = {"v_uv_per_count": 1000000, "i_ua_per_count": 1000000, "delay_q8": 0,
         "p_offset_mw": 0, "i_floor_q4": 0}

# Offsets: averaged until the standard error of the mean real-power offset
# is at most 1/_SE_SHARE of the class 0.2S limit (0.5 %) at the lowest
# accuracy point, 1 % Ib at PF 0.5. At 230 V and Ib 10 A that point is
# 11.5 W and the target 14.4 mW: a 1-sigma bias of 0.125 % there.
_LIMIT_PPM = 5000
_SE_SHARE = 4
_MIN_CAPTURES = 16
_MAX_CAPTURES = 3000    # 10 minutes of 200 ms captures


def _probe(vbuf, ibuf, n, rate_hz, delay_q8, fast):
    c = dict(_UNIT)
    c["delay_q8"] = delay_q8
    an = Analyzer(rate_hz, c, creep_mw=0, fast=fast)
    an.analyze(vbuf, ibuf, n)
    return an


def _gain(ref_milli, ms_q4):
    """Microunits per count that make a mean square of ms_q4 (counts^2 * 16)
    read ref_milli milli-units: 4000 * ref / sqrt(ms), rounded, exactly."""
    # Newton's isqrt is exact on big ints too (beyond its small-int bound)
    root = isqrt(ms_q4 << 32)        # sqrt(ms) * 2**16
    return (4000 * ref_milli * 65536 + root // 2) // root


def calibrate(vbuf, ibuf, n, rate_hz, ref_v_mv, ref_i_ma, ref_pf_milli, lagging=True,
              base=None, fast=True):
    """Return a calibration dict that makes this buffer read the reference.

    Raises ValueError when the buffer holds no mains cycles or no current,
    or when a sample hit the ADC's rails (the reference is beyond full scale).
    Offsets (p_offset_mw, i_floor_q4) are kept from `base`; measure them with
    `calibrate_offsets()` at no load.
    """
    ref = _probe(vbuf, ibuf, n, rate_hz, 0, fast)
    if ref.cycles < 2 or ref.ms_i_q4 <= 0:
        raise ValueError("no reference signal")
    if ref.flags & FLAG_CLIPPED:
        raise ValueError("reference clipped")
    theta = 2 * math.pi * ref.freq_mhz / 1000.0 / rate_hz
    plus = _probe(vbuf, ibuf, n, rate_hz, 256, fast).p_mw
    minus = _probe(vbuf, ibuf, n, rate_hz, -256, fast).p_mw
    phi0 = math.atan2((plus - minus) * math.cos(theta), (plus + minus) * math.sin(theta))
    phi_ref = math.acos(ref_pf_milli / 1000.0) * (1 if lagging else -1)
    delay = int(round((phi0 - phi_ref) / theta * 256))
    if delay > 256 or delay < -256:
        raise ValueError("phase error beyond one sample")
    got = _probe(vbuf, ibuf, n, rate_hz, delay, fast)
    cal = dict(DEFAULT_CAL)
    if base:
        cal.update(base)
    # the current channel's noise floor is part of its mean square: take it out
    ms_i = got.ms_i_q4 - int(cal["i_floor_q4"])
    if ms_i <= 0:
        raise ValueError("no reference signal")
    cal["v_uv_per_count"] = _gain(ref_v_mv, got.ms_v_q4)
    cal["i_ua_per_count"] = _gain(ref_i_ma, ms_i)
    cal["delay_q8"] = delay
    return cal


def calibrate_offsets(capture, vbuf, ibuf, rate_hz, cal, vn_mv=230000, ib_ma=10000,
                      fast=True, max_captures=_MAX_CAPTURES):
    """At rated voltage and zero current: measure the real-power offset and
    the current channel's noise power, and return a copy of `cal` with them.

    `capture(vbuf, ibuf)` fills the buffers and returns the sample count (the
    board's adc_capture). Captures are averaged until the offset's standard
    error is small against the class 0.2S limit at 1 % of `ib_ma` and PF 0.5
    at `vn_mv`; one capture's offset is mostly noise. Raises ValueError with
    the reason, leaving `cal` unchanged: "no mains"; "load present" (the
    offset or the current is as large as the lowest accuracy point);
    "offset too noisy" (the target was not met within `max_captures`).
    """
    low_mw = vn_mv * ib_ma // 200000          # 1 % Ib at PF 0.5, mW (mV * mA = uW)
    target_mw = low_mw * _LIMIT_PPM / 1e6 / _SE_SHARE
    c = dict(cal)
    c["p_offset_mw"] = 0
    c["i_floor_q4"] = 0
    an = Analyzer(rate_hz, c, creep_mw=0, fast=fast)
    k = sum_p = sum_p2 = sum_i = 0
    se = None
    while k < max_captures:
        n = capture(vbuf, ibuf)
        an.analyze(vbuf, ibuf, n)
        if an.cycles < 2:
            raise ValueError("no mains")
        k += 1
        sum_p += an.p_mw
        sum_p2 += an.p_mw * an.p_mw
        sum_i += an.ms_i_q4
        if k >= _MIN_CAPTURES:
            var = (sum_p2 - sum_p * sum_p / k) / (k - 1)
            se = math.sqrt(max(var, 0.0) / k)
            if se <= target_mw:
                break
    mean_mw = sum_p / k
    floor_q4 = (sum_i + k // 2) // k
    # Irms of that floor, mA: a load, not noise, if it reaches 1 % Ib
    floor_ma = math.sqrt(floor_q4 / 16.0) * int(c["i_ua_per_count"]) / 1000.0
    if abs(mean_mw) >= low_mw or floor_ma >= ib_ma / 100.0:
        raise ValueError("load present: %d mW, %d mA" % (mean_mw, floor_ma))
    if se is None or se > target_mw:
        raise ValueError("offset too noisy: standard error %s mW > %.1f mW after %d captures"
                         % ("?" if se is None else "%.1f" % se, target_mw, k))
    c["p_offset_mw"] = int(round(mean_mw))
    c["i_floor_q4"] = floor_q4
    return c
