"""`e2r eval --ecg-labels --protocol knn|linear`: probes on the frozen ECG embeddings.

The labelled ECGs are written here with the label in the signal (LVH: a taller QRS on the left
precordial leads); the untrained tiny bundle embeds them. The tests check the probes against a
direct scikit-learn computation on the same embeddings and splits, the split rules (PTB-XL's
strat_fold, the seeded holdout, the repeated k-fold fallback), the MI reading and the command.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from e2r.cli import app
from e2r.datasets.ecg_labels import read_label_csv, read_ptbxl
from queries.eval import probes
from queries.eval.labelled import bootstrap_auroc

runner = CliRunner()
LEADS = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
SHARED_PTBXL = Path(__file__).resolve().parents[2] / "shared" / "data" / "ecg" / "ptbxl" / "ptbxl_database.csv"


def write_ecg(folder: Path, name: str, label: int, seed: int) -> str:
    """A 10 s 500 Hz WFDB record; label 1 triples the QRS width (a shape the per-lead scaling of
    the preprocessing keeps) and doubles it on V1 (down) and V5/V6 (up)."""
    import wfdb

    rng = np.random.default_rng(seed)
    t = np.arange(5000) / 500
    rr = 0.7 + 0.2 * rng.uniform()
    qrs = np.exp(-((t % rr) - 0.3) ** 2 / (2 * (0.036 if label else 0.012) ** 2))  # (T,)
    gain = np.array([1.0, 1.2, 0.3, -0.9, 0.5, 0.7, -0.8, -0.4, 0.4, 1.0, 1.2, 1.0])
    if label:
        gain[[6, 10, 11]] *= 2.0
    sig = qrs[:, None] * gain * (0.8 + 0.4 * rng.uniform()) + 0.02 * rng.standard_normal((5000, 12))
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=500, units=["mV"] * 12, sig_name=LEADS, p_signal=sig, fmt=["16"] * 12, write_dir=str(folder))
    return name


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """60 ECGs, 30 with the LVH pattern, in a labels CSV; and the same 60 as a PTB-XL database whose
    strat_fold 10 holds 24 of them (12 positive), fold 9 twelve, folds 1-8 the rest."""
    root = tmp_path_factory.mktemp("probe-ecgs")
    labels = [i % 2 for i in range(60)]
    names = [write_ecg(root / "records500" / "00000", f"{i + 1:05d}_hr", y, i) for i, y in enumerate(labels)]
    (root / "labels.csv").write_text("ecg_path,label\n" + "".join(
        f"records500/00000/{n},{y}\n" for n, y in zip(names, labels)))
    rows = []
    for i, (name, y) in enumerate(zip(names, labels)):
        fold = 10 if i < 24 else 9 if i < 36 else 1 + i % 8
        codes = {"LVH": 100.0} if y else {"NORM": 100.0} if i % 4 == 0 else {"IMI": 50.0}
        rows.append({"ecg_id": i + 1, "patient_id": f"{900 + i // 4}.0", "scp_codes": repr(codes), "strat_fold": fold,
                     "filename_lr": f"records100/00000/{i + 1:05d}_lr", "filename_hr": f"records500/00000/{name}"})
    with (root / "ptbxl_database.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root


@pytest.fixture(scope="module")
def embedded(labelled, tiny_bundle):
    from e2r.bundle import load_model
    from e2r.embed import encode_ecgs

    model = load_model(tiny_bundle)
    labels = read_label_csv(labelled / "labels.csv")
    x, ids = encode_ecgs([it.path for it in labels.items], model)
    assert ids == [it.path for it in labels.items]
    return model, labels, x.astype(np.float64), np.array([it.lvh for it in labels.items])


def _direct_linear(xtr, ytr, xva, yva, xte):
    best, best_auc, best_model = None, -1.0, None
    for c in probes.C_GRID:  # ascending: a tie keeps the smaller C
        m = make_pipeline(StandardScaler(), LogisticRegression(C=c, solver="liblinear", max_iter=5000,
                                                               random_state=0)).fit(xtr, ytr)
        auc = roc_auc_score(yva, m.predict_proba(xva)[:, 1])
        if auc > best_auc:
            best, best_auc, best_model = c, auc, m
    return best_model.predict_proba(xte)[:, 1], best


def _direct_knn(xtr, ytr, xte):
    knn = KNeighborsClassifier(n_neighbors=5, metric="cosine", algorithm="brute").fit(xtr, ytr)
    return knn.predict_proba(xte)[:, 1]


# -- the split rules ------------------------------------------------------------------------------

def test_ptbxl_fold_rule_train_1_8_val_9_test_10():
    folds = np.repeat(np.arange(1, 11), 30)
    y = np.tile(np.r_[np.ones(12), np.zeros(18)].astype(int), 10)
    plan = probes.plan_splits(y, list(folds), [f"p{i}" for i in range(300)])
    assert plan.rule == "ptbxl_strat_fold" and len(plan.splits) == 1
    s = plan.splits[0]
    assert set(folds[s.train]) == set(range(1, 9)) and set(folds[s.val]) == {9} and set(folds[s.test]) == {10}
    assert len(s.train) + len(s.val) + len(s.test) == 300
    # 9 positives in fold 10 (< MIN_TEST_CLASS) -> the repeated k-fold fallback
    y2 = y.copy()
    y2[np.flatnonzero((folds == 10) & (y == 1))[:3]] = 0
    fallback = probes.plan_splits(y2, list(folds), None)
    assert fallback.rule == "repeated_kfold" and len(fallback.splits) == probes.N_SPLITS * probes.N_REPEATS


def test_holdout_is_stratified_and_patient_disjoint_and_fallback_is_sklearns():
    y = np.r_[np.ones(60), np.zeros(140)].astype(int)
    groups = [f"p{i // 2}" for i in range(200)]  # two ECGs per patient, same label
    plan = probes.plan_splits(y, None, groups, seed=3)
    assert plan.rule == "stratified_holdout"
    s = plan.splits[0]
    g = np.array(groups)
    parts = [set(g[s.train]), set(g[s.val]), set(g[s.test])]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])  # patient-disjoint
    assert sorted(np.r_[s.train, s.val, s.test].tolist()) == list(range(200))
    assert 0.15 < len(s.test) / 200 < 0.25 and y[s.test].sum() >= probes.MIN_TEST_CLASS
    assert np.array_equal(probes.plan_splits(y, None, groups, seed=3).splits[0].test, s.test)  # seeded
    # small set, no patient ids: RepeatedStratifiedKFold(5, 5, seed) exactly, each train split 3:1
    small = np.r_[np.ones(12), np.zeros(28)].astype(int)
    plan = probes.plan_splits(small, None, None, seed=0)
    want = list(RepeatedStratifiedKFold(n_splits=5, n_repeats=5, random_state=0).split(np.zeros(40), small))
    assert plan.rule == "repeated_kfold" and len(plan.splits) == 25
    for got, (train, test) in zip(plan.splits, want):
        assert np.array_equal(got.test, test)
        assert sorted(np.r_[got.train, got.val].tolist()) == sorted(train.tolist())
        fit, val = next(StratifiedKFold(4, shuffle=True, random_state=0).split(np.zeros(len(train)), small[train]))
        assert np.array_equal(got.val, train[val]) and np.array_equal(got.train, train[fit])


# -- the probes against scikit-learn ---------------------------------------------------------------

def test_knn_and_linear_match_sklearn_on_a_fixed_split(embedded, monkeypatch):
    model, labels, x, y = embedded
    monkeypatch.setattr(probes, "MIN_TEST_CLASS", 6)  # 60 ECGs: 6 of each class in the 20 % test part
    plan = probes.plan_splits(y, None, None, seed=0)
    assert plan.rule == "stratified_holdout"
    s = plan.splits[0]
    for protocol in ("knn", "linear"):
        res = probes.score_probe(protocol, x, y, plan, n_boot=200)
        if protocol == "knn":
            p = _direct_knn(x[s.train], y[s.train], x[s.test])
            assert res["k"] == 5
        else:
            p, c = _direct_linear(x[s.train], y[s.train], x[s.val], y[s.val], x[s.test])
            assert res["C"] == c and set(res["val_auroc"]) == {f"{c:g}" for c in probes.C_GRID}
        assert res["auroc"] == pytest.approx(roc_auc_score(y[s.test], p))
        assert res["auprc"] == pytest.approx(average_precision_score(y[s.test], p))
        assert (res["ci_low"], res["ci_high"]) == pytest.approx(
            tuple(bootstrap_auroc(y[s.test], p, 200, 0)[k] for k in ("ci_low", "ci_high")))
        assert res["split"]["n"] == {"train": {"n": 36, "positives": 18}, "val": {"n": 12, "positives": 6},
                                     "test": {"n": 12, "positives": 6}}
    # the label is in the signal: the frozen (untrained) tiny encoder still separates it
    assert probes.score_probe("knn", x, y, plan, n_boot=50)["auroc"] > 0.9


def test_small_set_falls_back_to_repeated_kfold_and_matches_sklearn(embedded):
    model, labels, x, y = embedded
    x, y = x[:30], y[:30]  # 15 + 15: 3 of each class in a 20 % test part
    plan = probes.plan_splits(y, None, None, seed=0)
    assert plan.rule == "repeated_kfold"
    for protocol in ("knn", "linear"):
        res = probes.score_probe(protocol, x, y, plan, n_boot=100)
        per_ecg = np.zeros((5, 30))
        folds = []
        for i, (train, test) in enumerate(RepeatedStratifiedKFold(n_splits=5, n_repeats=5, random_state=0)
                                          .split(np.zeros(30), y)):
            fit, val = next(StratifiedKFold(4, shuffle=True, random_state=0).split(np.zeros(len(train)), y[train]))
            fit, val = train[fit], train[val]
            p = (_direct_knn(x[fit], y[fit], x[test]) if protocol == "knn"
                 else _direct_linear(x[fit], y[fit], x[val], y[val], x[test])[0])
            per_ecg[i // 5, test] = p
            folds.append(roc_auc_score(y[test], p))
        score = per_ecg.mean(axis=0)
        assert res["auroc"] == pytest.approx(roc_auc_score(y, score))
        assert res["auprc"] == pytest.approx(average_precision_score(y, score))
        sp = res["split"]
        assert (sp["n_splits"], sp["n_repeats"], sp["folds_scored"]) == (5, 5, 25)
        assert sp["fold_auroc_mean"] == pytest.approx(np.mean(folds))
        assert sp["fold_auroc_sd"] == pytest.approx(np.std(folds, ddof=1))
        assert sp["n"]["test"] == [6, 6] and (res["positives"], res["negatives"]) == (15, 15)
        assert ("k" in res) == (protocol == "knn") and ("C_chosen" in res) == (protocol == "linear")


# -- PTB-XL: folds, patients, MI --------------------------------------------------------------------

def test_ptbxl_reader_gives_folds_patients_and_mi(labelled, tmp_path):
    labels = read_ptbxl(labelled / "ptbxl_database.csv", folds=None)
    items = labels.items
    assert len(items) == 60 and [it.fold for it in items[:3]] == [10, 10, 10] and items[30].fold == 9
    assert items[0].group == "900.0" and items[1].group == "900.0"
    # MI: the built-in codes (no scp_statements.csv here): IMI 1, NORM 0, LVH-only unlabelled
    assert [it.mi for it in items[:4]] == [0, None, 1, None]
    # with scp_statements.csv beside it, its diagnostic_class MI decides
    (labelled / "scp_statements.csv").write_text(",description,diagnostic_class\nIMI,inferior MI,STTC\n"
                                                 "LVH,a made-up MI,MI\nNORM,normal,NORM\n")
    try:
        assert [it.mi for it in read_ptbxl(labelled / "ptbxl_database.csv", folds=None).items[:3]] == [0, 1, None]
    finally:
        (labelled / "scp_statements.csv").unlink()


def _probe(labels: Path, out: Path, *args: str):
    return runner.invoke(app, ["eval", "--ecg-labels", str(labels), "--out", str(out), "--bootstrap", "100", *args])


def test_cli_ptbxl_probe_json_names_protocol_split_and_n(labelled, tiny_bundle, tmp_path):
    res = _probe(labelled / "ptbxl_database.csv", tmp_path / "o", "--protocol", "knn", "--model", str(tiny_bundle),
                 "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["protocol"] == "knn" and doc["probe"]["k"] == 5 and doc["features"]["array"] == "embedding"
    lvh = doc["targets"]["lvh"]
    assert lvh["split"]["rule"] == "ptbxl_strat_fold" and lvh["k"] == 5
    assert lvh["split"]["n"] == {"train": {"n": 24, "positives": 12}, "val": {"n": 12, "positives": 6},
                                 "test": {"n": 24, "positives": 12}}
    assert lvh["ci_low"] <= lvh["auroc"] <= lvh["ci_high"] and lvh["auprc"] is not None
    mi = doc["targets"]["mi"]  # 15 IMI vs 15 NORM: too few in fold 10 -> repeated k-fold, patient groups
    assert mi["split"]["rule"] == "repeated_kfold" and mi["split_groups"] == "patient"
    assert (mi["positives"], mi["negatives"]) == (15, 15)
    written = (tmp_path / "o" / "results.json").read_text() + (tmp_path / "o" / "report.md").read_text()
    assert "900" not in written and "records500" not in written  # no patient ids, no record paths
    res = _probe(labelled / "ptbxl_database.csv", tmp_path / "o2", "--protocol", "linear", "--model", str(tiny_bundle),
                 "--features", "features")
    assert res.exit_code == 0, res.output
    assert "LVH" in res.output and "ptbxl_strat_fold" in res.output and "C=" in res.output
    assert "linear probe on `features`" in res.output


def test_cli_probe_bad_input_is_one_error_line(labelled, tiny_bundle, tmp_path):
    csv_path = labelled / "labels.csv"
    cases = [
        (["--protocol", "knn"], "give --model MODEL_DIR"),
        (["--protocol", "svm", "--model", str(tiny_bundle)], "choose one of cross-modal, knn, linear"),
        (["--protocol", "knn", "--model", str(tiny_bundle), "--folds", "9"], "--folds belongs to --protocol cross-modal"),
        (["--protocol", "knn", "--model", str(tiny_bundle), "--features", "pixels"], "choose one of embedding, features"),
        (["--protocol", "linear", "--model", str(tiny_bundle), "--k", "3"], "--k belongs to --protocol knn"),
        (["--features", "features"], "--features belongs to --protocol knn|linear"),
    ]
    for args, msg in cases:
        res = _probe(csv_path, tmp_path / "o", *args)
        assert res.exit_code == 1 and msg in res.output and res.output.startswith("Error: "), (args, res.output)
    res = runner.invoke(app, ["eval", "--benchmark", "--protocol", "knn"])
    assert res.exit_code == 1 and "--protocol belongs to --ecg-labels" in res.output
    few = tmp_path / "few.csv"
    few.write_text("ecg_path,label\n" + "".join(f"{labelled}/records500/00000/{i:05d}_hr,{int(i < 4)}\n"
                                                for i in range(1, 11)))
    res = _probe(few, tmp_path / "o", "--protocol", "knn", "--model", str(tiny_bundle))
    assert res.exit_code == 1 and "nothing to score" in res.output
    assert "cannot be scored: 3 positive, 7 negative among 10 embedded ECGs; a probe needs at least 5 of each" in res.output
    assert not (tmp_path / "o" / "results.json").exists()


def test_default_protocol_is_the_cross_modal_vote(monkeypatch, tmp_path):
    """No --protocol, and --protocol cross-modal, call the existing cross-modal path with its old
    arguments (folds '10'); its output is covered by tests/test_eval_labels.py."""
    from e2r.cli import eval_cmd

    calls = []
    monkeypatch.setattr(eval_cmd, "_eval_labels", lambda *a: calls.append(a))
    monkeypatch.setattr(eval_cmd, "_eval_probe", lambda *a: calls.append(("probe", *a)))
    labels = tmp_path / "l.csv"
    for extra in ([], ["--protocol", "cross-modal"]):
        res = runner.invoke(app, ["eval", "--ecg-labels", str(labels), "--out", str(tmp_path), *extra])
        assert res.exit_code == 0, res.output
    assert len(calls) == 2 and calls[0] == calls[1] and calls[0][0] == labels and calls[0][2] == "10"


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_PTBXL.is_file(), reason="../shared/data/ecg/ptbxl is absent")
def test_real_ptbxl_labels_and_split_rule(tiny_bundle, tmp_path):
    items = read_ptbxl(SHARED_PTBXL, folds=None).items
    assert len(items) == 500 and sum(it.lvh for it in items) == 35
    mi = [it.mi for it in items if it.mi is not None]
    assert (sum(mi), len(mi) - sum(mi)) == (73, 297)  # MI statements vs NORM without one
    assert len({it.group for it in items}) == 466
    y = np.array([it.lvh for it in items])
    plan = probes.plan_splits(y, [it.fold for it in items], [it.group for it in items])
    assert plan.rule == "repeated_kfold"  # 7 LVH in fold 10 < MIN_TEST_CLASS
    g = np.array([it.group for it in items])
    assert all(not set(g[s.test]) & set(g[np.r_[s.train, s.val]]) for s in plan.splits)  # patient-disjoint
