"""Retrieval, classification and aggregation metrics against brute-force and scikit-learn references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    mean_absolute_error,
    roc_auc_score,
)
from sklearn.metrics.pairwise import cosine_similarity

from e2r.errors import ConfigError, DataError
from e2r.metrics.classification import binary_metrics, classification_metrics, regression_metrics
from e2r.metrics.retrieval import (
    exact_relevance,
    per_phenotype_relevance,
    phenotype_relevance,
    retrieval_metrics,
    similarity_matrix,
    wall_motion_relevance,
)
from e2r.phenotypes import cohort_sd, phenotype_arrays
from queries.eval.aggregate import mean_sd


# ---------------------------------------------------------------- retrieval: brute-force reference
def brute_retrieval(sim, rel, ks, ties):
    """Per-query python loops: rank, then read every figure off the ranked list."""
    recall = {k: [] for k in ks}
    precision = {k: [] for k in ks}
    aps, firsts = [], []
    n_g = sim.shape[1]
    for s, r in zip(sim.tolist(), rel.tolist()):
        if not any(r):
            continue
        if ties == "pessimistic":
            ranked = sorted(range(n_g), key=lambda j: (-s[j], r[j], j))
        else:
            ranked = sorted(range(n_g), key=lambda j: (-s[j], j))
        flags = [r[j] for j in ranked]
        hits, precs = 0, []
        for pos, flag in enumerate(flags, start=1):
            if flag:
                hits += 1
                precs.append(hits / pos)
        aps.append(sum(precs) / len(precs))
        firsts.append(flags.index(True) + 1)
        for k in ks:
            top = flags[: min(k, n_g)]
            recall[k].append(float(any(top)))
            precision[k].append(sum(top) / len(top))
    return {
        **{f"recall@{k}": np.mean(v) for k, v in recall.items()},
        **{f"precision@{k}": np.mean(v) for k, v in precision.items()},
        "map": np.mean(aps),
        "median_rank": float(np.median(firsts)),
        "n_evaluated": len(aps),
    }


@pytest.mark.parametrize("ties", ["pessimistic", "index"])
@pytest.mark.parametrize("seed", range(4))
def test_retrieval_matches_brute_force_with_ties_and_empty_queries(seed, ties):
    rng = np.random.default_rng(seed)
    q, g = 17, 23
    sim = rng.integers(0, 4, size=(q, g)) / 4.0  # few distinct values: many ties
    rel = rng.random((q, g)) < 0.15
    rel[:3] = False  # queries with no relevant item
    ks = (1, 3, 5, 10, 40)
    got = retrieval_metrics(sim, rel, ks=ks, ties=ties).to_dict()
    ref = brute_retrieval(sim, rel, ks, ties)
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key
    assert got["n_queries"] == q and got["n_without_relevant"] == q - ref["n_evaluated"]
    assert got["gallery_size"] == g


def test_map_matches_sklearn_average_precision_without_ties():
    rng = np.random.default_rng(7)
    sim = rng.normal(size=(30, 50))
    rel = rng.random((30, 50)) < 0.2
    rel[0] = False
    rows = [i for i in range(30) if rel[i].any()]
    ref = np.mean([average_precision_score(rel[i], sim[i]) for i in rows])
    res = retrieval_metrics(sim, rel)
    assert res.mean_ap == pytest.approx(ref, abs=1e-12)
    assert res.n_without_relevant == 30 - len(rows)


def test_chunked_equals_unchunked():
    rng = np.random.default_rng(3)
    sim = np.round(rng.normal(size=(41, 29)), 1).astype(np.float32)
    rel = rng.random((41, 29)) < 0.1
    full = retrieval_metrics(sim, rel, block_size=41)
    for block in (1, 4, 13):
        part = retrieval_metrics(sim, rel, block_size=block)
        assert part.to_dict() == full.to_dict()
        np.testing.assert_array_equal(part.first_relevant_rank, full.first_relevant_rank)


def test_exact_pairing_perfect_and_recall_curve():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(12, 8))
    keys = [f"study{i}" for i in range(12)]
    sim = similarity_matrix(emb, emb)
    res = retrieval_metrics(sim, exact_relevance(keys, keys), ks=(1, 5))
    assert res.recall_at == {1: 1.0, 5: 1.0}
    assert res.precision_at[5] == pytest.approx(0.2)
    assert res.mean_ap == 1.0 and res.median_rank == 1.0 and res.mean_relevant == 1.0
    # reversed gallery order: the pair is always last
    res = retrieval_metrics(-sim, exact_relevance(keys, keys), ks=(1, 12))
    assert res.median_rank == 12 and res.recall_at == {1: 0.0, 12: 1.0}
    curve = res.recall_curve(12)
    assert curve[:11].sum() == 0 and curve[11] == 1.0


def test_constant_scores_get_no_credit_from_ties():
    rel = np.eye(5, dtype=bool)
    sim = np.ones((5, 5))
    assert retrieval_metrics(sim, rel, ks=(1,)).recall_at[1] == 0.0
    # index ties: query 0's pair is gallery item 0, first in index order
    assert retrieval_metrics(sim, rel, ks=(1,), ties="index").recall_at[1] == pytest.approx(0.2)


def test_retrieval_all_queries_without_relevant_is_nan():
    res = retrieval_metrics(np.zeros((3, 4)), np.zeros((3, 4), dtype=bool))
    assert res.n_without_relevant == 3 and math.isnan(res.mean_ap) and math.isnan(res.recall_at[1])


@pytest.mark.parametrize(
    "sim, rel, kwargs, err",
    [
        (np.zeros((2, 3)), np.zeros((2, 4), dtype=bool), {}, DataError),
        (np.zeros((2, 3)), np.zeros((2, 3)), {}, DataError),
        (np.full((2, 3), np.nan), np.zeros((2, 3), dtype=bool), {}, DataError),
        (np.zeros((2, 3)), np.zeros((2, 3), dtype=bool), {"ks": (0,)}, ConfigError),
        (np.zeros((2, 3)), np.zeros((2, 3), dtype=bool), {"ties": "random"}, ConfigError),
        (np.zeros((2, 0)), np.zeros((2, 0), dtype=bool), {}, DataError),
    ],
)
def test_retrieval_rejects_bad_input(sim, rel, kwargs, err):
    with pytest.raises(err):
        retrieval_metrics(sim, rel, **kwargs)


def test_similarity_matrix_is_cosine():
    rng = np.random.default_rng(1)
    q, g = rng.normal(size=(4, 6)) * 3, rng.normal(size=(7, 6))
    np.testing.assert_allclose(similarity_matrix(q, g), cosine_similarity(q, g), atol=1e-6)
    assert np.all(similarity_matrix(np.zeros((1, 6)), g) == 0)
    with pytest.raises(DataError):
        similarity_matrix(q, rng.normal(size=(3, 5)))


def test_phenotype_relevance_matches_brute_force():
    rng = np.random.default_rng(5)
    fields = ("lvef", "lvedv")
    gal = {f: rng.normal(50, 10, size=40) for f in fields}
    qry = {f: rng.normal(50, 10, size=9) for f in fields}
    gal["lvef"][[2, 7]] = np.nan
    qry["lvedv"][4] = np.nan
    got = phenotype_relevance(qry, gal, fields)
    sd = {f: np.nanstd(gal[f]) for f in fields}
    for i in range(9):
        for j in range(40):
            want = all(abs(gal[f][j] - qry[f][i]) <= 0.5 * sd[f] for f in fields)  # NaN -> False
            assert got[i, j] == want
    assert not got[4].any() and not got[:, [2, 7]].any()
    single = phenotype_relevance(qry, gal, "lvef", sd={"lvef": 4.0}, tol=1.0)
    np.testing.assert_array_equal(single, np.abs(gal["lvef"][None] - qry["lvef"][:, None]) <= 4.0)
    assert got.sum() < phenotype_relevance(qry, gal, "lvef").sum()  # all fields is stricter
    with pytest.raises(DataError):
        phenotype_relevance(qry, gal, ("lvesv",))
    with pytest.raises(ConfigError):
        phenotype_relevance(qry, gal, ())


def test_paired_study_is_phenotype_relevant_and_chunking_does_not_matter(monkeypatch):
    import e2r.metrics.retrieval as rm

    rng = np.random.default_rng(2)
    gal = {"lvef": rng.normal(55, 8, size=30), "ivsd": rng.normal(10, 2, size=30)}
    full = phenotype_relevance(gal, gal, ("lvef", "ivsd"))
    assert full.diagonal().all()
    monkeypatch.setattr(rm, "_BLOCK_ELEMENTS", 31)  # one row per block
    np.testing.assert_array_equal(phenotype_relevance(gal, gal, ("lvef", "ivsd")), full)


def _cohort_rows(rng, n):
    """Phenotype rows with missing values, regional wall motion, and a few exact repeats (ties)."""
    rows = []
    for i in range(n):
        edv = float(rng.choice([100.0, 120.0, 150.0])) if i % 5 == 0 else float(rng.uniform(80, 220))
        rows.append({"lvef": float(rng.uniform(20, 70)), "lvedv": edv, "lvesv": edv * float(rng.uniform(0.3, 0.8)),
                     "wmsi": float(rng.choice([1.0, 1.0, 1.4, 1.9, 2.6])),
                     "territory": str(rng.choice(["none", "none", "LAD", "RCA", "LAD+RCA"]))})
    rows[3]["lvedv"] = None  # no lvedv: no lvedv or lvsv relevance either side
    rows[4]["lvef"] = None
    rows[6]["territory"] = None  # no territory: only its WMSI can match
    rows[7]["wmsi"] = None
    rows[8] = None  # a study without phenotypes matches nothing
    return rows


def _brute_within(q_row, g_row, field, sd, tol=0.5):
    """One (query, gallery) pair by the paper's rule, in plain python; lvsv = lvedv - lvesv."""
    def value(row):
        if row is None:
            return None
        if field == "lvsv":
            return None if row["lvedv"] is None or row["lvesv"] is None else row["lvedv"] - row["lvesv"]
        return row[field]
    a, b = value(q_row), value(g_row)
    return a is not None and b is not None and abs(b - a) <= tol * sd


