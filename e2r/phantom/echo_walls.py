"""The LV wall each echo view cuts, moving with its segments' wall-motion scores (generator
version 2; e2r.phantom.echo_synth draws the contours returned here).

The LV is a prolate ellipsoid at end-diastole. In systole each AHA segment's endocardium moves
toward the long axis by a fraction of a normal segment's excursion (regional.SEGMENT_EXCURSION:
normal 1, hypokinetic 0.5, akinetic 0, dyskinetic outward), and toward the apex by the same
fraction of a normal segment's long-axis shortening. A normal segment shortens the short axis as
(V_es / V_ed) ** 0.39 and the long axis as ** 0.22 (version 1's split of the EF between the
axes: the long axis carries ~20 % of it). The normal amount is solved so that the 17 segments
together (each an equal share of the ellipsoid) eject exactly the exam's stroke volume: the global
volume curve (exam.lvef) and the regional motion agree, and a heart whose segments are all normal
contracts as version 1's. Each view's contour takes its wall's segments in regional.VIEW_SEGMENTS
order, interpolated along the wall, so an infarct moves only where the plane cuts it.

The epicardium follows from conservation of myocardial area (a wall that does not move inward
does not thicken; a dyskinetic one thins).

Single-plane apical bias: single-plane apical volumes overestimate the biplane Simpson volumes
and slightly underestimate the EF, more so in dilated and distorted ventricles (DEFIANT-II echo
substudy, 371 patients after an infarct: "Single-plane left ventricular volumes over-estimate
biplane Simpson's volumes and under-estimate ejection fraction, and these discrepancies are
amplified in dilated hearts with abnormal shape", PubMed 9717017). The abstract gives the
direction, not the size; the sizes below are the phantom's choice: the apical planes cut the LV
along a chord wider than its mean cross-section by APICAL_WIDENING_CM (an absolute amount, so the
smaller end-systolic section gains relatively more: volumes +10-30 %, EF 1-3 points lower) and
foreshorten the long axis by a fraction (the study's apical window in version 2 cohorts), both
growing with LV dilation and the WMSI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from e2r.phantom.regional import SEGMENT_EXCURSION, VIEW_SEGMENTS

# Short- and long-axis share of a normal segment's shortening (version 1's volume split).
_SHORT_EXP, _LONG_EXP = 0.39, 0.22
_APEX_ANCHOR = 0.1        # the point of the long axis that stays put in systole (fraction from the apex)
_N_POINTS = 73            # contour points

# Apical single-plane bias (phantom's choice within DEFIANT-II's direction, see module docstring).
APICAL_WIDENING_CM = (0.12, 0.25, 0.15)   # base, per unit of dilation, per WMSI point above 1
APICAL_FORESHORTENING = (0.0, 0.08, 0.06)  # uniform low, high, + per unit of dilation
APICAL_WINDOW_JITTER = 0.01                # per-clip change of a study's foreshortening (same window)
OFF_AXIS_FORESHORTENING = (0.08, 0.2)      # extra fraction of the long axis lost in an off-axis clip
NORMAL_EDV_ML = 130.0                      # dilation = max(0, lvedv / this - 1)


def _excursion(scores: Sequence[int]) -> np.ndarray:
    return np.array([SEGMENT_EXCURSION[int(s)] for s in scores], dtype=np.float64)


def _volume_ratio(exc: np.ndarray, q: float) -> float:
    """V_es / V_ed when a normal segment's volume ratio is q (each segment an equal share)."""
    sx = 1 - exc * (1 - q ** _SHORT_EXP)
    sl = 1 - exc * (1 - q ** _LONG_EXP)
    return float(np.mean(sx * sx * sl))


def normal_segment_ratio(scores: Sequence[int], lvef: float) -> float:
    """The volume ratio q of a normal segment that makes the 17 segments eject lvef (%), solved by
    bisection; clipped to [0.02, 1] when the scores cannot reach it."""
    exc = _excursion(scores)
    target = 1 - lvef / 100
    lo, hi = 0.02, 1.0
    if _volume_ratio(exc, lo) >= target:
        return lo
    if _volume_ratio(exc, hi) <= target:
        return hi
    for _ in range(50):
        mid = (lo + hi) / 2
        if _volume_ratio(exc, mid) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def segmental_lvef(scores: Sequence[int], normal_lvef: float) -> float:
    """The EF (%) of a heart whose normal segments contract as in a normal heart of normal_lvef
    and the others by their scores (about normal_lvef x the mean excursion, as latent_v2 draws)."""
    return 100 * (1 - _volume_ratio(_excursion(scores), 1 - normal_lvef / 100))


