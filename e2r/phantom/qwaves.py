"""Q waves and R-wave progression from a 12-lead ECG's median beat: how a reader finds a prior
myocardial infarction, and in which coronary territory.

QRS fiducials come from wfdb.processing's XQRS detector (the PhysioNet WFDB toolbox's QRS detector,
already a dependency of e2r's WFDB reader); the median beat, QRS onset/offset and the per-lead
waves are measured here with numpy/scipy. The criteria:

- Pathological Q wave, Fourth Universal Definition of Myocardial Infarction (Thygesen et al.,
  Circulation 2018;138:e618-e651, "ECG manifestations of prior MI"): any Q wave >= 0.02 s or a QS
  complex in V2-V3; a Q wave >= 0.03 s and >= 0.1 mV deep, or a QS complex, in I, II, aVL, aVF or
  V4-V6; in any two leads of a contiguous group (I, aVL; V1-V6; II, III, aVF). V1 (a QS in V1 is
  normal) and aVR carry no Q criterion; lead III counts only beside II or aVF.
- Poor R-wave progression: R in V3 <= 0.3 mV (Zema et al., J Electrocardiol 1980;13:11-16;
  DePace et al., Am J Cardiol 1983;51:1289-1292), a marker of anterior infarction among others.

A territory's facing leads (the issue's lead groups; Thygesen 2018, Table 4 of the contiguous
groups): anterior/anteroseptal (LAD) V1-V4, lateral (LCx) I, aVL, V5-V6, inferior (RCA) II, III, aVF.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy import signal as sps

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
_I, _II, _III, _AVL, _AVF, _V1, _V2, _V3, _V4, _V5, _V6 = 0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11

# The leads facing each coronary territory (Thygesen 2018 contiguous groups).
FACING_LEADS = {
    "LAD": (_V1, _V2, _V3, _V4),
    "LCx": (_I, _AVL, _V5, _V6),
    "RCA": (_II, _III, _AVF),
}
# Contiguous pairs in which two pathological Q waves make a group positive (Thygesen 2018).
_CONTIGUOUS = {
    "LAD": ((_V2, _V3), (_V3, _V4)),
    "LCx": ((_I, _AVL), (_V5, _V6)),
    "RCA": ((_II, _III), (_III, _AVF), (_II, _AVF)),
}
_Q_SMALL_LEADS = (_V2, _V3)   # any Q >= 20 ms
_NO_Q_CRITERION = (3, _V1)    # aVR, V1


@dataclass(frozen=True)
class QWaveMeasures:
    """Per-lead initial negative deflection and R, and the territory groups they make positive."""

    n_beats: int
    q_ms: tuple[float, ...]       # duration of the initial negative lobe per lead (0: none), ms
    q_mv: tuple[float, ...]       # its depth, mV (positive number)
    r_mv: tuple[float, ...]       # largest positive deflection in the QRS, mV
    pathological: tuple[bool, ...]  # the lead meets the Thygesen 2018 per-lead criterion
    groups: tuple[str, ...]       # territories whose facing leads carry Q in two contiguous leads

    @property
    def r_v3_mv(self) -> float:
        """R amplitude in V3 (poor R-wave progression at <= 0.3 mV)."""
        return self.r_mv[_V3]

    @property
    def poor_r_progression(self) -> bool:
        """Zema 1980: R in V3 <= 0.3 mV."""
        return bool(self.r_mv[_V3] <= 0.3)


def _detect_beats(x: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices: wfdb's XQRS on lead II, else on the lead where it finds most beats."""
    from wfdb import processing

    best = np.zeros(0, dtype=int)
    for lead in (_II, _V5, _I, _V2, _AVF):
        det = processing.XQRS(sig=x[lead], fs=fs)
        det.detect(verbose=False)
        found = np.asarray(det.qrs_inds, dtype=int)
        if len(found) > len(best):
            best = found
        if len(found) >= 4 and 0.3 < np.median(np.diff(found)) / fs < 2.0:
            return found
    return best


