"""Measurements a reader would make on the written files: ECG intervals and voltages from the
signal, LV area change / wall thickness / chamber areas from echo pixels.

They know nothing of the latent hearts; `check` correlates them with the phenotypes to show the
cohort carries the morphology it claims.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy import signal as sps

_V1, _V3, _V5, _V6, _AVL, _II = 6, 8, 10, 11, 4, 1


@dataclass(frozen=True)
class ECGMeasures:
    """Classical ECG measurements from the median beat (canonical 12-lead order input)."""

    n_beats: int
    heart_rate: float
    rr_cv: float          # coefficient of variation of RR intervals
    qrs_ms: float
    sokolow_lyon_mv: float  # SV1 + max(RV5, RV6)
    cornell_mv: float       # RaVL + SV3
    p_amp_mv: float         # largest |P| in II / V1 / I before the QRS (~0 without P waves)
    p_consistency: float    # mean correlation of each beat's pre-QRS segment with the median one
    frontal_axis_deg: float  # from the net QRS area in I and aVF
    median_beat: np.ndarray  # (12, W) mV, 0.35 s before to 0.55 s after the QRS fiducial
    fs: float


def measure_ecg(sig: np.ndarray, fs: float) -> ECGMeasures:
    """Measure a (12, T) mV ECG in canonical lead order (I, II, III, aVR, aVL, aVF, V1-V6)."""
    sos = sps.butter(2, [0.5 / (fs / 2), min(40.0 / (fs / 2), 0.95)], btype="bandpass", output="sos")
    x = sps.sosfiltfilt(sos, np.asarray(sig, dtype=np.float64), axis=1)
    vel = np.sqrt((np.diff(x, axis=1) ** 2).sum(axis=0)) * fs  # spatial velocity, mV/s
    energy = ndimage.uniform_filter1d(vel, max(1, int(0.04 * fs)))
    peaks, _ = sps.find_peaks(energy, distance=int(0.27 * fs), height=0.35 * np.percentile(energy, 99))
    pre, post = int(0.35 * fs), int(0.55 * fs)
    good = peaks[(peaks >= pre) & (peaks + post < x.shape[1])]
    rr = np.diff(peaks) / fs
    hr = 60.0 / float(np.median(rr)) if len(rr) else float("nan")
    rr_cv = float(np.std(rr) / np.mean(rr)) if len(rr) > 2 else float("nan")
    if len(good) == 0:
        nan = float("nan")
        return ECGMeasures(0, hr, rr_cv, nan, nan, nan, nan, nan, nan, np.zeros((12, pre + post)), fs)
    beat = np.median(np.stack([x[:, p - pre:p + post] for p in good]), axis=0)

    v = ndimage.uniform_filter1d(np.sqrt((np.diff(beat, axis=1) ** 2).sum(axis=0)) * fs, max(1, int(0.008 * fs)))
    near = slice(pre - int(0.08 * fs), pre + int(0.08 * fs))
    peak = near.start + int(np.argmax(v[near]))
    thr = 0.12 * v[peak]
    on = peak
    while on > 1 and v[on] > thr:
        on -= 1
    off = peak
    while off < len(v) - 1 and v[off] > thr:
        off += 1
    base = beat[:, max(0, on - int(0.012 * fs)):on + 1].mean(axis=1, keepdims=True)
    b = beat - base
    qrs = b[:, on:off + 1]
    sl = -qrs[_V1].min() + max(qrs[_V5].max(), qrs[_V6].max())
    cornell = qrs[_AVL].max() - qrs[_V3].min()
    p_lo, p_hi = max(0, on - int(0.25 * fs)), max(1, on - int(0.03 * fs))
    p_amp = float(np.abs(b[[0, _II, _V1], p_lo:p_hi]).max())
    # P waves repeat identically before every QRS; fibrillatory waves (and the previous T wave
    # at irregular RR) do not: correlate each beat's atrial window with the median one.
    def atrial(seg: np.ndarray) -> np.ndarray:
        seg = seg[[_II, _V1]]
        return (seg - seg.mean(axis=1, keepdims=True)).ravel()

    template = atrial(beat[:, p_lo:p_hi])
    corrs = [np.corrcoef(atrial(x[:, p - pre + p_lo:p - pre + p_hi]), template)[0, 1] for p in good]
    p_consistency = float(np.nanmean(corrs)) if len(corrs) > 1 else float("nan")
    axis = float(np.degrees(np.arctan2(qrs[5].sum(), qrs[0].sum())))
    return ECGMeasures(
        n_beats=len(good), heart_rate=hr, rr_cv=rr_cv, qrs_ms=(off - on) / fs * 1000,
        sokolow_lyon_mv=float(sl), cornell_mv=float(cornell), p_amp_mv=p_amp, p_consistency=p_consistency,
        frontal_axis_deg=axis, median_beat=b.astype(np.float32), fs=fs,
    )
