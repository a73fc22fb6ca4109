"""kNN phenotype estimation against a plain-python reference; per-query and batched paths agree."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from e2r.errors import ConfigError, DataError
from e2r.phenotypes import LVEF_CLASSES, derive_labels, lvef_class
from e2r.metrics.knn import (
    ecg_knn_classify,
    ecg_knn_regress,
    knn_estimate,
    knn_predict,
    label_arrays,
)


def random_phenos(rng, n):
    """Study rows: some unlabelled, some without LVEF, LVH given directly or only as wall thickness."""
    rows = []
    for i in range(n):
        u = rng.random()
        if u < 0.1:
            rows.append(None)
            continue
        row = {"study_uid": f"s{i}", "lvedv": float(rng.normal(120, 20))}
        if u > 0.25:
            row["lvef"] = float(np.round(rng.uniform(20, 70), 0))  # rounded: ties in values
        if u < 0.6:
            row["ivsd"], row["lvpwd"] = float(rng.uniform(7, 16)), float(rng.uniform(7, 15))
        elif u < 0.85:
            row["lvh"] = int(rng.random() < 0.3)
        rows.append(row)
    return rows


def brute_estimate(scores, phenos, k, weighting, temperature, alpha, interval):
    """One query, python loops, straight from the module docstring."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])

    def lvh_of(p):
        if p.get("lvh") is not None:
            return p["lvh"]
        return derive_labels({f: p[f] for f in ("ivsd", "lvpwd") if f in p})["lvh"]

    def vote(get):
        chosen = [(scores[i], get(phenos[i])) for i in order if phenos[i] and get(phenos[i]) is not None][:k]
        s = [c[0] for c in chosen]
        if weighting == "uniform":
            w = [1.0] * len(s)
        elif weighting == "similarity":
            w = [max(x, 0.0) for x in s]
            if sum(w) == 0:
                w = [1.0] * len(s)
        else:
            w = [math.exp((x - max(s)) / temperature) for x in s]
        total = sum(w)
        return [c[1] for c in chosen], [x / total for x in w]

    def smooth(w_pos, n, n_classes):
        return (n * w_pos + alpha) / (n + n_classes * alpha)

    out = {}
    values, w = vote(lambda p: p.get("lvef"))
    n = len(values)
    out["n_lvef"] = n
    if n:
        out["probs"] = [smooth(sum(wi for v, wi in zip(values, w) if lvef_class(v) == c), n, 3) for c in LVEF_CLASSES]
        out["p_le45"] = smooth(sum(wi for v, wi in zip(values, w) if v <= 45), n, 2)
        out["lvef"] = sum(v * wi for v, wi in zip(values, w))
        pairs = sorted((v, wi) for v, wi in zip(values, w) if wi > 0)
        bounds = []
        for q in interval:
            cum = 0.0
            for v, wi in pairs:
                cum += wi
                if cum >= q - 1e-9:
                    bounds.append(v)
                    break
        out["interval"] = tuple(bounds)
    labels, w = vote(lvh_of)
    out["n_lvh"] = len(labels)
    if labels:
        out["p_lvh"] = smooth(sum(wi for v, wi in zip(labels, w) if v == 1), len(labels), 2)
    return out