@pytest.mark.parametrize("ties", ["pessimistic", "index"])
def test_per_phenotype_and_wall_motion_map_match_brute_force(ties):
    rng = np.random.default_rng(11)
    gallery = _cohort_rows(rng, 40)
    queries = [gallery[i] for i in range(0, 40, 3)] + _cohort_rows(rng, 10)  # paired studies and strangers
    cohort = {f"S{i}": r for i, r in enumerate(gallery + queries) if r is not None}
    fields = ("lvef", "lvedv", "lvesv", "lvsv")
    sd = cohort_sd(cohort, (*fields, "wmsi"))
    lvsv = [r["lvedv"] - r["lvesv"] for r in cohort.values() if r["lvedv"] is not None]
    assert sd["lvsv"] == pytest.approx(np.std(lvsv))  # the SD of the derived values
    sim = rng.integers(0, 5, size=(len(queries), len(gallery))) / 5.0  # many ties
    got = per_phenotype_relevance(phenotype_arrays(queries, fields), phenotype_arrays(gallery, fields), sd=sd)
    assert list(got) == list(fields)
    for f in fields:
        want = np.array([[_brute_within(q, g, f, sd[f]) for g in gallery] for q in queries])
        np.testing.assert_array_equal(got[f], want, err_msg=f)
        assert 0 < want.sum() < want.size / 2, f
        res = retrieval_metrics(sim, got[f], ties=ties).to_dict()
        assert res["map"] == pytest.approx(brute_retrieval(sim, want, (1,), ties)["map"], abs=1e-12)
    # e2r's conjunction on the same fields is the AND of the per-field matrices: stricter than each
    conj = phenotype_relevance(phenotype_arrays(queries, fields), phenotype_arrays(gallery, fields), fields, sd=sd)
    np.testing.assert_array_equal(conj, np.logical_and.reduce(list(got.values())))

    def territory(row):
        return None if row is None else row["territory"]
    wm = wall_motion_relevance(phenotype_arrays(queries, ("wmsi",))["wmsi"], phenotype_arrays(gallery, ("wmsi",))["wmsi"],
                               [territory(q) for q in queries], [territory(g) for g in gallery], sd=sd)
    want = np.array([[(territory(q) is not None and territory(q) == territory(g)) or _brute_within(q, g, "wmsi", sd["wmsi"])
                      for g in gallery] for q in queries])
    np.testing.assert_array_equal(wm, want)
    assert want.any() and not want.all()
    res = retrieval_metrics(sim, wm, ties=ties).to_dict()
    assert res["map"] == pytest.approx(brute_retrieval(sim, want, (1,), ties)["map"], abs=1e-12)


