"""The clinical ECG criteria a cardiologist reads without e2r: voltage for LV hypertrophy, QRS
duration and left bundle branch block for a failing LV.

Everything is measured on the median beat of e2r.ecg.beats (wfdb's XQRS detections; the beat
band-passed 0.5-150 Hz, the AHA's diagnostic bandwidth for amplitudes, Kligfield et al.,
Circulation 2007;115:1306-1324; QRS onset/offset from the spatial velocity), amplitudes from the
isoelectric PR segment, in mV:

- R amplitude of a lead: its largest positive deflection between QRS onset and offset; S depth:
  its deepest negative one (as a positive number; in V1 a QS counts as S).
- Sokolow-Lyon voltage = S(V1) + max(R(V5), R(V6)); LVH at >= 3.5 mV (Sokolow & Lyon, Am Heart J
  1949;37:161-186, "SV1 + RV5 or RV6 >= 35 mm" at 10 mm/mV).
- Cornell voltage = R(aVL) + S(V3); LVH at > 2.8 mV in men and > 2.0 mV in women (Casale et al.,
  Circulation 1987;75:565-572). The threshold needs the sex: without it `cornell_lvh` is None.
- QRS duration: offset - onset of the median beat, all leads together (a global QRS, as
  recommended by Kligfield et al., AHA/ACCF/HRS, Circulation 2007;115:1306-1324).
- Complete LBBB, AHA/ACCF/HRS recommendations for the standardization and interpretation of the
  ECG, part III (Surawicz et al., Circulation 2009;119:e235-e240): QRS >= 120 ms; broad notched or
  slurred R in I, aVL, V5, V6 (here: I and V6 predominantly positive); absent q in I, V5 and V6;
  R-peak time > 60 ms in V5 and V6 (here: in V5 or V6, whichever has the larger R); QS or rS in V1
  (here: the QRS of V1 predominantly negative, its r under a third of its S).

Measurements, not a diagnosis: voltage criteria are specific but insensitive (sensitivity
~20-50 %, Hancock et al., AHA/ACCF/HRS part V, Circulation 2009;119:e251-e261).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from e2r.ecg.beats import median_beat, pr_baseline, qrs_bounds

_I, _AVL, _V1, _V3, _V5, _V6 = 0, 4, 6, 8, 10, 11
SOKOLOW_LYON_MV = 3.5                     # Sokolow & Lyon 1949
CORNELL_MV = {"M": 2.8, "F": 2.0}         # Casale 1987, men / women
LBBB_QRS_MS = 120.0                       # Surawicz 2009
LBBB_R_PEAK_MS = 60.0                     # R-peak time in V5-V6, Surawicz 2009
AMPLITUDE_LOWPASS_HZ = 150.0              # AHA diagnostic bandwidth for amplitudes (Kligfield 2007)
_Q_NOISE_MV = 0.05                        # deflections smaller than this are median-beat noise


@dataclass(frozen=True)
class ECGCriteria:
    """The criteria of one ECG (NaN / False when no beat was found: `n_beats` 0)."""

    n_beats: int
    qrs_ms: float                  # global QRS duration, ms
    r_mv: tuple[float, ...]        # R amplitude per lead (canonical order), mV
    s_mv: tuple[float, ...]        # S depth per lead, mV (positive)
    sokolow_lyon_mv: float         # S(V1) + max(R(V5), R(V6))
    cornell_mv: float              # R(aVL) + S(V3)
    r_peak_time_ms: float          # QRS onset to the R peak in V5 or V6 (the larger R)
    lbbb: bool                     # complete LBBB, Surawicz 2009 (see the module doc)
    sex: Optional[str] = None      # "M" / "F" when known

    @property
    def sokolow_lyon_lvh(self) -> bool:
        """Sokolow-Lyon >= 3.5 mV."""
        return bool(self.sokolow_lyon_mv >= SOKOLOW_LYON_MV)

    @property
    def cornell_lvh(self) -> Optional[bool]:
        """Cornell above the sex's threshold (2.8 mV men, 2.0 mV women); None without the sex."""
        if self.sex not in CORNELL_MV:
            return None
        return bool(self.cornell_mv > CORNELL_MV[self.sex])


def measure_criteria(sig: np.ndarray, fs: float, sex: Optional[str] = None) -> ECGCriteria:
    """The criteria of a (12, T) ECG in mV, canonical lead order (raw or baseline-corrected: the
    median beat is band-passed anyway). A lead that is entirely NaN gives NaN amplitudes; other NaN
    samples are read as 0 mV."""
    x = np.asarray(sig, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != 12:
        raise ValueError(f"measure_criteria: expected a (12, T) signal, got {x.shape}")
    absent = np.all(~np.isfinite(x), axis=1)
    beat, n_beats = median_beat(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), fs, AMPLITUDE_LOWPASS_HZ)
    if n_beats == 0:
        nan12 = (float("nan"),) * 12
        return ECGCriteria(0, float("nan"), nan12, nan12, float("nan"), float("nan"), float("nan"), False, sex)
    on, off = qrs_bounds(beat, fs)
    b = beat - pr_baseline(beat, on, fs)
    qrs = b[:, on:off + 1]                                   # (12, W)
    r = np.maximum(qrs.max(axis=1), 0.0)
    s = np.maximum(-qrs.min(axis=1), 0.0)
    r[absent], s[absent] = np.nan, np.nan
    qrs_ms = (off - on) / fs * 1000.0
    lateral = _V5 if r[_V5] >= r[_V6] else _V6
    r_peak_ms = float(np.argmax(qrs[lateral])) / fs * 1000.0
    lbbb = bool(
        qrs_ms >= LBBB_QRS_MS
        and r[_I] > s[_I] and r[_V6] > s[_V6]                          # upright lateral QRS
        and not any(_initial_q(qrs[k]) for k in (_I, _V5, _V6))         # no septal q
        and r_peak_ms > LBBB_R_PEAK_MS                                  # delayed lateral activation
        and s[_V1] > r[_V1] and r[_V1] < s[_V1] / 3.0                  # QS or rS in V1
    )
    return ECGCriteria(
        n_beats=n_beats, qrs_ms=float(qrs_ms), r_mv=tuple(map(float, r)), s_mv=tuple(map(float, s)),
        sokolow_lyon_mv=float(s[_V1] + max(r[_V5], r[_V6])), cornell_mv=float(r[_AVL] + s[_V3]),
        r_peak_time_ms=r_peak_ms, lbbb=lbbb, sex=sex)


def _initial_q(lead_qrs: np.ndarray) -> bool:
    """The first deflection beyond the noise level after QRS onset is negative (a q wave)."""
    big = np.nonzero(np.abs(lead_qrs) > _Q_NOISE_MV)[0]
    return bool(len(big) and lead_qrs[big[0]] < 0)


def record_criteria(record, sex: Optional[str] = None) -> ECGCriteria:
    """measure_criteria of an e2r.ecg.ECGRecord (read_ecg's mV signal at its own rate)."""
    return measure_criteria(record.signal, float(record.fs), sex)
