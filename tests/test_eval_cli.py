"""`e2r eval`: help, refusals of bad input, `--model` on a tiny paired archive (real indexer and
store), and the quick benchmark end to end (slow; CI's end-to-end test)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from e2r.cli import app

runner = CliRunner()


def test_help_lists_both_modes():
    result = runner.invoke(app, ["eval", "--help"])
    assert result.exit_code == 0
    for flag in ("--benchmark", "--quick", "--seeds", "--patients", "--model", "--pairs", "--out", "--json"):
        assert flag in result.output


@pytest.mark.parametrize("args, message", [
    ([], "choose one"),
    (["--benchmark", "--model", "m"], "choose one"),
    (["--benchmark", "--seeds", "0"], "--seeds 0: must be at least 1"),
    (["--benchmark", "--preset", "huge"], "unknown preset 'huge'"),
    (["--benchmark", "--arms", "attention,bogus"], "unknown arm(s) bogus; choose from chance, criteria"),
    (["--benchmark", "--arms", " , "], "unknown arm(s) (none given)"),
])
def test_bad_input_is_one_line_error(args, message, tmp_path):
    result = runner.invoke(app, ["eval", *args, "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "w" / "models-huge-e10").exists()


def test_model_mode_refusals(tmp_path):
    result = runner.invoke(app, ["eval", "--model", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "--pairs" in result.output
    result = runner.invoke(app, ["eval", "--model", str(tmp_path / "missing"), "--pairs", str(tmp_path / "p.csv")])
    assert result.exit_code == 1 and "no such model bundle directory" in result.output
    result = runner.invoke(app, ["eval", "--model", str(tmp_path), "--pairs", "p.csv", "--quick"])
    assert result.exit_code == 1 and "--quick belongs to --benchmark" in result.output
    result = runner.invoke(app, ["eval", "--model", str(tmp_path), "--pairs", "p.csv", "--arms", "attention"])
    assert result.exit_code == 1 and "--arms belongs to --benchmark" in result.output


def test_arms_option_keeps_the_benchmark_order():
    from e2r.cli.eval_cmd import _parse_arms

    assert _parse_arms(None) is None
    assert _parse_arms("supervised, attention,criteria") == ("criteria", "attention", "supervised")


def _tiny_paired_archive(root: Path) -> Path:
    """helpers.cohort's tiny cohort (WFDB ECGs, 16x16 DICOM cine loops) with train/val/test
    splits by patient and a phenotype CSV."""
    from e2r.phenotypes import write_phenotypes
    from helpers.cohort import write_tiny_cohort

    pairs = write_tiny_cohort(root, patients=12, seed=5)
    with pairs.open() as fh:
        rows = list(csv.DictReader(fh))
    rng = np.random.default_rng(5)
    phenos = []
    for i, row in enumerate(rows):
        row["split"] = ("train", "train", "val", "test")[i % 4]
        lvef = 30.0 if i % 2 else 62.0
        phenos.append({"study_uid": row["study_uid"], "patient_id": row["patient_id"], "study_date": "20240101",
                       "lvef": lvef, "lvedv": float(rng.uniform(90, 180)), "lvesv": float(rng.uniform(30, 90)),
                       "ivsd": float(rng.uniform(8, 15)), "lvpwd": float(rng.uniform(8, 14))})
    with pairs.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    write_phenotypes(root / "phenotypes.csv", phenos)
    return pairs


def test_model_mode_on_a_tiny_archive(tmp_path):
    from queries.eval.protocol import make_random_bundle

    pairs = _tiny_paired_archive(tmp_path / "data")
    model = make_random_bundle("tiny", 0, tmp_path / "model")
    out = tmp_path / "res"
    result = runner.invoke(app, ["eval", "--model", str(model), "--pairs", str(pairs), "--collection", "mine",
                                 "--data-dir", str(tmp_path / "home"), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert set(doc["arms"]) == {"chance", "model"} and doc["synthetic"] is False
    run = doc["arms"]["model"]["runs"][0]
    assert run["collection"] == "mine" and run["test_ecgs"] == 3 and run["gallery_studies"] == 3
    assert run["archive_studies"] == 9 and run["index"]["indexed"] == 12
    exact = doc["arms"]["model"]["mean_sd"]["retrieval"]["ecg_to_echo"]["exact"]
    assert exact["n_queries"][0] == 3 and 0 <= exact["recall@1"][0] <= 1
    assert (out / "results.json").is_file() and (out / "report.md").is_file()
    assert "synthetic phantom" not in (out / "report.md").read_text()
    # pairs without a test split: refused with one line
    text = pairs.read_text().replace(",test", ",train")
    pairs.write_text(text)
    again = runner.invoke(app, ["eval", "--model", str(model), "--pairs", str(pairs),
                                "--data-dir", str(tmp_path / "home"), "--out", str(out)])
    assert again.exit_code == 1 and "no test-split row" in again.output


@pytest.mark.slow
def test_quick_benchmark_end_to_end(tmp_path):
    out = tmp_path / "results"
    result = runner.invoke(app, ["eval", "--benchmark", "--quick", "--workdir", str(tmp_path / "bench"),
                                 "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert list(doc["arms"]) == ["chance", "criteria", "random-init", "ssl", "echo-tower", "single-view", "mean",
                                 "attention", "supervised"]
    assert "logistic" in doc["arms"]["criteria"]["mean_sd"]["classification"]
    assert doc["synthetic"] is True and doc["spec"]["seeds"] == [0]
    assert doc["splits"]["test"]["pairs"] > 5 and doc["context"]["patients"] == 120
    for arm in ("random-init", "single-view", "mean", "attention"):
        exact = doc["arms"][arm]["mean_sd"]["retrieval"]["ecg_to_echo"]["exact"]
        assert 0 <= exact["recall@10"][0] <= 1 and exact["n_queries"][0] == doc["arms"][arm]["runs"][0]["test_ecgs"]
        assert doc["arms"][arm]["runs"][0]["index"]["total_in_collection"] == doc["arms"][arm]["runs"][0]["index"]["studies_found"]
    sup = doc["arms"]["supervised"]["mean_sd"]["classification"]["direct"]
    assert 0 <= sup["lvef_class"]["auroc_macro"][0] <= 1
    assert len(doc["claims"]) == 21  # 12 + attention > single-view on the paper's LVEF mAP + 8 as a feature extractor
    tower = doc["arms"]["echo-tower"]
    assert tower["runs"][0]["tower"]["val_mean_r"] is not None
    assert "echo_knn" in tower["mean_sd"]["classification"]
    # the three alignment arms share the seed's one tower
    dirs = {doc["arms"][a]["runs"][0]["tower_dir"] for a in ("single-view", "mean", "attention")}
    assert dirs == {tower["runs"][0]["tower_dir"]}
    report = (out / "report.md").read_text()
    assert "synthetic phantom cohort" in report and "Supervised ECG->phenotype (ceiling)" in report
    assert "Echo tower alone (echo -> echo)" in report
    assert all((out / p).is_file() for p in doc["plots"])
    _check_real_ecgs(doc, report)
    _check_feature_extractors(doc, report)


def _check_feature_extractors(doc: dict, report: str) -> None:
    """The SSL arm trained and scored as a feature extractor only; every arm that reads ECGs in the
    probes' table; the linear probe on the real records when they are there."""
    from e2r.bundle import load_model
    from queries.eval.real_ecgs import DEFAULT_REAL_ECGS

    ssl = doc["arms"]["ssl"]
    assert set(ssl["mean_sd"]) == {"feature_extractor"} and ssl["runs"][0]["train"]["epochs"] == 2
    assert load_model(ssl["runs"][0]["model_dir"]).meta["train_config"]["objective"] == "simclr"
    for arm in ("criteria", "random-init", "ssl", "single-view", "mean", "attention", "supervised"):
        for probe in ("knn", "linear"):
            block = doc["arms"][arm]["mean_sd"]["feature_extractor"][probe]
            assert 0 <= block["lvef_le45"]["auroc"][0] <= 1 and block["lvh"]["n"][0] > 0, (arm, probe)
    assert "## The ECG encoder as a feature extractor: kNN and linear probes" in report
    assert "ECG-only SSL (SimCLR): no echo side" in report
    if DEFAULT_REAL_ECGS.is_dir():
        probe = doc["real_ecgs"]["probe"]
        assert set(probe) == {"criteria", "random-init", "ssl", "single-view", "mean", "attention", "supervised"}
        for arm in probe.values():
            lvh = arm["per_seed"][0]["targets"]["lvh"]
            assert (lvh["positives"], lvh["name"]) == (35, "LVH") and 0 <= lvh["ci_low"] <= lvh["auroc"] <= 1
        assert "### Linear probe on the real ECGs" in report


