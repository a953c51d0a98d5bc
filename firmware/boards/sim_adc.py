# Waveform synthesizer for the simulated board's ADC (MicroPython).
#
# fill() writes what the ESP32's ADC would see for a load given as watts,
# volts, power factor and frequency: raw 12-bit samples around mid-scale with
# 3rd and 5th harmonics, DC offset, white noise and the I channel sampled a
# fraction of a sample after V. The front end's scale matches the analyzer's
# DEFAULT_CAL (450 V and 100 A peak at +-2048 counts) and tools/waveforms.py.
#
# Deterministic: the waveform's phase follows the meter time `now_ms`, and the
# noise comes from a seeded xorshift generator (seed()).
import array
import math
from micropython import const

_MID = const(2048)
_TAB_BITS = const(10)
_PH_BITS = const(20)            # phase: one cycle = 2**20
_PH_MASK = const(0xFFFFF)
_V_FULL_PEAK = 450.0
_I_FULL_PEAK = 100.0

# front-end imperfections; change with configure()
cfg = {
    "v_offset": 37, "i_offset": -23,          # counts
    "v_noise_x10": 10, "i_noise_x10": 7,      # rms noise, tenths of a count
    "h3_pct": 8, "h5_pct": 6,                 # harmonics, % of the fundamental (10 % THD)
    "skew_q8": 0,                             # I sampled this many 1/256 samples after V
}

_sin = array.array("h", (int(16384 * math.sin(2 * math.pi * k / (1 << _TAB_BITS)))
                         for k in range(1 << _TAB_BITS)))
_state = [0x2545F491]


def seed(s):
    _state[0] = (s & 0xFFFFFFFF) or 1


def configure(**kw):
    cfg.update(kw)


def _rand16():
    # xorshift32, returns 0..65535
    x = _state[0]
    x ^= (x << 13) & 0xFFFFFFFF
    x ^= x >> 17
    x ^= (x << 5) & 0xFFFFFFFF
    _state[0] = x
    return x >> 16


def _noise_x10(rms_x10):
    # sum of three uniforms: close enough to Gaussian, variance 3/12 of the span^2
    if not rms_x10:
        return 0
    s = _rand16() + _rand16() + _rand16() - 98304
    # uniform on +-32768 has rms 18918; three of them 32768; scale to rms_x10/10
    return (s * rms_x10) // 327680


def _wave(ph, h3, h5):
    # fundamental plus harmonics, Q14; harmonic phases fixed
    t = _sin[(ph >> (_PH_BITS - _TAB_BITS)) & 1023] * 100
    t += h3 * _sin[((3 * ph + 70000) >> (_PH_BITS - _TAB_BITS)) & 1023]
    t += h5 * _sin[((5 * ph - 150000) >> (_PH_BITS - _TAB_BITS)) & 1023]
    return t // 100


def fill(vbuf, ibuf, rate_hz, volts, watts, pf_milli=1000, freq_hz=50, now_ms=0):
    """Fill both buffers with len(vbuf) samples starting at meter time now_ms.

    Negative watts is export; negative pf_milli is a leading (capacitive)
    load. Returns the number of samples written.
    """
    n = len(vbuf)
    pf = abs(pf_milli) / 1000.0 or 1.0
    phi = math.acos(min(pf, 1.0)) * (1 if pf_milli >= 0 else -1)
    if watts < 0:
        phi += math.pi
    # harmonic pairs carry real power too (angle 3*phi and 5*phi apart): size
    # the current so the total is `watts`, as the pulse output reports it
    h3 = cfg["h3_pct"] / 100.0
    h5 = cfg["h5_pct"] / 100.0
    per_amp = volts * (math.cos(phi) + h3 * h3 * math.cos(3 * phi) + h5 * h5 * math.cos(5 * phi))
    amps = watts / per_amp if per_amp and watts else 0.0
    vpk = volts * 1.41421356 * 2048 / _V_FULL_PEAK
    ipk = amps * 1.41421356 * 2048 / _I_FULL_PEAK
    step = int(freq_hz * (1 << _PH_BITS) / rate_hz)
    ph = int((now_ms % 1000000) * freq_hz * (1 << _PH_BITS) / 1000) & _PH_MASK
    lag = int(phi / (2 * math.pi) * (1 << _PH_BITS))
    skew = (step * cfg["skew_q8"]) >> 8
    vk = int(vpk * 256)      # amplitude in 1/256 count: Q14 * Q8 >> 22
    ik = int(ipk * 256)
    h3 = cfg["h3_pct"]
    h5 = cfg["h5_pct"]
    vo = _MID + cfg["v_offset"]
    io = _MID + cfg["i_offset"]
    vn = cfg["v_noise_x10"]
    inz = cfg["i_noise_x10"]
    for k in range(n):
        v = vo + ((_wave(ph, h3, h5) * vk) >> 22) + _noise_x10(vn)
        c = io + ((_wave(ph + skew - lag, h3, h5) * ik) >> 22) + _noise_x10(inz)
        vbuf[k] = 0 if v < 0 else 4095 if v > 4095 else v
        ibuf[k] = 0 if c < 0 else 4095 if c > 4095 else c
        ph = (ph + step) & _PH_MASK
    return n