def test_wall_motion_relevance_edge_cases():
    nan = float("nan")
    # territory alone (no WMSI anywhere): equal known territories only, None never matches None
    rel = wall_motion_relevance([nan, nan, nan], [nan, nan], ["LAD", None, "none"], ["LAD", None])
    np.testing.assert_array_equal(rel, [[True, False], [False, False], [False, False]])
    # WMSI alone: within tol x the given SD
    rel = wall_motion_relevance([1.0], [1.2, 1.6], [None], [None, None], sd={"wmsi": 0.5})
    np.testing.assert_array_equal(rel, [[True, False]])
    with pytest.raises(DataError):
        wall_motion_relevance([1.0, 2.0], [1.0], ["LAD"], ["LAD"])


# ---------------------------------------------------------------- classification
def brute_auroc(pos_scores, neg_scores):
    """Probability that a positive outscores a negative, ties counting one half."""
    pairs = [(p > n) + 0.5 * (p == n) for p in pos_scores for n in neg_scores]
    return sum(pairs) / len(pairs)


CLASSES = ("reduced", "mildly_reduced", "preserved")


def _random_multiclass(rng, n=60):
    y = rng.integers(0, 3, size=n)
    logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, np.round(proba, 2)  # rounding creates ties


def test_classification_matches_sklearn():
    rng = np.random.default_rng(11)
    y, proba = _random_multiclass(rng)
    labels = [CLASSES[i] for i in y]
    proba = proba / proba.sum(axis=1, keepdims=True)  # sklearn's ovr needs rows summing to 1
    got = classification_metrics(labels, proba, CLASSES)
    assert got["auroc_macro"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    ap = [average_precision_score(y == c, proba[:, c]) for c in range(3)]
    assert got["auprc_macro"] == pytest.approx(np.mean(ap))
    pred = proba.argmax(axis=1)
    assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert got["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert got["n"] == 60 and got["n_missing"] == 0 and got["classes_absent"] == []


def test_macro_auroc_equals_pairwise_brute_force():
    rng = np.random.default_rng(4)
    y, proba = _random_multiclass(rng, n=25)
    got = classification_metrics([CLASSES[i] for i in y], proba, CLASSES)
    ref = np.mean([brute_auroc(proba[y == c, c], proba[y != c, c]) for c in range(3)])
    assert got["auroc_macro"] == pytest.approx(ref, abs=1e-12)


def test_absent_class_excluded_and_reported():
    rng = np.random.default_rng(6)
    y, proba = _random_multiclass(rng, n=40)
    y = np.where(y == 1, 2, y)  # no mildly_reduced in y_true
    proba[0] = np.nan  # a query without voters
    got = classification_metrics([CLASSES[i] for i in y], proba, CLASSES)
    assert got["classes_absent"] == ["mildly_reduced"] and got["n_missing"] == 1 and got["n"] == 39
    assert set(got["auroc"]) == {"reduced", "preserved"}
    keep = slice(1, None)
    yk, pk = y[keep], proba[keep]
    ref = np.mean([brute_auroc(pk[yk == c, c], pk[yk != c, c]) for c in (0, 2)])
    assert got["auroc_macro"] == pytest.approx(ref)
    assert got["auprc_macro"] == pytest.approx(np.mean([average_precision_score(yk == c, pk[:, c]) for c in (0, 2)]))
    pred = pk.argmax(axis=1)
    assert got["f1_macro"] == pytest.approx(f1_score(yk, pred, labels=[0, 2], average="macro", zero_division=0))


def test_classification_single_class_and_bad_labels():
    proba = np.tile([0.2, 0.3, 0.5], (4, 1))
    got = classification_metrics(["preserved"] * 4, proba, CLASSES)
    assert math.isnan(got["auroc_macro"]) and got["balanced_accuracy"] == 1.0
    with pytest.raises(DataError):
        classification_metrics(["normal"] * 4, proba, CLASSES)
    with pytest.raises(DataError):
        classification_metrics(["preserved"] * 3, proba, CLASSES)


def test_binary_matches_sklearn_and_handles_edges():
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, size=50)
    p = np.round(np.clip(0.3 * y + rng.uniform(0, 0.7, size=50), 0, 1), 2)
    got = binary_metrics(y, p)
    assert got["auroc"] == pytest.approx(roc_auc_score(y, p))
    assert got["auroc"] == pytest.approx(brute_auroc(p[y == 1], p[y == 0]))
    assert got["auprc"] == pytest.approx(average_precision_score(y, p))
    assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p >= 0.5))
    assert got["f1"] == pytest.approx(f1_score(y, p >= 0.5))
    assert got["n_positive"] == y.sum() and got["prevalence"] == pytest.approx(y.mean())
    p_nan = p.copy()
    p_nan[:5] = np.nan
    assert binary_metrics(y, p_nan)["n_missing"] == 5
    one = binary_metrics(np.zeros(4), np.array([0.1, 0.2, 0.3, 0.9]))
    assert math.isnan(one["auroc"]) and math.isnan(one["auprc"]) and one["f1"] == 0.0
    with pytest.raises(DataError):
        binary_metrics([0, 2], [0.1, 0.2])