def _check_real_ecgs(doc: dict, report: str) -> None:
    """Every embedding arm's kNN P(LVH) on the real PTB-XL records, or the note saying why not."""
    from queries.eval.real_ecgs import DEFAULT_REAL_ECGS, REAL_ECGS_TITLE

    real = doc["real_ecgs"]
    assert real["title"] == REAL_ECGS_TITLE and f"## {REAL_ECGS_TITLE}" in report
    if not DEFAULT_REAL_ECGS.is_dir():
        assert real["note"].startswith("Not scored") and not real.get("arms")
        return
    assert set(real["arms"]) == {"random-init", "single-view", "mean", "attention"}
    assert (real["listed"], real["lvh_positives"]) == (500, 35)
    for arm in real["arms"].values():
        run = arm["per_seed"][0]
        assert run["scored"] == 500 and run["ecgs"]["skipped"] == {}
        assert 0 <= run["ci_low"] <= run["auroc"] <= run["ci_high"] <= 1
    assert real["criteria"]["sokolow_lyon"]["positives"] == 35


def test_a_corrupt_cohort_manifest_is_one_clear_error(tmp_path):
    cohort = tmp_path / "bench" / "cohort-120p-s0-64px"
    cohort.mkdir(parents=True)
    (cohort / "manifest.json").write_text("{not json")
    result = runner.invoke(app, ["eval", "--benchmark", "--quick", "--workdir", str(tmp_path / "bench"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "manifest.json: corrupt" in result.output and "Traceback" not in result.output
