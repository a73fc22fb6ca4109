"""Every arm as a feature extractor (queries.eval.features): the kNN and linear probes on small
synthetic arrays, checked against a direct scikit-learn computation; the criteria vectors; and the
benchmark's linear probe on real PTB-XL records against `e2r eval --protocol linear`'s (skipped when
../shared/data is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from e2r.phenotypes import LVEF_CLASSES
from queries.eval.features import FeatureSet, criteria_features, feature_extractor_metrics
from queries.eval.probes import C_GRID, linear_probe, linear_probe_proba


def _split(prefix: str, n: int, rng: np.random.Generator):
    """n ECG vectors (8-d) whose first axes follow the LVEF and the wall, plus noise; their phenotypes."""
    lvef = rng.uniform(20, 70, n)
    wall = rng.uniform(8, 16, n)
    x = np.column_stack([(lvef - 45) / 15, (wall - 12) / 3, rng.standard_normal((n, 6))])
    x[:, :2] += 0.7 * rng.standard_normal((n, 2))
    uids = [f"{prefix}{i}" for i in range(n)]
    rows = {u: {"lvef": float(v), "ivsd": float(w), "lvpwd": 9.0} for u, v, w in zip(uids, lvef, wall)}
    return x, uids, rows


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    (xt, ut, rt), (xv, uv, rv), (xs, us, rs) = (_split(p, n, rng) for p, n in (("T", 90), ("V", 40), ("S", 50)))
    phenos = {**rt, **rv, **rs}
    phenos["T0"] = {"lvef": None, "ivsd": None, "lvpwd": None}  # unlabelled: left out of every fit
    return FeatureSet(xt, ut, xv, uv, xs, us), phenos


def _labels(uids, phenos):
    lvef = np.array([np.nan if phenos[u]["lvef"] is None else phenos[u]["lvef"] for u in uids])
    wall = np.array([np.nan if phenos[u]["ivsd"] is None else max(phenos[u]["ivsd"], phenos[u]["lvpwd"]) for u in uids])
    cls = np.where(np.isnan(lvef), -1, np.searchsorted([40, 50], np.nan_to_num(lvef), side="right"))
    le45 = np.where(np.isnan(lvef), np.nan, (lvef <= 45).astype(float))
    lvh = np.where(np.isnan(wall), np.nan, (wall >= 13).astype(float))
    return {"lvef_class": cls, "lvef_le45": le45, "lvh": lvh}


def _direct_linear(fs, y_train, y_val, multi: bool):
    """The linear probe by hand: every C of the grid fitted on train, the best validation AUROC wins."""
    fit, val = y_train >= 0, y_val >= 0
    best, best_auc, best_model = None, -1.0, None
    for c in C_GRID:
        lr = LogisticRegression(C=c, solver="liblinear", max_iter=5000, random_state=0)
        model = make_pipeline(StandardScaler(), OneVsRestClassifier(lr) if multi else lr).fit(fs.train[fit], y_train[fit])
        p = model.predict_proba(fs.val[val])
        if multi:
            present = [k for k in model.classes_ if 0 < np.sum(y_val[val] == k) < val.sum()]
            auc = np.mean([roc_auc_score(y_val[val] == k, p[:, list(model.classes_).index(k)]) for k in present])
        else:
            auc = roc_auc_score(y_val[val], p[:, 1])
        if auc > best_auc:
            best, best_auc, best_model = c, auc, model
    return best, best_model.predict_proba(fs.test)


def test_knn_and_linear_probes_match_scikit_learn(features):
    fs, phenos = features
    out = feature_extractor_metrics(fs, phenos)
    assert set(out) == {"knn", "linear"} and set(out["knn"]) == {"lvef_class", "lvef_le45", "lvh"}
    y = {s: _labels(getattr(fs, f"{s}_study"), phenos) for s in ("train", "val", "test")}
    # kNN: the paper's protocol, k = 5, cosine, uniform vote over the labelled train rows
    for key in ("lvef_le45", "lvh"):
        keep = np.isfinite(y["train"][key])
        knn = KNeighborsClassifier(5, metric="cosine", algorithm="brute").fit(fs.train[keep], y["train"][key][keep])
        want = roc_auc_score(y["test"][key], knn.predict_proba(fs.test)[:, 1])
        assert out["knn"][key]["auroc"] == pytest.approx(want)
        assert out["knn"][key]["n"] == len(fs.test)
    # linear: binary targets
    for key in ("lvef_le45", "lvh"):
        yt = np.nan_to_num(y["train"][key], nan=-1).astype(int)
        yv = np.nan_to_num(y["val"][key], nan=-1).astype(int)
        c, proba = _direct_linear(fs, yt, yv, multi=False)
        assert out["linear"]["C"][key] == c
        assert out["linear"][key]["auroc"] == pytest.approx(roc_auc_score(y["test"][key], proba[:, 1]))
    # linear: the LVEF class, macro one-vs-rest AUROC over the classes present
    c, proba = _direct_linear(fs, y["train"]["lvef_class"], y["val"]["lvef_class"], multi=True)
    assert out["linear"]["C"]["lvef_class"] == c
    yc = y["test"]["lvef_class"]
    want = np.mean([roc_auc_score(yc == k, proba[:, k]) for k in range(len(LVEF_CLASSES)) if 0 < np.sum(yc == k) < len(yc)])
    assert out["linear"]["lvef_class"]["auroc_macro"] == pytest.approx(want)
    # the vectors carry LVEF and the wall, so both probes see them
    assert out["linear"]["lvef_le45"]["auroc"] > 0.8 and out["knn"]["lvh"]["auroc"] > 0.6


def test_binary_linear_probe_is_the_two_class_case_of_the_general_one(features):
    fs, phenos = features
    y = _labels(fs.train_study, phenos)["lvh"]
    yv = _labels(fs.val_study, phenos)["lvh"]
    keep = np.isfinite(y)
    p, c, val_auroc = linear_probe(fs.train[keep], y[keep].astype(int), fs.val, yv.astype(int), fs.test)
    proba, classes, c2, val2 = linear_probe_proba(fs.train[keep], y[keep].astype(int), fs.val, yv.astype(int), fs.test)
    assert classes == [0, 1] and c == c2 and val_auroc == val2
    np.testing.assert_array_equal(p, proba[:, 1])
    # a validation set of one class: C = 1, no AUROC to choose by
    _, _, c1, v1 = linear_probe_proba(fs.train[keep], y[keep].astype(int), fs.val[:3], np.zeros(3, int), fs.test)
    assert c1 == 1.0 and v1 == {1.0: None}


def test_no_labelled_train_ecg_gives_no_block_and_one_class_gives_nan(features):
    fs, phenos = features
    blank = {u: {"lvef": None, "ivsd": None, "lvpwd": None} for u in fs.train_study}
    assert feature_extractor_metrics(fs, {**phenos, **blank}) == {}
    thin = {**phenos, **{u: {**phenos[u], "ivsd": 9.0} for u in fs.train_study if phenos[u]["ivsd"] is not None}}
    out = feature_extractor_metrics(fs, thin)  # no LVH in train: the linear LVH probe cannot be fitted
    assert np.isnan(out["linear"]["lvh"]["auroc"]) and "lvh" not in out["linear"]["C"]
    assert np.isfinite(out["linear"]["lvef_le45"]["auroc"])


def test_criteria_vectors_are_z_scored_on_train_with_missing_values_at_the_mean():
    from e2r.ecg.criteria import ECGCriteria
    import dataclasses

    fields = {f.name for f in dataclasses.fields(ECGCriteria)}

    def crit(sl, co, qrs, lbbb):
        base = {name: 0 for name in fields}
        return ECGCriteria(**{**base, "sokolow_lyon_mv": sl, "cornell_mv": co, "qrs_ms": qrs, "lbbb": lbbb,
                              "n_beats": 8})

    train = [crit(2.0, 1.0, 90.0, 0), crit(4.0, 3.0, 110.0, 0), None]
    test = [crit(3.0, 2.0, 130.0, 1), None]
    fs = criteria_features({"train": train, "val": [], "test": test},
                           {"train": ["a", "b", "c"], "val": [], "test": ["d", "e"]})
    np.testing.assert_allclose(fs.train, [[-1, -1, -1, 0], [1, 1, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(fs.test, [[0, 0, 3, 1], [0, 0, 0, 0]])  # lbbb: SD 0 on train -> divided by 1
    assert fs.val.shape == (0, 4) and fs.test_study == ["d", "e"]


SHARED_PTBXL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ecg" / "ptbxl"


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_PTBXL.is_dir(), reason="../shared/data/ecg/ptbxl is absent")
def test_real_ecg_probe_is_the_linear_protocol_of_e2r_eval(tiny_bundle):
    """The benchmark's linear probe on real PTB-XL records gives what `e2r eval --ecg-labels --protocol
    linear --features features` gives for the same bundle; the criteria are probed on the same splits."""
    import dataclasses

    from e2r.bundle import load_model
    from queries.eval.probes import score_probes
    from queries.eval.real_ecgs import RealECGScorer, read_real_labels

    labels = read_real_labels(SHARED_PTBXL)
    lvh = [it for it in labels.items if it.lvh][:12]
    mi = [it for it in labels.items if it.mi and not it.lvh][:12]
    rest = [it for it in labels.items if not it.lvh and it.mi == 0][:36]
    labels = dataclasses.replace(labels, items=tuple(lvh + mi + rest))
    scorer = RealECGScorer(None, labels, n_boot=200)
    got = scorer.bundle(tiny_bundle)
    want = score_probes(labels, load_model(tiny_bundle), "linear", array="features", n_boot=200, progress=False)
    assert set(got["targets"]) == {"lvh", "mi"} and got["left_out"] == 0
    for target, entry in got["targets"].items():
        ref = want["targets"][target]
        assert entry["auroc"] == pytest.approx(ref["auroc"], abs=1e-9)
        assert (entry["ci_low"], entry["ci_high"]) == pytest.approx((ref["ci_low"], ref["ci_high"]), abs=1e-9)
        assert entry["split"] == ref["split"]["rule"] and entry["scored"] == ref["scored"]
        assert (entry["positives"], entry["negatives"]) == (ref["positives"], ref["negatives"])
    assert scorer.inputs(load_model(tiny_bundle).preset.ecg_preprocess)[0].shape == (60, 12, 1000)  # read once
    crit = scorer.criteria()
    assert "sokolow_lyon_mv" in crit["vectors"] and crit["targets"]["lvh"]["scored"] + crit["left_out"] >= 12
    assert 0.0 <= crit["targets"]["lvh"]["auroc"] <= 1.0