@pytest.mark.parametrize("weighting", ["softmax", "similarity", "uniform"])
@pytest.mark.parametrize("seed", range(3))
def test_estimate_matches_python_reference(seed, weighting):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.uniform(-0.3, 0.9, size=40), 2)  # unsorted, with ties
    phenos = random_phenos(rng, 40)
    for k in (1, 7, 50):
        est = knn_estimate(scores, phenos, k=k, weighting=weighting, temperature=0.05, smoothing=0.5)
        ref = brute_estimate(list(scores), phenos, k, weighting, 0.05, 0.5, (0.1, 0.9))
        assert est.n_voters == {"lvef_class": ref["n_lvef"], "lvef_le45": ref["n_lvef"], "lvef": ref["n_lvef"], "lvh": ref["n_lvh"]}
        assert list(est.lvef_class_probs.values()) == pytest.approx(ref["probs"], abs=1e-12)
        assert sum(est.lvef_class_probs.values()) == pytest.approx(1.0)
        assert est.p_lvef_le45 == pytest.approx(ref["p_le45"], abs=1e-12)
        assert est.p_lvh == pytest.approx(ref["p_lvh"], abs=1e-12)
        assert est.lvef == pytest.approx(ref["lvef"], abs=1e-9)
        assert est.lvef_interval == pytest.approx(ref["interval"])
        assert est.lvef_interval[0] <= est.lvef_interval[1]
        assert est.lvef_class == LVEF_CLASSES[int(np.argmax(ref["probs"]))]


def test_per_query_and_batched_agree():
    rng = np.random.default_rng(10)
    n_q, n_g, top = 12, 80, 30
    gallery = random_phenos(rng, n_g)
    labels = label_arrays(gallery)
    sim = rng.normal(size=(n_q, n_g))
    sim[:, 5] = sim[:, 6]  # a tie, broken by gallery index on both paths
    idx = np.argsort(-sim, axis=1, kind="stable")[:, :top]
    top_sim = np.take_along_axis(sim, idx, axis=1)
    for weighting in ("softmax", "similarity", "uniform"):
        settings = dict(k=10, weighting=weighting, temperature=0.2)
        full = knn_predict(sim, labels, **settings)
        hits = knn_predict(top_sim, labels, neighbour_idx=idx, **settings)
        one_row_blocks = knn_predict(sim, labels, block_size=1, **settings)
        for q in range(n_q):
            est = knn_estimate(top_sim[q], [gallery[i] for i in idx[q]], **settings)
            assert est.n_voters["lvef"] == full.n_voters["lvef"][q] == hits.n_voters["lvef"][q] == 10
            assert est.n_voters["lvh"] == full.n_voters["lvh"][q] == hits.n_voters["lvh"][q] == 10
            for pred in (full, hits, one_row_blocks):
                np.testing.assert_allclose(pred.class_proba[q], list(est.lvef_class_probs.values()), atol=1e-12)
                assert pred.p_le45[q] == pytest.approx(est.p_lvef_le45, abs=1e-12)
                assert pred.p_lvh[q] == pytest.approx(est.p_lvh, abs=1e-12)
                assert pred.lvef[q] == pytest.approx(est.lvef, abs=1e-9)
                assert (pred.lvef_low[q], pred.lvef_high[q]) == pytest.approx(est.lvef_interval)


def test_fewer_labelled_than_k_and_padding():
    gallery = [{"lvef": 30.0}, None, {"lvef": 60.0, "lvh": 1}, {"ivsd": 9.0}]
    labels = label_arrays(gallery)
    np.testing.assert_array_equal(labels["lvh"], [np.nan, np.nan, 1.0, 0.0])
    pred = knn_predict(np.array([[0.9, 0.8, 0.7, 0.0]]), labels, k=50, weighting="uniform",
                       neighbour_idx=np.array([[0, 1, 2, -1]]))  # -1: the store returned fewer hits
    assert pred.n_voters["lvef"][0] == 2 and pred.n_voters["lvh"][0] == 1
    assert pred.lvef[0] == pytest.approx(45.0)
    est = knn_estimate([0.9, 0.8, 0.7, 0.6], gallery, k=50)
    assert est.n_voters["lvef"] == 2 and est.n_voters["lvh"] == 2
    assert any("only 2 of the 4 neighbours carry an LVEF" in note for note in est.notes)


