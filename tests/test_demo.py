"""`e2r demo`: the README's main command, on a very small phantom cohort."""

from __future__ import annotations

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
    # the printed next command works as written: the demo's store, the default collection
    cmd = doc["next_command"].split()
    assert cmd[:2] == ["e2r", "search"]
    res = runner.invoke(app, [*cmd[1:], "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["neighbours"][0]["study_uid"] == doc["search"]["neighbours"][0]["study_uid"]

    second = json.loads(runner.invoke(app, args).stdout)
    assert second["index"]["indexed"] == 0 and second["index"]["unchanged"] == doc["index"]["total_in_collection"]
    assert second["search"]["neighbours"] == doc["search"]["neighbours"]
