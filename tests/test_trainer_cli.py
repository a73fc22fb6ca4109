"""`e2r train` through Typer's CliRunner: help, flag errors, a real tiny run, --json, --resume."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from e2r.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def cohort(tiny_cohort):
    return tiny_cohort


def test_help_explains_the_command():
    res = runner.invoke(app, ["train", "--help"])
    assert res.exit_code == 0
    for flag in ("--data", "--out", "--preset", "--aggregation", "--epochs", "--batch-size",
                 "--lr", "--seed", "--resume", "--device", "--json"):
        assert flag in res.output
    assert "--echo-encoder" in res.output and "--select-metric" in res.output
    assert "Align the ECG encoder" in res.output


@pytest.mark.parametrize("args, flag", [
    (["--epochs", "0"], "--epochs 0"),
    (["--batch-size", "1"], "--batch-size 1"),
    (["--lr", "-1"], "--lr -1"),
    (["--aggregation", "max"], "--aggregation max"),
    (["--device", "gpu"], "--device gpu"),
    (["--min-pairs", "1"], "--min-pairs 1"),
    (["--ecg-normalise", "zscore"], "--ecg-normalise zscore"),
])
def test_bad_flag_values_name_the_flag(cohort, tmp_path, args, flag):
    res = runner.invoke(app, ["train", "--data", str(cohort), "--out", str(tmp_path / "m"), *args])
    assert res.exit_code == 1
    assert f"Error: {flag}" in res.output
    assert "Traceback" not in res.output


def test_unknown_preset_and_missing_data(cohort, tmp_path):
    res = runner.invoke(app, ["train", "--data", str(cohort), "--out", str(tmp_path), "--preset", "huge"])
    assert res.exit_code == 1 and "Error:" in res.output and "tiny" in res.output
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert res.exit_code == 1 and "Error: --data" in res.output


def test_too_few_pairs_is_an_error_line(cohort, tmp_path):
    res = runner.invoke(app, ["train", "--data", str(cohort), "--out", str(tmp_path / "m"),
                              "--cache-dir", str(tmp_path / "c"), "--min-pairs", "500", "--quiet"])
    assert res.exit_code == 1
    assert "Error:" in res.output and "--min-pairs" in res.output


def test_train_table_then_resume_json(cohort, tmp_path):
    out, cache = tmp_path / "model", tmp_path / "cache"
    common = ["train", "--data", str(cohort), "--out", str(out), "--cache-dir", str(cache),
              "--epochs", "1", "--batch-size", "4", "--min-pairs", "4", "--quiet"]
    res = runner.invoke(app, common)
    assert res.exit_code == 0, res.output
    for item in ("pairs used (train / val)", "pairs skipped", "best epoch (by)", "val Recall@1 (chance)",
                 "val phenotype-aware mAP", "val kNN AUROC LVEF<=45 / LVH", "bundle hash"):
        assert item in res.output
    assert (out / "bundle.json").exists()
    graph = json.loads((out / "bundle.json").read_text())["ecg_graph"]  # e2r train writes the ECG graph, checked
    assert (out / graph["file"]).is_file() and graph["max_abs_diff"] <= 1e-4
    res = runner.invoke(app, [*common, "--resume", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["epochs"] == 1 and doc["resumed_from_epoch"] == 1 and doc["best_epoch"] == 1
    assert doc["pairs"]["train"] + doc["pairs"]["val"] == 12 and doc["pairs"]["skipped"] == 0
    assert doc["hash"] == json.loads((out / "bundle.json").read_text())["hash"]
    assert 0 <= doc["val"]["recall@1"] <= 1 and doc["val"]["chance_recall@1"] > 0
    assert doc["select_metric"] == "val_pheno_map" and 0 <= doc["val"]["pheno_map"] <= 1


def test_freeze_echo_and_temperature_flags_reach_the_bundle(cohort, tmp_path):
    from e2r.bundle import load_model

    out = tmp_path / "frozen"
    res = runner.invoke(app, ["train", "--data", str(cohort), "--out", str(out), "--cache-dir", str(tmp_path / "c"),
                              "--epochs", "1", "--batch-size", "4", "--min-pairs", "4", "--quiet",
                              "--freeze-echo", "--temperature", "0.2"])
    assert res.exit_code == 0, res.output
    loaded = load_model(out)
    assert loaded.preset.echo.frozen and loaded.model.video_encoder_frozen
    assert abs(loaded.preset.temperature - 0.2) < 1e-9


def test_ecg_normalise_reaches_the_bundle_and_resume_keeps_it(cohort, tmp_path):
    from e2r.bundle import load_model

    out = tmp_path / "mv"
    common = ["train", "--data", str(cohort), "--out", str(out), "--cache-dir", str(tmp_path / "c"),
              "--epochs", "1", "--batch-size", "4", "--min-pairs", "4", "--quiet"]
    res = runner.invoke(app, [*common, "--ecg-normalise", "lead_groups_logscale"])
    assert res.exit_code == 0, res.output
    loaded = load_model(out)
    assert loaded.preset.ecg_preprocess.normalise == "lead_groups_logscale"
    assert loaded.meta["preprocessing"]["ecg"]["normalise"] == "lead_groups_logscale"
    assert loaded.meta["train_config"]["ecg_normalise"] == "lead_groups_logscale"
    res = runner.invoke(app, [*common, "--resume"])  # the checkpoint's input differs from the preset's
    assert res.exit_code == 1 and "Error: --resume" in res.output and "--ecg-normalise" in res.output


def test_missing_weight_file_is_one_line(cohort, tmp_path):
    res = runner.invoke(app, ["train", "--data", str(cohort), "--out", str(tmp_path / "m"),
                              "--echo-encoder", str(tmp_path / "nope.pt")])
    assert res.exit_code == 1 and "Error: --echo-encoder" in res.output and "Traceback" not in res.output


def test_echo_encoder_that_is_not_a_tower_is_one_line(cohort, tmp_path):
    (tmp_path / "junk").mkdir()
    res = runner.invoke(app, ["train", "--data", str(cohort), "--out", str(tmp_path / "m"),
                              "--echo-encoder", str(tmp_path / "junk")])
    assert res.exit_code == 1 and "not an echo-tower folder" in res.output and "e2r train-echo" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
