"""The benchmark's ECG input choice (`BenchmarkSpec.ecg_normalise`, `e2r eval --ecg-normalise`) and
its real-ECG section (queries.eval.real_ecgs): injected steps on the small synthetic cohort of
test_benchmark, and the real scorer against a real index on ../shared/data's PTB-XL records
(skipped when that folder is absent)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from e2r.cli import app
from e2r.errors import DataError
from queries.eval.arms import EvalSettings, PhenotypePredictions
from queries.eval.protocol import BenchmarkSpec, BenchmarkSteps, make_random_bundle, run_benchmark
from queries.eval.real_ecgs import DEFAULT_REAL_ECGS, REAL_ECGS_TITLE, RealECGScorer, read_real_labels
from queries.eval.report import render_markdown
from test_benchmark import FakeStore, _ecg_cohort, perfect_index

runner = CliRunner()
SHARED_PTBXL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ecg" / "ptbxl"


def test_ecg_normalise_reaches_every_ecg_arm_and_real_ecgs_are_scored_per_arm(tmp_path):
    from e2r.bundle import load_model
    from e2r.ecg import read_for_model

    pairs, ph, rows = _ecg_cohort(tmp_path / "cohort")
    store = FakeStore()
    paired = [u for u, r in rows.items() if r["ecg_path"]]
    scored: list[tuple[str, str]] = []
    seen_inputs: dict[str, np.ndarray] = {}

    index = perfect_index(store, rows, lambda loaded: {  # the model's own ECG input
        u: read_for_model(Path(pairs).parent / rows[u]["ecg_path"], loaded.preset.ecg_preprocess)[1] for u in paired})

    def supervised(task):
        seen_inputs["supervised"] = task.train_x
        assert task.preset.ecg_preprocess.normalise == "lead_groups"
        n = len(task.test_x)
        return PhenotypePredictions(np.tile([0.2, 0.3, 0.5], (n, 1)), np.full(n, 0.3), np.full(n, 0.2),
                                    np.full(n, 50.0)), {}

    def score_real(model_dir, collection):
        loaded = load_model(model_dir)
        assert loaded.preset.ecg_preprocess.normalise == "lead_groups"
        scored.append((Path(model_dir).name, collection))
        seed = int(collection[-1])
        return {"auroc": 0.6 + 0.1 * seed, "ci_low": 0.5, "ci_high": 0.9, "positives": 3, "negatives": 7,
                "scored": 10, "no_estimate": 0, "criteria": {
                    name: {"auroc": auc, "ci_low": auc - 0.1, "ci_high": min(1.0, auc + 0.05), "positives": 3,
                           "negatives": 7} for name, auc in (("sokolow_lyon", 0.93), ("cornell", 0.85))}}

    context = {"title": REAL_ECGS_TITLE, "source": "/data/ptbxl/ptbxl_database.csv", "format": "ptbxl",
               "listed": 10, "lvh_labelled": 10, "lvh_positives": 3, "bootstrap": 1000, "seed": 0}
    spec = BenchmarkSpec(pairs_csv=pairs, phenotypes_csv=ph, workdir=tmp_path / "work", out_dir=tmp_path / "out",
                         seeds=(0, 1), arms=("chance", "random-init", "supervised"), ecg_normalise="lead_groups",  # the paper's, not the default
                         settings=EvalSettings(knn_k=3), context={"real_ecgs": context})
    result = run_benchmark(spec, BenchmarkSteps(store=store, index=index, train_supervised=supervised,
                                                score_real_ecgs=score_real))
    # the random-init arm's bundles and the ceiling's inputs are of the chosen ECG input
    assert scored == [("random-init-seed0", "bench-random-init-seed0"), ("random-init-seed1", "bench-random-init-seed1")]
    x = seen_inputs["supervised"]
    assert np.allclose(x[:, 6:].std(axis=(1, 2)), 1.0, atol=0.05)  # z-scored per lead group, not mV
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["spec"]["ecg_normalise"] == "lead_groups"
    assert res["spec"]["ecg_preprocess"] == [
        "100 Hz x 10 s, clip quantile, baseline als, normalise lead_groups"]
    real = res["real_ecgs"]
    assert real["title"] == REAL_ECGS_TITLE and set(real["arms"]) == {"random-init"}
    arm = real["arms"]["random-init"]
    assert arm["auroc"] == pytest.approx([0.65, np.std([0.6, 0.7], ddof=1)])
    assert [s["seed"] for s in arm["per_seed"]] == [0, 1] and "criteria" not in arm["per_seed"][0]
    assert real["criteria"]["sokolow_lyon"]["auroc"] == 0.93
    assert all(r["real_ecgs_s"] >= 0 for r in res["arms"]["random-init"]["runs"])
    md = (tmp_path / "out" / "report.md").read_text()
    assert f"## {REAL_ECGS_TITLE}" in md and "ECG-read labels" in md and "synthetic data only" in md
    assert "| Random-init Echo2ECG | 0.650 ± 0.071 | 0.600 [0.50-0.90]; 0.700 [0.50-0.90] | 10 |" in md
    assert "| Sokolow-Lyon voltage (no e2r; the reference) | – | 0.930 [0.83-0.98] | 10 | – |" in md
    assert "normalise lead_groups" in md and "(--ecg-normalise lead_groups)" in md
    # the section says why it is missing when the folder was not there, and is absent when not asked for
    noted = {**res, "real_ecgs": {"title": REAL_ECGS_TITLE, "note": "Not scored: the folder is not there."}}
    assert "Not scored: the folder is not there." in render_markdown(noted)
    assert REAL_ECGS_TITLE not in render_markdown({**res, "real_ecgs": None})
    assert result.results["real_ecgs"]["arms"]["random-init"]["per_seed"][1]["auroc"] == pytest.approx(0.7)


def test_a_random_init_bundle_of_a_benchmark_preset(tmp_path):
    from e2r.bundle import load_model

    spec = BenchmarkSpec(Path("p.csv"), Path("ph.csv"), tmp_path, tmp_path, ecg_normalise="lead_groups_logscale")
    make_random_bundle(spec.model_preset(), 0, tmp_path / "m")
    assert load_model(tmp_path / "m").preset.ecg_preprocess.normalise == "lead_groups_logscale"
    assert BenchmarkSpec(Path("p.csv"), Path("ph.csv"), tmp_path, tmp_path).model_preset().ecg_preprocess.normalise \
        == "mv_softclip"
    with pytest.raises(Exception, match="--ecg-normalise zscore: choose one of lead_groups"):
        dataclasses.replace(spec, ecg_normalise="zscore").validate()


@pytest.mark.parametrize("args, message", [
    (["--benchmark", "--ecg-normalise", "zscore"], "--ecg-normalise zscore: choose one of lead_groups, lead"),
    (["--benchmark", "--real-ecgs", "/nowhere/ptbxl"], "--real-ecgs /nowhere/ptbxl: no such folder"),
    (["--benchmark", "--real-ecgs", "x", "--no-real-ecgs"], "choose one: --real-ecgs DIR or --no-real-ecgs"),
    (["--model", "m", "--pairs", "p.csv", "--ecg-normalise", "mv_softclip"], "--ecg-normalise belongs to --benchmark"),
    (["--ecg-labels", "l.csv", "--ecg-normalise", "mv_softclip"], "--ecg-normalise / --real-ecgs / --arms belong to --benchmark"),
])
def test_bad_benchmark_options_are_one_line_before_any_work(args, message, tmp_path):
    result = runner.invoke(app, ["eval", *args, "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "w").exists()  # no cohort was generated


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_PTBXL.is_dir(), reason="../shared/data/ecg/ptbxl is absent")
def test_real_scorer_on_ptbxl_is_the_ecg_labels_path_and_measures_the_criteria_once(tiny_cohort, tiny_bundle,
                                                                                      tmp_path, monkeypatch):
    import queries.eval.criteria_arm as criteria_arm
    from e2r.store import open_store
    from queries.eval.labelled import score_labelled
    from queries.search import Searcher

    labels = read_real_labels(SHARED_PTBXL)
    assert labels.format == "ptbxl" and len(labels.items) == 500  # every fold: nothing is fitted on them
    assert sum(it.lvh for it in labels.items) == 35
    assert DEFAULT_REAL_ECGS.parts[-3:] == ("data", "ecg", "ptbxl")
    subset = [it for it in labels.items if it.lvh][:8] + [it for it in labels.items if not it.lvh][:22]
    labels = dataclasses.replace(labels, items=tuple(subset))
    res = runner.invoke(app, ["index", str(tiny_cohort / "echo"), "--model", str(tiny_bundle),
                              "--data-dir", str(tmp_path / "home"), "--workers", "0", "--json"])
    assert res.exit_code == 0, res.output
    measured: list[int] = []
    real_measure = criteria_arm.measure_rows
    monkeypatch.setattr(criteria_arm, "measure_rows", lambda paths: measured.append(len(paths)) or real_measure(paths))
    with open_store(tmp_path / "home") as store:
        scorer = RealECGScorer(store, labels, n_boot=200)
        first, second = scorer(tiny_bundle, "echo_studies"), scorer(tiny_bundle, "echo_studies")
        assert measured == [30]  # the voltage rules: once per run, not once per arm
        reference = score_labelled(Searcher(store, "echo_studies"), labels, n_boot=200, progress=False)
    lvh = reference["targets"]["lvh"]
    for run in (first, second):
        assert (run["positives"], run["negatives"], run["scored"]) == (8, 22, 30)
        assert run["auroc"] == pytest.approx(lvh["auroc"]) and run["ci_low"] == pytest.approx(lvh["ci_low"])
        assert run["criteria"]["sokolow_lyon"]["auroc"] == pytest.approx(lvh["criteria"]["sokolow_lyon"]["auroc"])
        assert run["ecgs"]["skipped"] == {}  # no real record is refused
    assert scorer.describe()["lvh_positives"] == 8 and scorer.describe()["title"] == REAL_ECGS_TITLE
    with pytest.raises(DataError, match="no such folder"):
        read_real_labels(tmp_path / "none")