def test_regression_matches_references():
    rng = np.random.default_rng(9)
    y = rng.normal(55, 10, size=30)
    yhat = y + rng.normal(0, 5, size=30)
    got = regression_metrics(y, yhat)
    assert got["mae"] == pytest.approx(mean_absolute_error(y, yhat))
    assert got["r"] == pytest.approx(pearsonr(y, yhat)[0])
    assert got["rmse"] == pytest.approx(np.sqrt(np.mean((y - yhat) ** 2)))
    yhat[3] = np.nan
    assert regression_metrics(y, yhat)["n"] == 29
    assert math.isnan(regression_metrics(y, np.full(30, 50.0))["r"])
    assert math.isnan(regression_metrics([np.nan], [1.0])["mae"])


# ---------------------------------------------------------------- aggregation
def test_mean_sd():
    runs = [
        {"map": 0.5, "n": 10, "auroc": {"reduced": 0.7}, "classes_absent": [], "flag": True},
        {"map": 0.7, "n": 10, "auroc": {"reduced": 0.9}, "classes_absent": ["x"], "flag": False},
        {"map": 0.6, "n": 10, "auroc": {"reduced": 0.8}, "classes_absent": [], "flag": True},
    ]
    agg = mean_sd(runs)
    assert agg["map"][0] == pytest.approx(0.6) and agg["map"][1] == pytest.approx(np.std([0.5, 0.7, 0.6], ddof=1))
    assert agg["n"] == (10.0, 0.0)
    assert agg["auroc"]["reduced"][0] == pytest.approx(0.8)
    assert "classes_absent" not in agg and "flag" not in agg
    assert mean_sd(runs[:1])["map"] == (0.5, 0.0)
    assert math.isnan(mean_sd([{"a": 1.0}, {"a": float("nan")}])["a"][0])
    assert "b" not in mean_sd([{"a": 1.0, "b": 2.0}, {"a": 1.0}])
    with pytest.raises(DataError):
        mean_sd([])