def median_beat(sig: np.ndarray, fs: float) -> tuple[np.ndarray, int]:
    """A (12, W) median beat (0.5-40 Hz, zero phase) and its number of beats; the fiducial sits at
    0.3 s. Beats are aligned on the spatial-velocity peak near each XQRS detection; beats that do
    not correlate with the first median (ectopics, artefacts) are left out of the second."""
    sos = sps.butter(2, [0.5 / (fs / 2), min(40.0 / (fs / 2), 0.95)], btype="bandpass", output="sos")
    x = sps.sosfiltfilt(sos, np.asarray(sig, dtype=np.float64), axis=1)
    pre, post = int(0.3 * fs), int(0.45 * fs)
    peaks = _detect_beats(x, fs)
    vel = ndimage.uniform_filter1d(np.sqrt((np.diff(x, axis=1) ** 2).sum(axis=0)), max(1, int(0.01 * fs)))
    reach = int(0.06 * fs)
    fid = []
    for p in peaks:
        lo, hi = max(0, p - reach), min(len(vel), p + reach)
        if hi > lo:
            fid.append(lo + int(np.argmax(vel[lo:hi])))
    fid = np.array([p for p in fid if p >= pre and p + post < x.shape[1]], dtype=int)
    if len(fid) == 0:
        return np.zeros((12, pre + post)), 0
    beats = np.stack([x[:, p - pre:p + post] for p in fid])  # (B, 12, W)
    med = np.median(beats, axis=0)
    qrs = slice(pre - int(0.08 * fs), pre + int(0.1 * fs))
    corr = np.array([np.corrcoef(b[:, qrs].ravel(), med[:, qrs].ravel())[0, 1] for b in beats])
    keep = corr >= 0.9
    if keep.sum() >= 3:
        beats = beats[keep]
        med = np.median(beats, axis=0)
    return med, len(beats)


def _qrs_bounds(beat: np.ndarray, fs: float) -> tuple[int, int]:
    """QRS onset and offset on the median beat: where the spatial velocity rises above / falls
    below a fraction of its QRS peak (the fiducial sits at 0.3 s)."""
    pre = int(0.3 * fs)
    v = ndimage.uniform_filter1d(np.sqrt((np.diff(beat, axis=1) ** 2).sum(axis=0)) * fs, max(1, int(0.008 * fs)))
    near = slice(pre - int(0.06 * fs), pre + int(0.06 * fs))
    peak = near.start + int(np.argmax(v[near]))
    thr = 0.08 * v[peak]
    on = peak
    while on > pre - int(0.12 * fs) and v[on] > thr:
        on -= 1
    off = peak
    while off < len(v) - 1 and off < pre + int(0.16 * fs) and v[off] > thr:
        off += 1
    return on, off


def _initial_q(lead: np.ndarray, on: int, off: int, fs: float) -> tuple[float, float]:
    """Duration (ms) and depth (mV) of the lead's initial negative lobe: the first deflection
    beyond 0.05 mV after QRS onset is negative (smaller ones are within the median beat's noise
    and the low-pass filter's overshoot before a steep Q); the lobe runs between the zero
    crossings around it."""
    seg = lead[on:off + 1]
    big = np.nonzero(np.abs(seg) > 0.05)[0]
    if len(big) == 0 or seg[big[0]] > 0:
        return 0.0, 0.0
    first = big[0]
    start = first
    while start > 0 and seg[start - 1] < 0:
        start -= 1
    end = first
    while end < len(seg) - 1 and seg[end + 1] < 0:
        end += 1
    return (end - start + 1) / fs * 1000.0, float(-seg[start:end + 1].min())


def measure_qwaves(sig: np.ndarray, fs: float) -> QWaveMeasures:
    """Q waves and R amplitudes of a (12, T) mV ECG in canonical lead order (LEADS)."""
    beat, n_beats = median_beat(sig, fs)
    if n_beats == 0:
        zero = (0.0,) * 12
        return QWaveMeasures(0, zero, zero, zero, (False,) * 12, ())
    on, off = _qrs_bounds(beat, fs)
    base = beat[:, max(0, on - int(0.016 * fs)):on + 1].mean(axis=1, keepdims=True)  # PR segment
    b = beat - base
    q_ms, q_mv, r_mv, patho = [], [], [], []
    for k in range(12):
        dur, depth = _initial_q(b[k], on, off, fs)
        r = float(max(0.0, b[k, on:off + 1].max()))
        qs = r < 0.05 and -b[k, on:off + 1].min() > 0.1  # no R at all: a QS complex
        if k in _NO_Q_CRITERION:
            ok = False
        elif k in _Q_SMALL_LEADS:
            ok = qs or dur >= 20.0
        else:
            ok = qs or (dur >= 30.0 and depth >= 0.1)
        q_ms.append(dur)
        q_mv.append(depth)
        r_mv.append(r)
        patho.append(bool(ok))
    groups = tuple(t for t, pairs in _CONTIGUOUS.items() if any(patho[a] and patho[c] for a, c in pairs))
    return QWaveMeasures(n_beats, tuple(q_ms), tuple(q_mv), tuple(r_mv), tuple(patho), groups)
