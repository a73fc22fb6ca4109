"""`e2r demo`: the README's main command, on a very small phantom cohort."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from e2r.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_demo_runs_end_to_end_then_reuses_its_work(tmp_path):
    args = ["demo", "--workdir", str(tmp_path / "demo"), "--patients", "24", "--epochs", "1", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    doc = json.loads(first.stdout)
    assert doc["index"]["indexed"] == doc["index"]["total_in_collection"] > 0
    assert len(doc["search"]["neighbours"]) == 10
    assert doc["search"]["estimate"]["n_neighbours"] > 0
    assert doc["truth"]["lvef"] is not None
    assert 1 <= doc["paired_study_rank"] <= doc["studies"] == doc["index"]["total_in_collection"]
    assert doc["lvef_estimate_error"] == pytest.approx(abs(doc["search"]["estimate"]["lvef"] - doc["truth"]["lvef"]))
    assert (tmp_path / "demo" / "echo-tower" / "tower.json").is_file()
    _check_held_out(doc, tmp_path / "demo" / "cohort" / "pairs.csv")
    # the printed next command works as written: the demo's store, the default collection
    cmd = doc["next_command"].split()
    assert cmd[:2] == ["e2r", "search"]
    res = runner.invoke(app, [*cmd[1:], "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["neighbours"][0]["study_uid"] == doc["search"]["neighbours"][0]["study_uid"]

    second = json.loads(runner.invoke(app, args).stdout)
    assert second["index"]["indexed"] == 0 and second["index"]["unchanged"] == doc["index"]["total_in_collection"]
    assert second["search"]["neighbours"] == doc["search"]["neighbours"]


def _check_held_out(doc, pairs_csv):
    """The summary's structure and ranges only: 24 patients and 1 epoch say nothing about quality."""
    h = doc["held_out"]
    with pairs_csv.open(newline="") as fh:
        test_ecgs = sum(1 for row in csv.DictReader(fh) if row["split"] == "test" and row["ecg_path"])
    assert h["test_ecgs"] == test_ecgs > 0 and h["test_ecgs_unreadable"] == 0
    assert h["gallery"] == "every indexed study" and h["gallery_studies"] == doc["studies"]
    assert 0 < h["voting_studies"] < h["gallery_studies"]  # the test split never votes
    for target in ("lvef_le45", "lvh"):
        block = h[target]
        assert block["n"] == test_ecgs and 0 <= block["positives"] <= block["n"]
        assert block["auroc"] is None or 0.0 <= block["auroc"] <= 1.0  # None: one class only
    assert h["lvef_mae"] >= 0 and h["prior_lvef_mae"] >= 0 and 0 < h["prior_lvef"] < 100
    assert 1 <= h["median_rank"] <= h["gallery_studies"]
    assert h["chance_median_rank"] == pytest.approx((h["gallery_studies"] + 1) / 2)
    assert set(h["recall_at"]) == set(h["chance_recall_at"]) == {"1", "5", "10"}
    assert all(0.0 <= v <= 1.0 for v in h["recall_at"].values())