def test_no_labelled_neighbour_gives_missing_estimate():
    est = knn_estimate([0.5, 0.4], [None, {"study_uid": "x"}], k=5)
    assert est.lvef is None and est.lvef_class_probs is None and est.p_lvh is None and est.lvef_interval is None
    assert est.n_voters == {"lvef_class": 0, "lvef_le45": 0, "lvef": 0, "lvh": 0}
    assert len(est.notes) == 2
    pred = knn_predict(np.array([[0.5, 0.4]]), label_arrays([None, None]), k=5)
    assert np.isnan(pred.class_proba).all() and np.isnan(pred.lvef[0]) and np.isnan(pred.p_lvh[0])
    empty = knn_estimate([], [], k=5)
    assert empty.lvef is None and empty.n_neighbours == 0


def test_smoothing_keeps_probabilities_off_zero_and_one():
    est = knn_estimate([0.9], [{"lvef": 30.0, "lvh": 1}], k=5, smoothing=0.5)
    probs = est.lvef_class_probs
    assert probs["reduced"] == pytest.approx(1.5 / 2.5) and probs["preserved"] == pytest.approx(0.5 / 2.5)
    assert 0 < est.p_lvh < 1 and est.p_lvh == pytest.approx(1.5 / 2.0)
    raw = knn_estimate([0.9], [{"lvef": 30.0, "lvh": 1}], k=5, smoothing=0.0)
    assert raw.lvef_class_probs["reduced"] == 1.0 and raw.p_lvh == 1.0 and raw.p_lvef_le45 == 1.0


def test_similarity_weighting_falls_back_to_uniform():
    est = knn_estimate([-0.1, -0.2], [{"lvef": 30.0}, {"lvef": 60.0}], k=5, weighting="similarity", smoothing=0)
    assert est.lvef == pytest.approx(45.0)
    assert any("uniform" in note for note in est.notes)


def test_softmax_temperature_sharpens_towards_nearest():
    phenos = [{"lvef": 30.0}, {"lvef": 60.0}]
    sharp = knn_estimate([0.9, 0.5], phenos, k=2, temperature=0.01, smoothing=0)
    flat = knn_estimate([0.9, 0.5], phenos, k=2, temperature=100.0, smoothing=0)
    assert sharp.lvef == pytest.approx(30.0, abs=1e-6) and flat.lvef == pytest.approx(45.0, abs=0.1)


def test_to_dict_keys_are_stable_and_json_ready():
    rng = np.random.default_rng(0)
    est = knn_estimate(rng.uniform(size=20), random_phenos(rng, 20), k=5)
    d = est.to_dict()
    assert list(d) == ["lvef_class_probs", "lvef_class", "p_lvef_le45", "p_lvh", "lvef", "lvef_interval",
                       "n_voters", "n_neighbours", "settings", "notes"]
    assert list(d["lvef_class_probs"]) == list(LVEF_CLASSES)
    assert json.loads(json.dumps(d)) == d


def test_lvef_class_index_matches_phenotypes():
    from e2r.phenotypes import lvef_class_index

    values = [10.0, 39.999, 40.0, 45.0, 49.99, 50.0, 80.0]
    assert [LVEF_CLASSES[i] for i in lvef_class_index(values)] == [lvef_class(v) for v in values]
    assert lvef_class_index([np.nan])[0] == -1


@pytest.mark.parametrize(
    "kwargs, err",
    [
        ({"k": 0}, ConfigError),
        ({"weighting": "distance"}, ConfigError),
        ({"temperature": 0.0}, ConfigError),
        ({"smoothing": -1.0}, ConfigError),
        ({"interval": (0.9, 0.1)}, ConfigError),
    ],
)
def test_bad_settings_raise(kwargs, err):
    with pytest.raises(err):
        knn_estimate([0.5], [{"lvef": 50.0}], **kwargs)


def test_bad_inputs_raise():
    with pytest.raises(DataError):
        knn_estimate([0.5, 0.4], [{"lvef": 50.0}])
    with pytest.raises(DataError):
        knn_estimate([0.5], [{"lvef": "high"}])
    labels = label_arrays([{"lvef": 50.0}] * 3)
    with pytest.raises(DataError):
        knn_predict(np.zeros((2, 4)), labels)
    with pytest.raises(DataError):
        knn_predict(np.zeros((1, 2)), labels, neighbour_idx=np.array([[0, 3]]))
    with pytest.raises(DataError):
        knn_predict(np.full((1, 3), np.nan), labels)


