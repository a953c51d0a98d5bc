"""Synthetic mains waveforms for the metering tests and bench (CPython + numpy).

`synth()` samples a voltage and a current with 3rd and 5th harmonics through a
model of the meter's analogue front end (gain error, DC offset, white noise,
the I channel sampled a fraction of a sample after V, 12-bit quantisation and
clipping) and returns the raw ADC buffers together with the *exact* real power
of the continuous signals, from which the reference energy follows.

The front end's nominal scale matches firmware/metering/waveform.py's
DEFAULT_CAL: +-2048 counts are 450 V and 100 A peak.
"""
import math

import numpy as np

V_FULL_PEAK = 450.0
I_FULL_PEAK = 100.0
MID = 2048
RATE_HZ = 3200
VN = 230.0          # nominal voltage
IN = 10.0           # nominal (basic) current, A
IMAX = 60.0

# harmonic content, each as a fraction of its fundamental's amplitude:
# sqrt(0.08^2 + 0.06^2) = 10 % THD
H3, H5 = 0.08, 0.06
# harmonic phases in radians (fixed, so figures repeat run to run)
V_PH3, V_PH5 = 0.4, -0.9
I_PH3, I_PH5 = 1.1, 0.3


class FrontEnd:
    """The imperfect analogue front end a real board would have."""

    def __init__(self, v_gain=1.0, i_gain=1.0, v_offset=0.0, i_offset=0.0,
                 v_noise=1.0, i_noise=0.7, skew_samples=0.0, crosstalk=0.0):
        self.v_gain = v_gain          # multiplies the ideal counts
        self.i_gain = i_gain
        self.v_offset = v_offset      # counts added to mid-scale
        self.i_offset = i_offset
        self.v_noise = v_noise        # white noise, counts rms
        self.i_noise = i_noise
        self.skew_samples = skew_samples  # I sampled this many samples after V
        # the current channel picks up this fraction of the voltage signal's
        # counts: a real-power offset at no load, as board layout gives
        self.crosstalk = crosstalk

    def offset_w(self, v_rms):
        """The real-power offset the crosstalk reads as, at v_rms (sine), in W."""
        return self.crosstalk * v_rms * v_rms * (I_FULL_PEAK / V_FULL_PEAK) * self.v_gain / self.i_gain


IDEAL = FrontEnd(v_noise=0.0, i_noise=0.0)
# what the accuracy bench measures: a board with every imperfection at once
TYPICAL = FrontEnd(v_gain=1.013, i_gain=0.979, v_offset=37.0, i_offset=-23.0,
                   v_noise=1.0, i_noise=0.7, skew_samples=0.5)
# held out: what the calibration path is tested against, never tuned on. Other
# gain errors, offsets and skew, more noise, and 0.3 W of crosstalk at 230 V
HELD_OUT = FrontEnd(v_gain=0.9914, i_gain=1.0237, v_offset=-41.0, i_offset=29.0,
                    v_noise=1.3, i_noise=0.9, skew_samples=0.37, crosstalk=2.5e-5)


def exact_power_w(v_rms, i_rms, pf, lagging=True, harmonics=True):
    """Real power of the continuous signals synth() samples, in W."""
    phi = math.acos(pf) * (1 if lagging else -1)
    p = v_rms * i_rms * math.cos(phi)
    if harmonics:
        # each harmonic pair contributes Vh*Ih*cos(angle between them)
        p += v_rms * i_rms * H3 * H3 * math.cos(V_PH3 - (I_PH3 - 3 * phi))
        p += v_rms * i_rms * H5 * H5 * math.cos(V_PH5 - (I_PH5 - 5 * phi))
    return p


def signals(t, v_rms, i_rms, pf, lagging, freq_hz, harmonics):
    """Ideal continuous v(t), i(t) in volts and amps."""
    w = 2 * math.pi * freq_hz
    phi = math.acos(pf) * (1 if lagging else -1)   # current lags by phi
    x = w * t
    v = np.sin(x)
    i = np.sin(x - phi)
    if harmonics:
        v = v + H3 * np.sin(3 * x + V_PH3) + H5 * np.sin(5 * x + V_PH5)
        i = i + H3 * np.sin(3 * (x - phi) + I_PH3) + H5 * np.sin(5 * (x - phi) + I_PH5)
    r2 = math.sqrt(2)
    return v * v_rms * r2, i * i_rms * r2


