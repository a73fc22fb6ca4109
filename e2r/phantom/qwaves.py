"""Q waves and R-wave progression from a 12-lead ECG's median beat: how a reader finds a prior
myocardial infarction, and in which coronary territory.

QRS fiducials, the median beat and QRS onset/offset come from e2r.ecg.beats (wfdb's XQRS detector
plus numpy/scipy, shared with the clinical criteria of e2r.ecg.criteria); the per-lead waves are
measured here. The criteria:

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

from e2r.ecg.beats import median_beat, pr_baseline, qrs_bounds

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
    on, off = qrs_bounds(beat, fs)
    base = pr_baseline(beat, on, fs)
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
