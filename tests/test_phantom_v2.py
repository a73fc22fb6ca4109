"""Phantom generator version 2: regional LV function in the latent heart, archive-like studies,
and version 1 kept byte-identical (issue 21)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from e2r.cli import app
from e2r.errors import ConfigError
from e2r.phantom import latent_v2, write_cohort
from e2r.phantom.latent_v2 import AETIOLOGIES, AETIOLOGY_PROBS, INTRINSIC_EF_RANGE, mean_excursion
from e2r.phantom.regional import NORMAL, SEGMENTS, TERRITORIES, TERRITORY_SEGMENTS, wmsi
from e2r.phenotypes import parse_territory, read_phenotypes

SMALL = {"size": 48, "frames": 8, "workers": 1}


def _aetiology(territory: str) -> str:
    return territory if territory in ("none", "global") else "ischaemic"


def _check_exam(e) -> None:
    """One v2 exam is self-consistent: EF from the segments, wmsi, territory, volumes."""
    scores = e.wall_motion
    assert len(scores) == len(SEGMENTS) and set(scores) <= {1, 2, 3, 4}
    # LVEF = intrinsic normal EF x mean excursion: the implied intrinsic EF lies in its range.
    intrinsic = e.lvef / mean_excursion(scores)
    assert INTRINSIC_EF_RANGE[0] - 1e-9 <= intrinsic <= INTRINSIC_EF_RANGE[1] + 1e-9
    assert abs(e.lvesv - e.lvedv * (1 - e.lvef / 100)) < 1e-6
    assert 1.0 <= wmsi(scores) <= 4.0
    assert parse_territory(e.territory) == e.territory  # canonical label
    abnormal = {i for i, s in enumerate(scores) if s != NORMAL}
    if e.territory == "none":
        assert not abnormal and wmsi(scores) == 1.0
    elif e.territory == "global":
        assert len(abnormal) >= latent_v2.MIN_GLOBAL_ABNORMAL
    else:
        named = e.territory.split("+")
        # abnormal segments lie in the named territories, and each named one has some
        assert abnormal <= {s for t in named for s in TERRITORY_SEGMENTS[t]}
        assert all(abnormal & set(TERRITORY_SEGMENTS[t]) for t in named)


def test_v2_latent_is_self_consistent_and_repeats_keep_the_wall_motion() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        base = latent_v2.draw_baseline_exam(rng)
        _check_exam(base)
        again = latent_v2.draw_repeat_exam(rng, base, 200)
        _check_exam(again)
        assert again.territory == base.territory
        assert sum(a != b for a, b in zip(base.wall_motion, again.wall_motion)) <= 1
        assert abs(again.lvef - base.lvef) < 15


def test_v2_shape_traits_follow_their_evidence_and_version_1_has_none() -> None:
    """latent_v2's shape traits: the LA's AP diameter tracks its volume about as loosely as on CT
    (Mahabadi 2010, r = 0.67); the PSAX RV and the PLAX/PSAX LV diameter vary on their own; a repeat
    keeps the heart's traits and draws a new apical window; version 1 exams carry none."""
    from e2r.phantom import latent

    rng = np.random.default_rng(1)
    exams = [latent_v2.draw_baseline_exam(rng) for _ in range(2000)]
    la = np.array([e.la_volume for e in exams])
    la_d = (6 * la / (np.pi * 1.3)) ** (1 / 3)
    r_ap = np.corrcoef(la_d * np.array([e.la_ap_ratio for e in exams]), la)[0, 1]
    assert 0.6 < r_ap < 0.8
    assert 0.1 < np.log([e.rv_psax_ratio for e in exams]).std() < 0.2
    assert 0.04 < np.log([e.lv_linear_ratio for e in exams]).std() < 0.1
    windows = [e.apical_foreshortening for e in exams]
    assert 0.0 <= min(windows) and max(windows) <= latent_v2.APICAL_WINDOW[1]
    again = latent_v2.draw_repeat_exam(rng, exams[0], 100)
    assert (again.la_ap_ratio, again.rv_psax_ratio, again.lv_linear_ratio) == (
        exams[0].la_ap_ratio, exams[0].rv_psax_ratio, exams[0].lv_linear_ratio)
    assert again.apical_foreshortening != exams[0].apical_foreshortening
    v1 = latent.draw_baseline_exam(np.random.default_rng(1))
    assert (v1.la_ap_ratio, v1.rv_psax_ratio, v1.lv_linear_ratio, v1.apical_foreshortening) == (1.0, 1.0, 1.0, None)


def test_infarct_order_covers_each_territory() -> None:
    assert {t: sorted(o) for t, o in latent_v2.INFARCT_ORDER.items()} == {
        t: sorted(s) for t, s in TERRITORY_SEGMENTS.items()}


