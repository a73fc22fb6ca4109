"""The phantom cohort: files in real formats, deterministic, and carrying the morphology it claims."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
import wfdb
from typer.testing import CliRunner

from e2r.cli import app
from e2r.errors import ConfigError
from e2r.phantom import write_cohort
from e2r.phantom.check import check_cohort, cohens_d
from e2r.phantom.ecg_synth import lead_matrix, synth_ecg
from e2r.phantom.echo_synth import VIEWS, render_view
from e2r.phantom.latent import (
    ase_lv_mass,
    draw_baseline_exam,
    teichholz_diameter,
    teichholz_volume,
)
from e2r.phantom.measure import (
    EchoGeometry,
    fractional_area_change,
    measure_ecg,
    plax_septum_mm,
    pool_area_near,
)
from e2r.phenotypes import PHENOTYPE_COLUMNS, read_phenotypes

SMALL = {"size": 64, "frames": 12, "workers": 1}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("phantom") / "cohort"
    write_cohort(out, 8, seed=7, **SMALL)
    return out


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_layout_and_manifest(cohort: Path) -> None:
    manifest = json.loads((cohort / "manifest.json").read_text())
    assert manifest["synthetic"] is True and manifest["seed"] == 7
    assert manifest["counts"]["patients"] == 8
    dcms = sorted((cohort / "echo").rglob("*.dcm"))
    assert len(dcms) == manifest["counts"]["videos"] > 0
    for p in dcms:  # echo/pNN/pPATIENT/sSTUDY/file.dcm
        rel = p.relative_to(cohort / "echo").parts
        assert len(rel) == 4 and rel[0] == "p" + rel[1][1:3] and rel[2].startswith("s")
    with (cohort / "pairs.csv").open() as fh:
        pairs = list(csv.DictReader(fh))
    assert list(pairs[0]) == ["ecg_path", "study_uid", "patient_id", "days", "split"]
    assert len(pairs) == manifest["counts"]["studies"]
    # Splits are by patient: one patient never spans two splits.
    by_patient: dict[str, set] = {}
    for r in pairs:
        by_patient.setdefault(r["patient_id"], set()).add(r["split"])
        if r["ecg_path"]:
            assert (cohort / r["ecg_path"]).is_file() and -30 <= int(r["days"]) <= 30
    assert all(len(s) == 1 for s in by_patient.values())
    phen, errors = read_phenotypes(cohort / "phenotypes.csv")
    assert not errors and set(phen) == {r["study_uid"] for r in pairs}
    header = (cohort / "phenotypes.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == PHENOTYPE_COLUMNS


def test_dicom_tags_and_pixels(cohort: Path) -> None:
    phen, _ = read_phenotypes(cohort / "phenotypes.csv")
    for p in sorted((cohort / "echo").rglob("*.dcm")):
        ds = pydicom.dcmread(p)
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.3.1"
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
        assert ds.Modality == "US" and ds.PhotometricInterpretation == "MONOCHROME2"
        assert str(ds.PatientName) == "" and ds.PatientID == p.parts[-3][1:]
        assert ds.SeriesDescription in VIEWS and ds.StudyInstanceUID in phen
        assert int(ds.NumberOfFrames) == 12 and ds.Rows == ds.Columns == 64
        assert 20.0 <= float(ds.FrameTime) <= 40.0
        region = ds.SequenceOfUltrasoundRegions[0]
        assert region.PhysicalUnitsXDirection == 3 and 0.05 < region.PhysicalDeltaX < 0.5
        px = ds.pixel_array
        assert px.shape == (12, 64, 64) and px.dtype == np.uint8 and px.std() > 10
        assert p.stat().st_size < 1_000_000


def test_wfdb_records_read_back(cohort: Path) -> None:
    from e2r.ecg import read_ecg

    with (cohort / "pairs.csv").open() as fh:
        paths = [r["ecg_path"] for r in csv.DictReader(fh) if r["ecg_path"]]
    assert paths
    for rel in paths:
        rec = wfdb.rdrecord(str((cohort / rel).with_suffix("")))
        assert rec.n_sig == 12 and rec.fs in (250, 500, 1000) and rec.sig_len == rec.fs * 10
        assert set(rec.units) == {"mV"} and rec.fmt == ["16"] * 12
        ours = read_ecg(cohort / rel)
        assert ours.signal.shape == (12, int(rec.fs * 10))
        names = [n.lower() for n in rec.sig_name]
        np.testing.assert_allclose(ours.signal[1], rec.p_signal[:, names.index("ii")], atol=1e-3)
        np.testing.assert_allclose(ours.signal[5], rec.p_signal[:, names.index("avf")], atol=1e-3)


def test_echo_readers_group_studies(cohort: Path) -> None:
    from e2r.echo import decode_video, scan_archive

    scan = scan_archive(cohort / "echo")
    phen, _ = read_phenotypes(cohort / "phenotypes.csv")
    assert {s.study_uid for s in scan.studies} == set(phen)
    assert not sum(scan.skipped.values())
    video = scan.studies[0].videos[0]
    assert video.view in VIEWS and video.region is not None
    frames = decode_video(video, n_frames=8, size=(32, 32))
    assert frames.shape == (8, 32, 32) and frames.std() > 5


def test_same_seed_same_content_and_uncompressed(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_cohort(a, 3, seed=11, **SMALL)
    write_cohort(b, 3, seed=11, **{**SMALL, "workers": 2})
    write_cohort(c, 3, seed=12, **SMALL)
    assert _tree_digest(a) == _tree_digest(b)
    assert _tree_digest(a) != _tree_digest(c)
    u = tmp_path / "u"
    write_cohort(u, 2, seed=11, compressed=False, **SMALL)
    ds = pydicom.dcmread(next(u.rglob("*.dcm")))
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" and ds.pixel_array.shape == (12, 64, 64)


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--size"):
        write_cohort(tmp_path / "x", 2, seed=0, size=8)
    with pytest.raises(ConfigError, match="valid options"):
        write_cohort(tmp_path / "x", 2, seed=0, colour=True)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        write_cohort(tmp_path / "full", 2, seed=0)


def test_cli_synth_json_and_error(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["synth", str(tmp_path / "c"), "--patients", "2", "--seed", "1", "--size", "48",
                              "--frames", "8", "--workers", "1", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["summary"]["patients"] == 2 and doc["summary"]["videos"] > 0
    res = runner.invoke(app, ["synth", str(tmp_path / "d"), "--patients", "2", "--size", "8"])
    assert res.exit_code == 1 and "Error:" in res.output and "--size" in res.output
    res = runner.invoke(app, ["synth-report", str(tmp_path / "nothing")])
    assert res.exit_code == 1 and "phenotypes.csv" in res.output


# ---- physiology, checked cheaply on latent hearts and generated signals (no files) ----

def test_latent_geometry_formulas() -> None:
    d = teichholz_diameter(120.0)
    assert abs(teichholz_volume(d) - 120.0) < 0.01 and 4.5 < d < 6.0
    # ASE cube formula: a normal heart (IVS 9, LVID 48, PW 9 mm) weighs ~150 g.
    assert 130 < ase_lv_mass(9, 48, 9) < 170


def test_latent_cohort_mixture() -> None:
    rng = np.random.default_rng(0)
    exams = [draw_baseline_exam(rng) for _ in range(2000)]
    ef = np.array([e.lvef for e in exams])
    assert 0.65 < np.mean(ef >= 50) < 0.75 and 0.1 < np.mean(ef < 40) < 0.2
    assert 0.1 < np.mean([e.lvh for e in exams]) < 0.3
    af = np.array([e.rhythm == "af" for e in exams])
    la = np.array([e.la_volume for e in exams])
    assert 0.03 < af.mean() < 0.2 and la[af].mean() > la[~af].mean() + 10
    assert all(abs(e.lvesv - e.lvedv * (1 - e.lvef / 100)) < 1e-6 for e in exams)


def test_einthoven_and_goldberger_hold() -> None:
    rng = np.random.default_rng(1)
    sig, _ = synth_ecg(draw_baseline_exam(rng), rng, 500)
    np.testing.assert_allclose(sig[2], sig[1] - sig[0], atol=1e-9)  # III = II - I
    np.testing.assert_allclose(sig[3] + sig[4] + sig[5], 0, atol=1e-9)  # aVR + aVL + aVF = 0
    assert lead_matrix().shape == (12, 3)


def test_ecg_morphology_couplings() -> None:
    """On 120 generated ECGs: LVH raises Sokolow-Lyon, LVEF<40 widens QRS, AF has no P and
    irregular RR, dilated RV turns the axis right."""
    rng = np.random.default_rng(5)
    rows = []
    for i in range(120):
        exam = draw_baseline_exam(rng)
        if i % 10 == 0:
            exam = replace(exam, rhythm="af", heart_rate=90.0)
        fs = (250.0, 500.0)[i % 2]
        m = measure_ecg(synth_ecg(exam, rng, fs)[0], fs)
        rows.append((exam, m))
    sl = np.array([m.sokolow_lyon_mv for _, m in rows])
    lvh = np.array([e.lvh for e, _ in rows])
    assert cohens_d(sl[lvh], sl[~lvh]) > 0.8
    qrs = np.array([m.qrs_ms for _, m in rows])
    red = np.array([e.lvef < 40 for e, _ in rows])
    assert qrs[red].mean() > qrs[~red].mean() + 8
    af = np.array([e.rhythm == "af" for e, _ in rows])
    cons = np.array([m.p_consistency for _, m in rows])
    rr = np.array([m.rr_cv for _, m in rows])
    assert np.mean(cons[af] < 0.7) >= 0.9 and np.mean(cons[~af] >= 0.7) >= 0.9
    assert np.median(rr[af]) > 3 * np.median(rr[~af])
    axis = np.array([m.frontal_axis_deg for _, m in rows])
    rv = np.array([e.rv_diameter for e, _ in rows])
    assert axis[rv > 42].mean() > axis[rv < 38].mean() + 15


def test_echo_views_show_different_anatomy() -> None:
    """Rendered clips of one heart with one phenotype varied at a time: LV area change follows
    LVEF in A4C, PLAX septum follows IVSd, and the pool where the RV sits follows RV size in A4C
    but not in A2C (which does not show the RV)."""
    from scipy.stats import spearmanr

    rng = np.random.default_rng(11)
    base = replace(draw_baseline_exam(rng), rhythm="sinus", heart_rate=70.0, lvedv=120.0, lvef=60.0,
                   lvesv=48.0, ivsd=9.0, lvpwd=9.0, rv_diameter=34.0)

    def clip(exam, view):
        vid = render_view(exam, view, rng, size=96, n_frames=16, fps=25.0)
        return vid.frames, EchoGeometry(vid.apex[0], vid.apex[1], vid.pixel_spacing_cm)

    efs = [20.0, 30.0, 40.0, 50.0, 60.0, 70.0]
    fac = []
    for e in efs:
        frames, geo = clip(replace(base, lvef=e, lvesv=120 * (1 - e / 100)), "A4C")
        fac.append(fractional_area_change(frames, "A4C", geo))
    assert spearmanr(fac, efs).statistic >= 0.8

    walls = [8.0, 10.0, 12.0, 14.0, 16.0, 18.0]
    sep = [plax_septum_mm(*clip(replace(base, ivsd=w, lvpwd=w), "PLAX")) for w in walls]
    assert spearmanr(sep, walls, nan_policy="omit").statistic >= 0.7

    rvs = [26.0, 32.0, 38.0, 44.0, 50.0, 56.0]
    seen = [pool_area_near(*clip(replace(base, rv_diameter=r), "A4C"), (-3.0, 6.0)) for r in rvs]
    hidden = [pool_area_near(*clip(replace(base, rv_diameter=r), "A2C"), (-3.0, 6.0)) for r in rvs]
    assert spearmanr(seen, rvs).statistic >= 0.8
    assert spearmanr(seen, rvs).statistic > spearmanr(hidden, rvs).statistic + 0.3


@pytest.mark.slow
def test_cohort_check_report(tmp_path: Path) -> None:
    """The full file-based check on a 150-patient cohort at reduced video size."""
    out = tmp_path / "c"
    write_cohort(out, 150, seed=3, size=96, frames=24, workers=2)
    report = check_cohort(out)
    names = {f.name: f for f in report.figures}
    assert {"sokolow_lyon_cohens_d", "qrs_ms_lvef_lt40_minus_rest", "a4c_a2c_area_change_vs_lvef_spearman",
            "plax_septum_vs_ivsd_spearman", "rv_visible_minus_hidden_spearman"} <= set(names)
    assert report.passed, [f for f in report.figures if not f.passed]


def test_a_check_that_measured_nothing_does_not_pass():
    from e2r.phantom.check import CohortCheck

    assert CohortCheck(out_dir="x", n_ecgs=0, n_videos=0).passed is False
