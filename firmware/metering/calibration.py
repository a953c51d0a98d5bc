# Calibration: gain, phase and offset constants from a known reference load.
#
# A technician connects a reference source (clean sine, known V, I and PF,
# ideally PF 0.5 lagging so phase errors show) and calls `calibrate()` with
# one buffer pair of about a second. The result is a plain dict of integers,
# stored with the meter's state and handed to Analyzer.configure().
#
# Phase: with unit gains the analyzer reports real power in counts^2. Delaying
# the voltage by +1 and -1 whole samples turns the unknown angle phi0 into
#   P(+1) - P(-1) = 2 A sin(phi0) sin(theta),  P(+1) + P(-1) = 2 A cos(phi0) cos(theta)
# with theta = 2 pi f / rate, so phi0 = atan2(...) needs no amplitude. The
# delay that brings phi0 to the reference angle is then (phi0 - phi_ref)/theta.
# This runs rarely and may use floats.
import math

from firmware.metering.waveform import Analyzer, DEFAULT_CAL

# unit gains: readings come out in milli-counts and milli-counts^2
_UNIT = {"v_uv_per_count": 1000000, "i_ua_per_count": 1000000, "delay_q8": 0,
         "p_offset_mw": 0, "i_floor_q4": 0}


def _probe(vbuf, ibuf, n, rate_hz, delay_q8, fast):
    c = dict(_UNIT)
    c["delay_q8"] = delay_q8
    an = Analyzer(rate_hz, c, creep_mw=0, fast=fast)
    an.analyze(vbuf, ibuf, n)
    return an


def calibrate(vbuf, ibuf, n, rate_hz, ref_v_mv, ref_i_ma, ref_pf_milli, lagging=True,
              base=None, fast=True):
    """Return a calibration dict that makes this buffer read the reference.

    Raises ValueError when the buffer holds no mains cycles or no current.
    Offsets (p_offset_mw, i_floor_q4) are kept from `base`; measure them with
    `calibrate_offsets()` at no load.
    """
    ref = _probe(vbuf, ibuf, n, rate_hz, 0, fast)
    if ref.cycles < 2 or ref.irms_ma <= 0:
        raise ValueError("no reference signal")
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
    # readings are milli-counts: microunits per count = ref milli-units * 1e6 / reading
    cal["v_uv_per_count"] = int(round(ref_v_mv * 1e6 / got.vrms_mv))
    # the current channel's noise floor is part of Irms^2; take it out first
    ic = got.irms_ma / 1000.0
    floor = cal["i_floor_q4"] / 16.0
    ic = math.sqrt(max(ic * ic - floor, 1e-9))
    cal["i_ua_per_count"] = int(round(ref_i_ma * 1e3 / ic))
    cal["delay_q8"] = delay
    return cal


def calibrate_offsets(vbuf, ibuf, n, rate_hz, cal, fast=True):
    """At rated voltage and zero current: measure the real-power offset and
    the current channel's noise power, and return `cal` updated with them."""
    c = dict(cal)
    c["p_offset_mw"] = 0
    c["i_floor_q4"] = 0
    an = Analyzer(rate_hz, c, creep_mw=0, fast=fast)
    an.analyze(vbuf, ibuf, n)
    if an.cycles < 2:
        raise ValueError("no mains")
    counts = an.irms_ma * 1000.0 / c["i_ua_per_count"]
    c["p_offset_mw"] = an.p_mw
    c["i_floor_q4"] = int(round(counts * counts * 16))
    return c
