"""Measurements a reader would make on the written files: ECG intervals and voltages from the
signal, LV area change / wall thickness / chamber areas from echo pixels.

They know nothing of the latent hearts; `check` correlates them with the phenotypes to show the
cohort carries the morphology it claims. `lv_function_by_view` (area change, or PLAX fractional
shortening) is the per-view figure by which an infarct shows only in the views that cut its
territory (generator version 2).
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


@dataclass(frozen=True)
class EchoGeometry:
    """Where the probe is and how big a pixel is (from the DICOM ultrasound region)."""

    apex_x: float     # probe column, pixels
    apex_y: float     # probe row, pixels
    cm_per_px: float


def sector_mask(frames: np.ndarray) -> np.ndarray:
    """Pixels inside the ultrasound sector: above the black surround (tolerating JPEG ringing),
    eroded so the sector's edge is not taken for a blood pool."""
    inside = ndimage.gaussian_filter(frames.max(axis=0).astype(np.float32), 1.0) > 12
    # Blood pools can be as black as the surround: fill them in (they are enclosed by tissue).
    inside = ndimage.binary_fill_holes(inside)
    return ndimage.binary_erosion(inside, iterations=2)


def _dark_components(frame: np.ndarray, sector: np.ndarray, min_px: int) -> tuple[np.ndarray, int]:
    """Label blood pools: smoothed pixels clearly darker than the tissue inside the sector."""
    sm = ndimage.gaussian_filter(frame.astype(np.float32), 1.2)
    # Log compression turns gain into an offset: blood sits ~60 grey levels under tissue at any
    # gain, so the threshold is set relative to the darkest pixels (the pools themselves).
    vals = sm[sector]
    blood, tissue = np.percentile(vals, [5, 60])
    thr = float(blood + 0.4 * (tissue - blood))
    dark = (sm < thr) & sector
    dark = ndimage.binary_opening(dark, iterations=1)
    lab, n = ndimage.label(dark)
    if n:
        sizes = ndimage.sum_labels(np.ones_like(lab), lab, index=np.arange(1, n + 1))
        for i, size in enumerate(sizes, start=1):
            if size < min_px:
                lab[lab == i] = 0
    return lab, n


def _component_near(lab: np.ndarray, n: int, geo: EchoGeometry, target_cm: tuple[float, float],
                    radius_cm: float = 0.0) -> np.ndarray | None:
    """The labelled pool whose centroid is nearest to (lateral, depth) cm from the probe; with
    radius_cm, the largest pool whose centroid lies within that distance (nearest as fallback)."""
    best, best_d, big, big_area = None, np.inf, None, 0
    for i in range(1, n + 1):
        mask = lab == i
        area = int(mask.sum())
        if not area:
            continue
        ys, xs = np.nonzero(mask)
        cx = (xs.mean() - geo.apex_x) * geo.cm_per_px
        cy = (ys.mean() - geo.apex_y) * geo.cm_per_px
        d = np.hypot(cx - target_cm[0], cy - target_cm[1])
        if d < best_d:
            best, best_d = mask, d
        if d <= radius_cm and area > big_area:
            big, big_area = mask, area
    return big if big is not None else best


# Where a reader expects the LV cavity centre in each view (lateral, depth from the probe, cm).
_LV_TARGET = {"A4C": (2.0, 6.5), "A2C": (0.0, 6.0), "PLAX": (-1.0, 7.0), "PSAX": (0.5, 7.5)}


def lv_area_curve(frames: np.ndarray, view: str, geo: EchoGeometry) -> np.ndarray:
    """LV cavity area (cm^2) per frame: the blood pool nearest the expected LV in the first frame,
    then tracked frame to frame as the pool overlapping most with the previous frame's LV."""
    return np.asarray([0.0 if m is None else m.sum() * geo.cm_per_px ** 2 for m in lv_masks(frames, view, geo)])


def lv_masks(frames: np.ndarray, view: str, geo: EchoGeometry) -> list[np.ndarray | None]:
    """The LV cavity's pixel mask per frame (None where no pool was found), tracked as in
    lv_area_curve."""
    sector = sector_mask(frames)
    min_px = int(0.8 / geo.cm_per_px ** 2)
    masks, prev = [], None
    for frame in frames:
        lab, n = _dark_components(frame, sector, min_px)
        mask = None
        if prev is not None:
            hits = np.bincount(lab[prev], minlength=n + 1)
            hits[0] = 0
            if hits.max() > 0:
                mask = lab == int(np.argmax(hits))
                if mask.sum() < 0.3 * prev.sum():
                    mask = None  # lost the cavity (a fragment): look for it afresh
        if mask is None:
            mask = _component_near(lab, n, geo, _LV_TARGET[view], radius_cm=3.5)
        if mask is not None:
            prev = mask
        masks.append(mask)
    return masks