@dataclass(frozen=True)
class LVContours:
    """The LV in one view, as offsets (cm) from a fixed centre in the view's LV frame: `across`
    the long axis (negative = the view's first wall in VIEW_SEGMENTS order) and `along` it (toward
    the base); (F, M) per frame and contour point. `length` = apex-to-base-centre distance and
    `width` = widest cavity, per frame (for the structures drawn around the LV)."""

    centre_along: float        # centre's distance from the ED apex along the long axis, cm
    endo_across: np.ndarray
    endo_along: np.ndarray
    epi_across: np.ndarray
    epi_along: np.ndarray
    length: np.ndarray
    width: np.ndarray


def _epicardium(across, along, h_ed, fixed: np.ndarray | None = None):
    """Epicardial contour by conservation of wall area along each ray from the centre."""
    r = np.hypot(across, along)
    r_ed = r[:1]
    big_r = np.sqrt(np.maximum(r ** 2 + (r_ed + h_ed) ** 2 - r_ed ** 2, 1e-6))
    if fixed is not None:                # these points keep their end-diastolic epicardium
        big_r = np.where(fixed, r_ed + h_ed, big_r)
    scale = big_r / np.maximum(r, 1e-6)
    return across * scale, along * scale


def apical_contours(scores: Sequence[int], view: str, q: float, l_ed: float, d_ed: float,
                    contraction: np.ndarray, h_first: float, h_second: float,
                    widening_cm: float = 0.0, foreshortening: float = 0.0,
                    oblique: float = 1.0) -> LVContours:
    """A4C / A2C: the two walls of VIEW_SEGMENTS[view] (base -> apex -> base) and the apex.

    widening_cm: the plane's chord beyond the true half-width (single-plane bias); foreshortening:
    fraction of the long axis lost; oblique: across scale of an off-centre cut (1 = through the axis).
    """
    exc = _excursion(scores)[list(VIEW_SEGMENTS[view])]
    psi = np.linspace(-np.pi, np.pi, _N_POINTS)      # 0 = apex, -pi/+pi = base; < 0 first wall
    g = (1 - np.cos(psi)) / 2                         # 0 at the apex, 1 at the base
    s = np.sign(psi) * g
    knots = [-0.85, -0.55, -0.25, 0.0, 0.25, 0.55, 0.85]   # basal, mid, apical, apex, ... centres
    e = np.interp(s, knots, exc)[None]                # (1, M)
    c = np.asarray(contraction, dtype=np.float64)[:, None]
    sx = 1 - e * (1 - q ** _SHORT_EXP) * c
    sl = 1 - e * (1 - q ** _LONG_EXP) * c
    u0 = _APEX_ANCHOR * l_ed
    along = (u0 + (l_ed * g[None] - u0) * sl) * (1 - foreshortening)
    across = (oblique * d_ed / 2 * sx + widening_cm) * np.sin(psi)[None]
    centre = (1 - foreshortening) * l_ed / 2
    along = along - centre
    h_apex = 0.35 * (h_first + h_second)
    h = np.interp(s, [-1.0, -0.25, 0.0, 0.25, 1.0], [h_first, h_first, h_apex, h_second, h_second])[None] / oblique
    epi_x, epi_y = _epicardium(across, along, h)
    return LVContours(centre_along=centre, endo_across=across, endo_along=along, epi_across=epi_x,
                      epi_along=epi_y, length=along[:, -1] + centre, width=2 * np.abs(across).max(axis=1))