# ---------------------------------------------------------------- the paper's protocol
def brute_cosine_topk(train, test, k):
    tr = train / np.linalg.norm(train, axis=1, keepdims=True)
    te = test / np.linalg.norm(test, axis=1, keepdims=True)
    return np.argsort(-(te @ tr.T), axis=1)[:, :k]


def test_ecg_knn_classify_matches_numpy():
    rng = np.random.default_rng(12)
    train, test = rng.normal(size=(60, 16)), rng.normal(size=(15, 16))
    labels = [LVEF_CLASSES[i] for i in rng.integers(0, 2, size=60)]  # 'preserved' never seen
    labels[3] = None
    proba, classes = ecg_knn_classify(train, labels, test, k=5, classes=LVEF_CLASSES)
    assert classes == LVEF_CLASSES and proba.shape == (15, 3)
    keep = [i for i, v in enumerate(labels) if v is not None]
    nn = brute_cosine_topk(train[keep], test, 5)
    kept_labels = np.array([labels[i] for i in keep])
    for q in range(15):
        for c, name in enumerate(LVEF_CLASSES):
            assert proba[q, c] == pytest.approx(np.mean(kept_labels[nn[q]] == name))
    assert (proba[:, 2] == 0).all()
    binary, classes = ecg_knn_classify(train, rng.integers(0, 2, size=60), test, k=100)  # k capped at 60
    assert classes == (0, 1) and np.allclose(binary, binary[0])
    with pytest.raises(DataError):
        ecg_knn_classify(train, ["other"] * 60, test, classes=LVEF_CLASSES)


def test_ecg_knn_regress_matches_numpy():
    rng = np.random.default_rng(13)
    train, test = rng.normal(size=(40, 8)), rng.normal(size=(6, 8))
    values = rng.uniform(20, 70, size=40)
    values[:4] = np.nan
    got = ecg_knn_regress(train, values, test, k=5)
    nn = brute_cosine_topk(train[4:], test, 5)
    np.testing.assert_allclose(got, values[4:][nn].mean(axis=1))
    with pytest.raises(DataError):
        ecg_knn_regress(train, np.full(40, np.nan), test)


def test_full_matrix_breaks_ties_at_kth_place_by_gallery_index():
    lvef = np.array([np.nan, 30.0, 40.0, np.nan, 50.0, 60.0, 70.0])
    labels = {"lvef": lvef, "lvh": np.full(7, np.nan)}
    pred = knn_predict(np.ones((1, 7), dtype=np.float32), labels, k=3, weighting="uniform", smoothing=0)
    assert pred.lvef[0] == pytest.approx(40.0)  # ids 1, 2, 4: the three lowest labelled ids
    assert pred.n_voters["lvef"][0] == 3 and pred.n_voters["lvh"][0] == 0 and np.isnan(pred.p_lvh[0])
    few = knn_predict(np.linspace(0, 1, 7)[None, :], labels, k=6, weighting="uniform")
    assert few.n_voters["lvef"][0] == 5 and few.lvef[0] == pytest.approx(50.0)


def test_interval_is_inverted_weighted_cdf():
    phenos = [{"lvef": float(v)} for v in (55, 25, 35, 65, 45, 30, 50, 60, 40, 70)]
    est = knn_estimate(np.linspace(0.9, 0.1, 10), phenos, k=10, weighting="uniform", interval=(0.1, 0.9))
    assert est.lvef_interval == (25.0, 65.0)  # the 1st and 9th of ten equally weighted values
    assert est.lvef == pytest.approx(47.5)
    full = knn_estimate(np.linspace(0.9, 0.1, 10), phenos, k=10, weighting="uniform", interval=(0.0, 1.0))
    assert full.lvef_interval == (25.0, 70.0)