def fractional_area_change(frames: np.ndarray, view: str, geo: EchoGeometry) -> float:
    """(max - min) / max of the LV cavity area over the clip (95th/5th percentiles, robust to a
    frame where segmentation slips)."""
    a = lv_area_curve(frames, view, geo)
    a = a[a > 0]
    if len(a) < 3:
        return float("nan")
    hi, lo = np.percentile(a, 95), np.percentile(a, 5)
    return float((hi - lo) / hi)


def plax_fractional_shortening(frames: np.ndarray, geo: EchoGeometry) -> float:
    """PLAX fractional shortening: (LVIDd - LVIDs) / LVIDd, the LV cavity's depth extent in the
    columns through its mid part (0.3-0.6 of its length from the apical end, right of which the
    cavity may run into the LVOT) per frame, 95th/5th percentiles over the clip."""
    dims = []
    for mask in lv_masks(frames, "PLAX", geo):
        if mask is None:
            continue
        ys, xs = np.nonzero(mask)
        lo, hi = xs.min() + 0.3 * (xs.max() - xs.min()), xs.min() + 0.6 * (xs.max() - xs.min())
        depth = [np.ptp(ys[xs == c]) + 1 for c in range(int(np.ceil(lo)), int(hi) + 1) if np.any(xs == c)]
        if depth:
            dims.append(float(np.median(depth)) * geo.cm_per_px)
    if len(dims) < 3:
        return float("nan")
    hi_d, lo_d = np.percentile(dims, 95), np.percentile(dims, 5)
    return float((hi_d - lo_d) / hi_d)


def lv_function_by_view(frames: np.ndarray, view: str, geo: EchoGeometry) -> float:
    """What a reader takes as the LV's systolic function from one clip of a view: fractional
    area change in A4C / A2C / PSAX, fractional shortening in PLAX."""
    if view == "PLAX":
        return plax_fractional_shortening(frames, geo)
    return fractional_area_change(frames, view, geo)


def plax_septum_mm(frames: np.ndarray, geo: EchoGeometry) -> float:
    """Interventricular septal thickness at end-diastole from a PLAX clip, mm.

    End-diastole = frame with the largest LV cavity. In columns through the mid-LV the septum is
    the tissue between the top edge of the LV pool and the bottom edge of the pool above it (the
    RVOT); the median over 5 columns is returned (NaN when no RVOT lies within 3 cm).
    """
    sector = sector_mask(frames)
    min_px = int(0.8 / geo.cm_per_px ** 2)
    best_area, best = 0, None
    for frame in frames[:: max(1, len(frames) // 12)]:
        lab, n = _dark_components(frame, sector, min_px)
        mask = _component_near(lab, n, geo, _LV_TARGET["PLAX"], radius_cm=3.5)
        if mask is not None and mask.sum() > best_area:
            best_area, best = mask.sum(), (lab, mask)
    if best is None:
        return float("nan")
    lab, mask = best
    ys, xs = np.nonzero(mask)
    # Columns through the mid-LV, left of the LVOT (the cavity may connect to the aortic root).
    mid = int(round(xs.min() + 0.4 * (xs.max() - xs.min())))
    reach = int(3.0 / geo.cm_per_px)
    gaps = []
    for col in range(mid - 2, mid + 3):
        rows = ys[xs == col]
        if len(rows) == 0:
            continue
        top = int(rows.min())
        above = (lab[max(0, top - reach):top, col] > 0) & ~mask[max(0, top - reach):top, col]
        hit = np.nonzero(above[::-1])[0]
        if len(hit):
            gaps.append(hit[0])
    if not gaps:
        return float("nan")
    return float(np.median(gaps) * geo.cm_per_px * 10)


def pool_area_near(frames: np.ndarray, geo: EchoGeometry, target_cm: tuple[float, float]) -> float:
    """Mean area (cm^2, over 8 frames) of the blood pool nearest (lateral, depth) cm from the probe."""
    sector = sector_mask(frames)
    min_px = int(0.5 / geo.cm_per_px ** 2)
    areas = []
    for frame in frames[:: max(1, len(frames) // 8)]:
        lab, n = _dark_components(frame, sector, min_px)
        mask = _component_near(lab, n, geo, target_cm)
        areas.append(0.0 if mask is None else float(mask.sum() * geo.cm_per_px ** 2))
    return float(np.mean(areas))