def plax_contours(scores: Sequence[int], q: float, half_len: float, d_ed: float,
                  contraction: np.ndarray, h_septum: float, h_posterior: float,
                  oblique: float = 1.0) -> LVContours:
    """PLAX: the anteroseptal wall on top and the inferolateral wall below (basal near the aortic
    root, mid toward the apex, which is off to the left). `across` is depth (negative = septum),
    `along` runs toward the base (right). The septum's RV side stays put (its RVOT border)."""
    exc = _excursion(scores)
    basal_as, mid_as, basal_il, mid_il = exc[list(VIEW_SEGMENTS["PLAX"])]
    psi = np.linspace(-np.pi, np.pi, _N_POINTS)      # < 0: septum (up), > 0: posterior wall
    g = (1 + np.cos(psi)) / 2                         # 0 apex end (left), 1 base (right)
    top = psi < 0
    e = np.where(top, np.interp(g, [0.45, 0.8], [mid_as, basal_as]),
                 np.interp(g, [0.45, 0.8], [mid_il, basal_il]))[None]
    c = np.asarray(contraction, dtype=np.float64)[:, None]
    sx = 1 - e * (1 - q ** _SHORT_EXP) * c
    sl = 1 - e * (1 - q ** _LONG_EXP) * c
    along = half_len * np.cos(psi)[None] * sl
    across = oblique * d_ed / 2 * np.sin(psi)[None] * sx
    sin = np.sin(psi)
    h = (h_septum * np.maximum(-sin, 0) + h_posterior * np.maximum(sin, 0) + 0.3 * (1 - np.abs(sin)))[None] / oblique
    epi_x, epi_y = _epicardium(across, along, h, fixed=top[None])
    return LVContours(centre_along=0.0, endo_across=across, endo_along=along, epi_across=epi_x,
                      epi_along=epi_y, length=2 * along.max(axis=1), width=2 * np.abs(across).max(axis=1))


# PSAX (mid-papillary): the six mid segments around the ring. The phantom's PSAX has the RV and
# septum toward the upper left (direction -120 deg, image y down); the anteroseptal and
# inferoseptal segments flank that direction and the ring runs clockwise on screen
# anterior -> anterolateral -> inferolateral -> inferior -> inferoseptal -> anteroseptal, as in
# the standard display (ASE 2015, Figure 6), rotated with the phantom's RV.
_PSAX_SEPTUM = np.arctan2(-0.866, -0.5)
_PSAX_CENTRES = {6: -30.0, 7: -90.0, 8: -150.0, 9: 150.0, 10: 90.0, 11: 30.0}   # degrees, atan2(y, x)


def psax_contours(scores: Sequence[int], q: float, d_ed: float, contraction: np.ndarray,
                  h_septum: float, h_free: float, oblique: float = 1.0) -> LVContours:
    """PSAX: the mid ring; `across` = image x, `along` = image y (down). oblique > 1 stretches
    the ring along x (a plane cut obliquely through the LV)."""
    exc = _excursion(scores)
    segs = sorted(_PSAX_CENTRES, key=lambda k: _PSAX_CENTRES[k])
    ang = np.deg2rad([_PSAX_CENTRES[k] for k in segs])
    phi = np.linspace(-np.pi, np.pi, _N_POINTS)
    e = np.interp(phi, ang, exc[segs], period=2 * np.pi)[None]
    c = np.asarray(contraction, dtype=np.float64)[:, None]
    r = d_ed / 2 * (1 - e * (1 - q ** _SHORT_EXP) * c)
    across, along = oblique * r * np.cos(phi)[None], r * np.sin(phi)[None]
    h = (h_free + (h_septum - h_free) * np.maximum(0.0, np.cos(phi - _PSAX_SEPTUM)) ** 2)[None]
    epi_x, epi_y = _epicardium(across, along, h)
    return LVContours(centre_along=0.0, endo_across=across, endo_along=along, epi_across=epi_x,
                      epi_along=epi_y, length=2 * np.abs(along).max(axis=1), width=2 * np.abs(across).max(axis=1))


def apical_bias(lvedv: float, scores: Sequence[int], rng: np.random.Generator,
                off_axis: bool = False, window: float | None = None) -> tuple[float, float]:
    """Per-clip (widening_cm, foreshortening) of an apical view (module docstring).

    window: the study's apical foreshortening (Exam.apical_foreshortening, latent_v2): the
    foreshortening comes from the intercostal space the apex is imaged from, so the study's apical
    clips share it and only APICAL_WINDOW_JITTER varies per clip; None draws it per clip."""
    dilation = max(0.0, lvedv / NORMAL_EDV_ML - 1.0)
    distortion = float(np.mean(scores)) - 1.0 if len(scores) else 0.0
    base, per_dil, per_wmsi = APICAL_WIDENING_CM
    widening = max(0.0, base + per_dil * dilation + per_wmsi * distortion + float(rng.normal(0, 0.03)))
    lo, hi, f_dil = APICAL_FORESHORTENING
    if window is None:
        fore = float(rng.uniform(lo, hi)) + f_dil * dilation
    else:
        jitter = float(rng.uniform(-APICAL_WINDOW_JITTER, APICAL_WINDOW_JITTER))
        fore = max(0.0, window + jitter) + f_dil * dilation
    if off_axis:
        fore += float(rng.uniform(*OFF_AXIS_FORESHORTENING))
    return widening, min(fore, 0.4)