def synth(n, v_rms, i_rms, pf=1.0, lagging=True, freq_hz=50.0, seed=1, fe=TYPICAL,
          harmonics=True, rate_hz=RATE_HZ, t0=0.0):
    """Raw ADC buffers (int16 arrays) of n samples starting at time t0 s.

    Returns (vbuf, ibuf, p_w) where p_w is the exact real power of the
    continuous signals (harmonics included).
    """
    rng = np.random.default_rng(seed)
    tv = t0 + np.arange(n, dtype=np.float64) / rate_hz
    ti = tv + fe.skew_samples / rate_hz
    v, _ = signals(tv, v_rms, i_rms, pf, lagging, freq_hz, harmonics)
    _, i = signals(ti, v_rms, i_rms, pf, lagging, freq_hz, harmonics)
    vc = MID + fe.v_offset + v * (MID / V_FULL_PEAK) * fe.v_gain + rng.normal(0, 1, n) * fe.v_noise
    ic = MID + fe.i_offset + i * (MID / I_FULL_PEAK) * fe.i_gain + rng.normal(0, 1, n) * fe.i_noise
    if fe.crosstalk:
        vs, _ = signals(ti, v_rms, i_rms, pf, lagging, freq_hz, harmonics)
        ic = ic + fe.crosstalk * vs * (MID / V_FULL_PEAK) * fe.v_gain
    vq = np.clip(np.rint(vc), 0, 4095).astype(np.int16)
    iq = np.clip(np.rint(ic), 0, 4095).astype(np.int16)
    p = exact_power_w(v_rms, i_rms, pf, lagging, harmonics) if i_rms else 0.0
    return vq, iq, p


# IEC 62053-22 class 0.5S limits, percent, by (fraction of In, pf)
def class05s_limit_pct(i_frac, pf):
    if pf == 1.0:
        return 0.5 if i_frac >= 0.05 else 1.0
    return 0.6 if i_frac >= 0.10 else 1.0


# IEC 62053-22 class 0.2S limits, percent
def class02s_limit_pct(i_frac, pf):
    if pf == 1.0:
        return 0.2 if i_frac >= 0.05 else 0.4
    return 0.3 if i_frac >= 0.10 else 0.5


def _secs(frac):
    # low currents carry little signal per sample: average longer
    return 40 if frac <= 0.02 else 10 if frac <= 0.1 else 4


def iec_grid():
    """Every current (1 % In .. Imax) x PF 1, 0.5L, 0.8C x 49, 50, 51 Hz, as
    (name, i_frac, pf, lagging, freq_hz, seconds)."""
    pts = []
    for hz in (49.0, 50.0, 51.0):
        for frac in (0.01, 0.02, 0.05, 0.10, 0.50, 1.00, IMAX / IN):
            for pf, lag, tag in ((1.0, True, "1"), (0.5, True, "0.5L"), (0.8, False, "0.8C")):
                pts.append(("%g%%In PF%s %gHz" % (frac * 100, tag, hz), frac, pf, lag, hz,
                            _secs(frac)))
    return pts


def iec_points(full=True):
    """(name, i_rms_A, pf, lagging, freq_hz, seconds) for the accuracy table."""
    fracs = [0.01, 0.02, 0.05, 0.10, 0.50, 1.00, IMAX / IN]
    pfs = [(1.0, True, "1"), (0.5, True, "0.5L"), (0.8, False, "0.8C")]
    pts = []
    for frac in fracs:
        for pf, lag, tag in pfs:
            # low currents carry little signal per sample: average longer
            secs = 40 if frac <= 0.02 else 10 if frac <= 0.1 else 4
            pts.append(("%g%%In PF%s 50Hz" % (frac * 100, tag), frac, pf, lag, 50.0, secs))
    for f in (49.0, 51.0, 60.0):
        for pf, lag, tag in pfs:
            pts.append(("100%%In PF%s %gHz" % (tag, f), 1.0, pf, lag, f, 4))
        pts.append(("5%%In PF1 %gHz" % f, 0.05, 1.0, True, f, 10))
    if not full:
        keep = {"1%In PF1 50Hz", "10%In PF0.5L 50Hz", "100%In PF0.8C 50Hz",
                "600%In PF1 50Hz", "100%In PF0.5L 49Hz", "100%In PF1 60Hz"}
        pts = [p for p in pts if p[0] in keep]
        pts = [(n, f, pf, lag, hz, min(s, 10)) for (n, f, pf, lag, hz, s) in pts]
    return pts
