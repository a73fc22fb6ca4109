"""Phantom generator version 2, echo side: each view draws the LV wall it cuts with that wall's
motion, apical views carry the single-plane bias, clips come in three qualities, and a version 1
exam still renders version 1's pixels."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from e2r.phantom import echo_walls
from e2r.phantom.echo_synth import QUALITIES, VIEWS, render_view
from e2r.phantom.latent import draw_baseline_exam
from e2r.phantom.measure import EchoGeometry, lv_function_by_view
from e2r.phantom.regional import (
    AKINETIC,
    NORMAL,
    SEGMENT_EXCURSION,
    TERRITORY_SEGMENTS,
    VIEW_SEGMENTS,
)

INTRINSIC_EF = 62.0


def _heart(seed: int, **changes):
    base = draw_baseline_exam(np.random.default_rng(seed))
    fixed = dict(rhythm="sinus", heart_rate=70.0, ivsd=9.0, lvpwd=9.0)
    return replace(base, **{**fixed, **changes})


def _with_infarct(exam, territory: str):
    """All segments of the territory akinetic; the EF follows the segments as latent_v2 draws it
    (intrinsic EF x mean excursion)."""
    scores = [NORMAL] * 17
    for seg in TERRITORY_SEGMENTS.get(territory, ()):
        scores[seg] = AKINETIC
    lvef = INTRINSIC_EF * float(np.mean([SEGMENT_EXCURSION[s] for s in scores]))
    return replace(exam, wall_motion=tuple(scores), territory=territory, lvef=lvef,
                   lvesv=exam.lvedv * (1 - lvef / 100))


def _function(exam, view: str, seed: int, quality: str = "good") -> float:
    vid = render_view(exam, view, np.random.default_rng(seed), size=96, n_frames=16, fps=25.0, quality=quality)
    return lv_function_by_view(vid.frames, view, EchoGeometry(vid.apex[0], vid.apex[1], vid.pixel_spacing_cm))


def test_infarct_shows_only_in_the_views_that_cut_it() -> None:
    """Four hearts, each rendered with no infarct and with an akinetic LAD / LCx / RCA territory
    (same acquisition): the LV function measured from the pixels (area change; PLAX fractional
    shortening) drops clearly in every view that cuts the territory and stays put in the two that
    do not (LCx in A2C, RCA in PLAX)."""
    drops: dict[tuple[str, str], list[float]] = {}
    for k, (seed, edv) in enumerate(((1, 110.0), (2, 130.0), (3, 95.0), (4, 150.0))):
        heart = _heart(seed, lvedv=edv)
        for view in VIEWS:
            ref = _function(_with_infarct(heart, "none"), view, 100 + k)
            for territory in TERRITORY_SEGMENTS:
                f = _function(_with_infarct(heart, territory), view, 100 + k)
                drops.setdefault((territory, view), []).append(1 - f / ref)
    for (territory, view), d in drops.items():
        cut = set(TERRITORY_SEGMENTS[territory]) & set(VIEW_SEGMENTS[view])
        if cut:
            assert np.mean(d) > 0.15, (territory, view, d)
        else:
            assert abs(np.mean(d)) < 0.08, (territory, view, d)


def test_global_volume_curve_agrees_with_the_segments() -> None:
    """The regional motion ejects exactly the exam's EF; all-normal segments contract as version 1
    (a normal segment's volume ratio = 1 - EF); a territory infarct with the EF that follows from
    its segments leaves the normal segments' motion as a normal heart's."""
    normal = (NORMAL,) * 17
    assert echo_walls.normal_segment_ratio(normal, 60.0) == pytest.approx(0.40, abs=1e-6)
    for territory in TERRITORY_SEGMENTS:
        scores = _with_infarct(_heart(1), territory).wall_motion
        for ef in (25.0, 40.0, 55.0):
            q = echo_walls.normal_segment_ratio(scores, ef)
            assert echo_walls._volume_ratio(echo_walls._excursion(scores), q) == pytest.approx(1 - ef / 100, abs=1e-6)
        lvef = echo_walls.segmental_lvef(scores, 62.0)
        assert echo_walls.normal_segment_ratio(scores, lvef) == pytest.approx(0.38, abs=1e-6)
        # latent_v2's rule (intrinsic EF x mean excursion) is close to the rendering's own.
        assert abs(lvef - _with_infarct(_heart(1), territory).lvef) < 3.0


def _area_length(across: np.ndarray, along: np.ndarray, length: float) -> float:
    """Single-plane area-length volume (mL) of a closed contour (cm): 8 A^2 / (3 pi L)."""
    area = 0.5 * abs(np.dot(across, np.roll(along, 1)) - np.dot(along, np.roll(across, 1)))
    return 8 * area ** 2 / (3 * np.pi * length)


@pytest.mark.parametrize("territory", ["none", "LAD"])
def test_apical_single_plane_bias(territory: str) -> None:
    """DEFIANT-II's direction: the apical single-plane volumes (area-length on the drawn contour)
    exceed those of the same heart cut through its true axis, the EF is slightly lower, and the
    volume gap grows with dilation."""
    gaps = {}
    for edv in (100.0, 250.0):
        vol_gap, ef_gap = [], []
        for seed in range(6):
            exam = _with_infarct(_heart(seed, lvedv=edv), territory)
            scores = exam.wall_motion
            q = echo_walls.normal_segment_ratio(scores, exam.lvef)
            l_ed = (6 * edv * exam.sphericity ** 2 / np.pi) ** (1 / 3)
            d_ed = np.sqrt(6 * edv / (np.pi * l_ed))
            widening, fore = echo_walls.apical_bias(edv, scores, np.random.default_rng(seed))
            c = np.array([0.0, 1.0])
            for view in ("A4C", "A2C"):
                true = echo_walls.apical_contours(scores, view, q, l_ed, d_ed, c, 0.9, 0.9)
                seen = echo_walls.apical_contours(scores, view, q, l_ed, d_ed, c, 0.9, 0.9,
                                                  widening_cm=widening, foreshortening=fore)
                v_true = [_area_length(true.endo_across[k], true.endo_along[k], true.length[k]) for k in (0, 1)]
                v_seen = [_area_length(seen.endo_across[k], seen.endo_along[k], seen.length[k]) for k in (0, 1)]
                vol_gap.append(v_seen[0] / v_true[0] - 1)
                ef_gap.append((1 - v_seen[1] / v_seen[0]) - (1 - v_true[1] / v_true[0]))
        assert min(vol_gap) > 0.0
        assert -0.06 < np.mean(ef_gap) < 0.0
        gaps[edv] = np.mean(vol_gap)
    assert gaps[250.0] > gaps[100.0] + 0.01


def test_quality_variants_differ_and_decode(tmp_path: Path) -> None:
    """off_axis and poor clips differ from the good one of the same acquisition, keep the frame
    format, still show a measurable LV (off_axis), and write and read back as DICOM."""
    import pydicom

    from e2r.phantom.writers import EchoSeriesMeta, write_echo_dicom

    exam = _with_infarct(_heart(5, lvedv=120.0), "LCx")
    clips = {q: render_view(exam, "A4C", np.random.default_rng(9), size=96, n_frames=8, fps=25.0, quality=q)
             for q in QUALITIES}
    good = clips["good"].frames.astype(np.float32)
    for q in ("off_axis", "poor"):
        frames = clips[q].frames
        assert frames.shape == good.shape and frames.dtype == np.uint8
        assert np.abs(frames.astype(np.float32) - good).mean() > 5.0
    def spread(frames):                 # tissue-blood contrast inside the sector
        lo, hi = np.percentile(frames[frames > 0], [10, 90])
        return hi - lo

    assert spread(clips["poor"].frames) < 0.85 * spread(clips["good"].frames)
    assert np.isfinite(_function(exam, "A4C", 9, quality="off_axis"))
    for k, (q, vid) in enumerate(clips.items(), start=1):
        meta = EchoSeriesMeta(patient_id="p1", patient_sex="M", patient_age=60, study_uid="1.2.3",
                              series_uid=f"1.2.3.{k}", sop_uid=f"1.2.3.{k}.1", study_id="1",
                              study_date="20200101", series_number=k, view="A4C", fps=vid.fps,
                              pixel_spacing_cm=vid.pixel_spacing_cm, region=vid.region, apex=vid.apex)
        path = tmp_path / f"{q}.dcm"
        write_echo_dicom(path, vid.frames, meta, compressed=True)
        assert pydicom.dcmread(path).pixel_array.shape == vid.frames.shape
    with pytest.raises(ValueError, match="quality"):
        render_view(exam, "A4C", np.random.default_rng(0), quality="blurry")


# Version 1 clips (empty wall_motion, good quality) of the committed generator: mean and SD of the
# pixels, and the generator's next draw after the four views (the RNG consumed exactly as before).
_V1_PINS = {
    5: ({"A4C": (38.1218, 61.3665), "A2C": (47.7024, 69.6523), "PLAX": (38.138, 65.7981),
         "PSAX": (54.0859, 72.9212)}, 0.9449785030070332),
    6: ({"A4C": (35.5191, 61.5144), "A2C": (43.2236, 66.2498), "PLAX": (27.1089, 54.3347),
         "PSAX": (49.1019, 71.6856)}, 0.6874192382716385),
}


@pytest.mark.parametrize("seed", sorted(_V1_PINS))
def test_version1_clips_unchanged(seed: int) -> None:
    pins, next_draw = _V1_PINS[seed]
    rng = np.random.default_rng(seed)
    exam = draw_baseline_exam(rng)
    assert exam.wall_motion == ()
    for view in VIEWS:
        f = render_view(exam, view, rng, size=64, n_frames=8).frames.astype(np.float64)
        assert (f.mean(), f.std()) == pytest.approx(pins[view], abs=2e-3), view
    assert rng.random() == next_draw


def test_check_reports_the_regional_drop_by_view() -> None:
    """check.py's version 2 figure: records carrying a territory give the (territory, view) table
    and the cut-minus-uncut gap; version 1 records (no territory) add no figure."""
    from e2r.phantom.check import _regional_figures, regional_function_table

    drop = {("LAD", "A2C"): 0.5, ("LCx", "A4C"): 0.4, ("LCx", "A2C"): 0.0, ("RCA", "PLAX"): 0.0}
    echo: dict[str, list[dict]] = {}
    for view in ("A4C", "A2C", "PLAX"):
        for territory in ("none", "LAD", "LCx", "RCA"):
            for k in range(3):
                f = 0.5 * (1 - (0.0 if territory == "none" else drop.get((territory, view), 0.3))) + 0.001 * k
                echo.setdefault(view, []).append({"territory": territory, "lv_function": f})
    table = regional_function_table(echo)
    assert table[("LCx", "A2C")][0] == pytest.approx(0.0, abs=0.01)
    assert table[("LAD", "A2C")][0] == pytest.approx(0.5, abs=0.01)
    (fig,) = _regional_figures(echo)
    assert fig.name == "regional_drop_cut_minus_uncut_views" and fig.passed and fig.value > 0.25
    assert _regional_figures({"A4C": [{"fac": 0.5}] * 5}) == []