def test_v2_aetiology_shares_near_the_chosen_prevalences() -> None:
    rng = np.random.default_rng(1)
    exams = [latent_v2.draw_baseline_exam(rng) for _ in range(600)]
    kinds = np.array([_aetiology(e.territory) for e in exams])
    for kind, p in zip(AETIOLOGIES, AETIOLOGY_PROBS):
        assert abs(np.mean(kinds == kind) - p) < 0.05, (kind, np.mean(kinds == kind))
    ef = np.array([e.lvef for e in exams])
    # Coronary disease causes about half of reduced EF (ESC-HF-LT 49 %, Swedish HF registry 60 %).
    assert 0.3 < np.mean(kinds[ef < 40] == "ischaemic") < 0.8
    assert np.all(ef[kinds == "none"] >= INTRINSIC_EF_RANGE[0] - 1e-9)
    assert ef[kinds == "ischaemic"].mean() < ef[kinds == "none"].mean() - 8
    # Dilation follows the EF (version 1's remodelling).
    edv = np.array([e.lvedv for e in exams])
    assert edv[ef < 40].mean() > edv[ef >= 50].mean() + 20
    culprits = [e.territory.split("+")[0] for e in exams if _aetiology(e.territory) == "ischaemic"]
    assert culprits.count("LAD") > culprits.count("LCx") and set(culprits) <= set(TERRITORIES)


# ---- version 1 stays byte-identical ----

# write_cohort(DIR, patients=6, seed=3, progress=False) on the code before version 2 existed.
V1_PHENOTYPES_SHA256 = "900103f46ec15b11cbd4b2e9f828bc13f3636109accf434e56dc68e4085c875a"
V1_PAIRS_SHA256 = "975cbddb32d6cbbf9457a2bd984ae8ad6a4ac90c2b78e4f912cce544c5766ac4"


def test_version_1_csvs_are_unchanged(tmp_path: Path) -> None:
    write_cohort(tmp_path / "v1", patients=6, seed=3, progress=False)  # default size: draws depend on it
    digest = {n: hashlib.sha256((tmp_path / "v1" / n).read_bytes()).hexdigest() for n in ("phenotypes.csv", "pairs.csv")}
    assert digest == {"phenotypes.csv": V1_PHENOTYPES_SHA256, "pairs.csv": V1_PAIRS_SHA256}
    manifest = json.loads((tmp_path / "v1" / "manifest.json").read_text())
    assert manifest["version"] == "1.0.0" and "version" not in manifest["options"]
    assert "clip_quality" not in manifest["counts"]


# ---- a version 2 cohort, end to end ----

@pytest.fixture(scope="module")
def v2_cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("phantom_v2") / "cohort"
    write_cohort(out, 8, seed=5, version=2, **SMALL)
    return out


def test_v2_cohort_phenotypes_read_back_with_wmsi_and_territory(v2_cohort: Path) -> None:
    manifest = json.loads((v2_cohort / "manifest.json").read_text())
    assert manifest["version"] == "2.0.0"
    qualities = manifest["counts"]["clip_quality"]
    assert set(qualities) == {"good", "off_axis", "poor"} and sum(qualities.values()) == manifest["counts"]["videos"]
    header = (v2_cohort / "phenotypes.csv").read_text().splitlines()[0].split(",")
    assert header[-2:] == ["wmsi", "territory"]
    phen, errors = read_phenotypes(v2_cohort / "phenotypes.csv")
    assert not errors and len(phen) == manifest["counts"]["studies"]
    for row in phen.values():
        assert 1.0 <= row["wmsi"] <= 4.0 and row["territory"] is not None
        assert (row["wmsi"] == 1.0) == (row["territory"] == "none")
        assert abs(row["lvesv"] - row["lvedv"] * (1 - row["lvef"] / 100)) < 0.15  # rounded to 0.1


def test_v2_study_composition_is_archive_like() -> None:
    from e2r.phantom.cohort import _compose_study

    rng = np.random.default_rng(2)
    studies = [_compose_study(rng) for _ in range(400)]
    clips = [c for s in studies for c in s]
    per_study = np.array([len(s) for s in studies])
    assert per_study.min() >= 1 and 3.5 < per_study.mean() < 5.0
    assert np.mean([len({v for v, _ in s}) < 4 for s in studies]) > 0.3                 # missing views
    assert np.mean([len({v for v, _ in s}) < len(s) for s in studies]) > 0.2           # repeats of a view
    assert 0.15 < np.mean([q != "good" for _, q in clips]) < 0.4                       # off-axis or poor


def test_v2_clip_quality_reaches_render_view_when_it_takes_it(monkeypatch) -> None:
    """The composition's quality goes to echo_synth.render_view once it has the keyword."""
    import inspect

    from e2r.phantom import cohort
    from e2r.phantom.echo_synth import render_view

    if "quality" not in inspect.signature(render_view).parameters:
        pytest.skip("echo_synth.render_view has no quality keyword yet")
    seen = []
    monkeypatch.setattr(cohort, "render_view", lambda *a, **k: seen.append(k.get("quality")))
    exam = latent_v2.draw_baseline_exam(np.random.default_rng(3))
    opts = cohort.CohortOptions(version=2)
    cohort._render(exam, "A4C", "poor", np.random.default_rng(0), opts)
    assert seen == ["poor"]


def test_version_flag_and_bad_version(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["synth", str(tmp_path / "c"), "--patients", "2", "--seed", "1", "--size", "48",
                              "--frames", "8", "--workers", "1", "--version", "2", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["summary"]["generator_version"] == "2.0.0"
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["version"] == "2.0.0"
    res = runner.invoke(app, ["synth", str(tmp_path / "d"), "--patients", "2", "--version", "3"])
    assert res.exit_code == 1 and "Error:" in res.output and "--version 3" in res.output
    with pytest.raises(ConfigError, match="--version"):
        write_cohort(tmp_path / "e", 2, seed=0, version=0)
