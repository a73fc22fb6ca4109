"""kNN phenotype estimation: neighbours' measured phenotypes vote for a query's phenotype.

Cross-modal (e2r's use): an ECG's nearest echo studies in the index vote. For each target, the
k nearest neighbours that carry that target's label vote (LVEF and its derived labels share the
`lvef` voters; hypertrophy has its own), so an unlabelled study never dilutes the vote.

Weights over a target's voters with similarities s_i (then normalised to sum 1):
- `softmax`: exp((s_i - max s) / temperature) (default, temperature 0.1);
- `similarity`: max(s_i, 0); uniform when every voter has s_i <= 0;
- `uniform`: 1.
Probabilities are smoothed with a pseudo-count `smoothing` (alpha) per class against the n voters:
p_c = (n * W_c + alpha) / (n + C * alpha), W_c = summed weight of class c, so no probability is
exactly 0 or 1 (alpha=0 turns smoothing off). The LVEF value is the weighted mean and its interval
the weighted `interval` quantiles (default 10th-90th) of the voters' LVEF, each the smallest voter
value whose cumulative weight reaches the quantile (inverted weighted CDF).

`knn_estimate` serves one query from store hits; `knn_predict` the batch used by evaluation; both
run the same vote. `ecg_knn_classify` / `ecg_knn_regress` are the paper's protocol (kNN over ECG
embeddings of labelled train ECGs, k=5, uniform vote).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from e2r.errors import ConfigError, DataError
from e2r.phenotypes import LVEF_CLASSES, LVEF_LE45, derive_labels, lvef_class_index

log = logging.getLogger(__name__)

WEIGHTINGS = ("softmax", "similarity", "uniform")
# The vote the benchmark and training validation use: the 20 nearest labelled studies, softmax of
# similarity / 0.1.
VOTE_K = 20
VOTE_TEMPERATURE = 0.1
TARGETS = ("lvef", "lvh")  # label arrays the vote reads; lvef_class and lvef_le45 derive from lvef
_BLOCK_ELEMENTS = 1 << 21


@dataclass(frozen=True)
class PhenotypeEstimate:
    """One query's kNN phenotype estimate; a field is None when no neighbour voted for it."""

    lvef_class_probs: Optional[dict[str, float]]  # over LVEF_CLASSES, in that order
    lvef_class: Optional[str]  # the most probable class
    p_lvef_le45: Optional[float]
    p_lvh: Optional[float]
    lvef: Optional[float]  # weighted mean LVEF, %
    lvef_interval: Optional[tuple[float, float]]  # weighted `interval_quantiles` of neighbours' LVEF
    n_voters: dict[str, int]  # per target: lvef_class, lvef_le45, lvef, lvh
    n_neighbours: int  # neighbours given (labelled or not)
    k: int
    weighting: str
    temperature: float
    smoothing: float
    interval_quantiles: tuple[float, float]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with stable keys (the `--json` estimate block)."""
        return {
            "lvef_class_probs": self.lvef_class_probs,
            "lvef_class": self.lvef_class,
            "p_lvef_le45": self.p_lvef_le45,
            "p_lvh": self.p_lvh,
            "lvef": self.lvef,
            "lvef_interval": list(self.lvef_interval) if self.lvef_interval else None,
            "n_voters": dict(self.n_voters),
            "n_neighbours": self.n_neighbours,
            "settings": {
                "k": self.k,
                "weighting": self.weighting,
                "temperature": self.temperature,
                "smoothing": self.smoothing,
                "interval_quantiles": list(self.interval_quantiles),
            },
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class KNNPredictions:
    """Batched kNN estimates for Q queries; NaN where a query had no voter for a target."""

    class_proba: np.ndarray  # (Q, 3) over LVEF_CLASSES
    p_le45: np.ndarray  # (Q,)
    p_lvh: np.ndarray  # (Q,)
    lvef: np.ndarray  # (Q,) weighted mean
    lvef_low: np.ndarray  # (Q,) lower interval quantile
    lvef_high: np.ndarray  # (Q,) upper interval quantile
    n_voters: dict[str, np.ndarray] = field(repr=False)  # {"lvef": (Q,), "lvh": (Q,)} int
    classes: tuple[str, ...] = LVEF_CLASSES


def label_arrays(phenos: Sequence[Optional[Mapping[str, Any]]]) -> dict[str, np.ndarray]:
    """Vote labels of N studies: {"lvef": float (N,), "lvh": float 0/1 (N,)}, NaN where missing.

    `lvh` is read from the `lvh` key, else derived from ivsd/lvpwd (e2r.phenotypes.derive_labels).
    Accepts phenotype rows (read_phenotypes values) or store payloads; None entries are unlabelled.
    """
    lvef = np.full(len(phenos), np.nan)
    lvh = np.full(len(phenos), np.nan)
    for i, row in enumerate(phenos):
        if not row:
            continue
        try:
            if row.get("lvef") is not None:
                lvef[i] = float(row["lvef"])
            wall = row.get("lvh")
            if wall is None and (row.get("ivsd") is not None or row.get("lvpwd") is not None):
                walls = {f: float(row[f]) for f in ("ivsd", "lvpwd") if row.get(f) is not None}
                wall = derive_labels(walls)["lvh"]
            if wall is not None:
                lvh[i] = float(wall)
        except (TypeError, ValueError) as err:
            raise DataError(f"neighbour {i}: phenotype value is not a number ({err}); check the index payload") from None
    return {"lvef": lvef, "lvh": lvh}


def knn_estimate(
    neighbour_scores: Sequence[float],
    neighbour_phenos: Sequence[Optional[Mapping[str, Any]]],
    k: int = 50,
    weighting: str = "softmax",
    temperature: float = 0.1,
    smoothing: float = 0.5,
    interval: tuple[float, float] = (0.1, 0.9),
) -> PhenotypeEstimate:
    """Phenotype estimate of one query from its neighbours (similarity and phenotypes per hit).

    Neighbours are ranked by descending similarity (stable, so a store's order of equal scores is
    kept); for each target the k nearest neighbours that carry its label vote (see module doc).
    Fewer labelled neighbours than k: those that exist vote and `notes` says so.
    """
    scores = np.asarray(neighbour_scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size != len(neighbour_phenos):
        raise DataError(f"knn_estimate: {scores.size} scores for {len(neighbour_phenos)} neighbour phenotype rows")
    labels = label_arrays(neighbour_phenos)
    pred = knn_predict(
        scores[None, :],
        labels,
        k=k,
        weighting=weighting,
        temperature=temperature,
        smoothing=smoothing,
        interval=interval,
        neighbour_idx=np.arange(scores.size)[None, :],
    )
    n_lvef = int(pred.n_voters["lvef"][0])
    n_lvh = int(pred.n_voters["lvh"][0])
    notes = []
    for name, n in (("an LVEF", n_lvef), ("a wall thickness / LVH label", n_lvh)):
        if n == 0:
            notes.append(f"no neighbour carries {name}; that estimate is missing")
        elif n < k:
            notes.append(f"only {n} of the {scores.size} neighbours carry {name} (k={k}); those {n} voted")
    if weighting == "similarity" and scores.size and np.all(scores <= 0):
        notes.append("every similarity is <= 0; uniform weights were used")
    has_lvef = n_lvef > 0
    probs = {c: float(p) for c, p in zip(LVEF_CLASSES, pred.class_proba[0])} if has_lvef else None
    return PhenotypeEstimate(
        lvef_class_probs=probs,
        lvef_class=LVEF_CLASSES[int(np.argmax(pred.class_proba[0]))] if has_lvef else None,
        p_lvef_le45=float(pred.p_le45[0]) if has_lvef else None,
        p_lvh=float(pred.p_lvh[0]) if n_lvh else None,
        lvef=float(pred.lvef[0]) if has_lvef else None,
        lvef_interval=(float(pred.lvef_low[0]), float(pred.lvef_high[0])) if has_lvef else None,
        n_voters={"lvef_class": n_lvef, "lvef_le45": n_lvef, "lvef": n_lvef, "lvh": n_lvh},
        n_neighbours=int(scores.size),
        k=k,
        weighting=weighting,
        temperature=temperature,
        smoothing=smoothing,
        interval_quantiles=(float(interval[0]), float(interval[1])),
        notes=tuple(notes),
    )


def knn_predict(
    scores: np.ndarray,
    gallery_labels: Mapping[str, np.ndarray],
    k: int = 50,
    weighting: str = "softmax",
    temperature: float = 0.1,
    smoothing: float = 0.5,
    interval: tuple[float, float] = (0.1, 0.9),
    neighbour_idx: Optional[np.ndarray] = None,
    block_size: Optional[int] = None,
) -> KNNPredictions:
    """Batched kNN estimates for Q queries against a labelled gallery.

    Either `scores` is the full similarity matrix (Q, G) (gallery ties broken by gallery index),
    or `scores` (Q, K) are the similarities of the neighbours `neighbour_idx` (Q, K) (indices into
    the gallery; -1 pads a missing neighbour). `gallery_labels` is `label_arrays(...)` of the
    gallery: {"lvef": (G,), "lvh": (G,)} with NaN for missing labels.
    """
    _check_settings(k, weighting, temperature, smoothing, interval)
    scores = np.asarray(scores)
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    if scores.ndim != 2:
        raise DataError(f"knn_predict: scores must be 2-D (Q, G) or (Q, K), got shape {scores.shape}")
    for t in TARGETS:
        if t not in gallery_labels:
            raise DataError(f"knn_predict: gallery_labels has no '{t}' array; build it with label_arrays()")
    labels = {t: np.asarray(gallery_labels[t], dtype=np.float64) for t in TARGETS}
    n_g = labels["lvef"].size
    if labels["lvh"].size != n_g:
        raise DataError("knn_predict: gallery label arrays have different lengths")
    n_q = scores.shape[0]
    if neighbour_idx is None:
        if scores.shape[1] != n_g:
            raise DataError(f"knn_predict: similarity matrix has {scores.shape[1]} columns for a gallery of {n_g} labels")
        idx_all = None
    else:
        idx_all = np.asarray(neighbour_idx)
        if idx_all.shape != scores.shape:
            raise DataError(f"knn_predict: neighbour_idx shape {idx_all.shape} does not match scores shape {scores.shape}")
        if idx_all.size and (idx_all.max() >= n_g or idx_all.min() < -1):
            raise DataError(f"knn_predict: neighbour_idx outside the gallery of {n_g} items")

    out = {
        "class_proba": np.full((n_q, len(LVEF_CLASSES)), np.nan),
        "p_le45": np.full(n_q, np.nan),
        "p_lvh": np.full(n_q, np.nan),
        "lvef": np.full(n_q, np.nan),
        "lvef_low": np.full(n_q, np.nan),
        "lvef_high": np.full(n_q, np.nan),
    }
    n_voters = {t: np.zeros(n_q, dtype=np.int64) for t in TARGETS}
    labelled = {t: np.isfinite(labels[t]) for t in TARGETS}
    width = scores.shape[1]
    block = block_size or max(1, _BLOCK_ELEMENTS // max(width, 1))
    for a in range(0, n_q if width else 0, block):  # no neighbours at all: every estimate stays NaN
        b = min(a + block, n_q)
        if not np.all(np.isfinite(scores[a:b])):
            raise DataError("knn_predict: similarities contain NaN or inf; check the embeddings")
        for target in TARGETS:
            if idx_all is None:
                cand = _top_labelled(scores[a:b], labelled[target], k)  # (b, k) gallery ids
                s = np.take_along_axis(scores[a:b], cand, axis=1)
            else:
                cand, s = idx_all[a:b], scores[a:b]
            rank = np.argsort(-s, axis=1, kind="stable")  # descending; equal scores keep their order
            s = np.take_along_axis(s, rank, axis=1).astype(np.float64)
            ids = np.take_along_axis(cand, rank, axis=1)
            vals = np.where(ids < 0, np.nan, labels[target][np.maximum(ids, 0)])  # -1: no neighbour
            w, n = _vote_weights(s, vals, k, weighting, temperature)
            n_voters[target][a:b] = n
            if target == "lvh":
                pos = (w * (vals == 1)).sum(axis=1)
                out["p_lvh"][a:b] = _smooth(np.stack([1 - pos, pos], axis=1), n, smoothing)[:, 1]
                continue
            cls = lvef_class_index(vals)
            class_w = np.stack([(w * (cls == c)).sum(axis=1) for c in range(len(LVEF_CLASSES))], axis=1)
            out["class_proba"][a:b] = _smooth(class_w, n, smoothing)
            le45 = (w * (vals <= LVEF_LE45)).sum(axis=1)
            out["p_le45"][a:b] = _smooth(np.stack([1 - le45, le45], axis=1), n, smoothing)[:, 1]
            has = n > 0
            out["lvef"][a:b] = np.where(has, (w * np.where(w > 0, vals, 0.0)).sum(axis=1), np.nan)
            out["lvef_low"][a:b] = _weighted_quantile(vals, w, interval[0], has)
            out["lvef_high"][a:b] = _weighted_quantile(vals, w, interval[1], has)
    return KNNPredictions(n_voters=n_voters, **out)


def ecg_knn_classify(
    train_emb: np.ndarray,
    train_labels: Sequence,
    test_emb: np.ndarray,
    k: int = 5,
    classes: Optional[Sequence] = None,
) -> tuple[np.ndarray, tuple]:
    """The paper's protocol: kNN (cosine, uniform vote) over labelled train ECG embeddings.

    Train rows whose label is None or NaN are dropped. Returns (probabilities (N_test, C), classes);
    columns follow `classes` (default: the sorted train labels), a class never seen in train gets
    probability 0. k is capped at the number of labelled train ECGs.
    """
    emb, labels = _labelled(train_emb, train_labels, test_emb, k)
    if classes is None:
        classes = tuple(sorted(set(labels.tolist())))
    classes = tuple(classes)
    unknown = set(labels.tolist()) - set(classes)
    if unknown:
        raise DataError(f"ecg_knn_classify: train labels {sorted(map(str, unknown))} are not among the classes {list(classes)}")
    from sklearn.neighbors import KNeighborsClassifier  # the paper protocol only; search never needs it

    clf = KNeighborsClassifier(n_neighbors=min(k, labels.size), metric="cosine", algorithm="brute")
    clf.fit(emb, labels)
    raw = clf.predict_proba(np.asarray(test_emb, dtype=np.float64))  # columns follow clf.classes_
    proba = np.zeros((raw.shape[0], len(classes)))
    for j, c in enumerate(clf.classes_.tolist()):
        proba[:, classes.index(c)] = raw[:, j]
    return proba, classes


def ecg_knn_regress(train_emb: np.ndarray, train_values: Sequence[float], test_emb: np.ndarray, k: int = 5) -> np.ndarray:
    """The paper's protocol for a continuous phenotype (e.g. LVEF): mean of the k nearest labelled
    train ECGs by cosine; NaN train values are dropped. Returns (N_test,)."""
    values = np.asarray(train_values, dtype=np.float64)
    emb, values = _labelled(train_emb, np.where(np.isfinite(values), values, None), test_emb, k)
    from sklearn.neighbors import KNeighborsRegressor

    reg = KNeighborsRegressor(n_neighbors=min(k, values.size), metric="cosine", algorithm="brute")
    reg.fit(emb, values.astype(np.float64))
    return reg.predict(np.asarray(test_emb, dtype=np.float64))


def _labelled(train_emb, train_labels, test_emb, k):
    emb = np.asarray(train_emb, dtype=np.float64)
    labels = np.asarray(train_labels, dtype=object)
    test = np.asarray(test_emb)
    if emb.ndim != 2 or test.ndim != 2 or emb.shape[1] != test.shape[1]:
        raise DataError(f"paper-protocol kNN: train {emb.shape} and test {test.shape} embeddings must be 2-D with one dimension")
    if labels.shape != (emb.shape[0],):
        raise DataError(f"paper-protocol kNN: {labels.size} labels for {emb.shape[0]} train embeddings")
    if k < 1:
        raise ConfigError(f"k={k} must be >= 1")
    keep = np.array([v is not None and not (isinstance(v, float) and np.isnan(v)) for v in labels], dtype=bool)
    if not keep.any():
        raise DataError("paper-protocol kNN: no train ECG carries this label; check the phenotype CSV")
    if keep.sum() < k:
        log.warning("paper-protocol kNN: only %d labelled train ECGs for k=%d; using all of them", keep.sum(), k)
    return emb[keep], np.array(labels[keep].tolist())  # native dtype: sklearn rejects object labels


def _top_labelled(s: np.ndarray, labelled: np.ndarray, k: int) -> np.ndarray:
    """Gallery ids (b, min(k, G)) of each row's k highest-scoring labelled items, in index order.

    Equal scores at the k-th place are taken lowest index first, the same choice a full stable
    ranking makes; rows with fewer than k labelled items are filled with unlabelled ids (no vote).
    """
    n_b, n_g = s.shape
    kk = min(k, n_g)
    if kk == n_g:
        return np.broadcast_to(np.arange(n_g), (n_b, n_g))
    masked = np.where(labelled[None, :], s, -np.inf)  # (b, G)
    kth = -np.partition(-masked, kk - 1, axis=1)[:, kk - 1 : kk]  # (b, 1) k-th largest
    above = masked > kth
    at = masked == kth
    chosen = above | (at & (np.cumsum(at, axis=1) <= kk - above.sum(axis=1, keepdims=True)))
    return np.nonzero(chosen)[1].reshape(n_b, kk)


def _vote_weights(s: np.ndarray, values: np.ndarray, k: int, weighting: str, temperature: float):
    """Normalised weights (b, K) of each row's first k neighbours with a finite value, and their count."""
    valid = np.isfinite(values)
    voter = valid & (np.cumsum(valid, axis=1) <= k)
    n = voter.sum(axis=1)
    if weighting == "uniform":
        w = voter.astype(np.float64)
    elif weighting == "similarity":
        w = np.where(voter, np.maximum(s, 0.0), 0.0)
        w = np.where((w.sum(axis=1) > 0)[:, None], w, voter.astype(np.float64))
    else:
        top = np.max(np.where(voter, s, -np.inf), axis=1, keepdims=True)
        top = np.where(np.isfinite(top), top, 0.0)
        w = np.where(voter, np.exp((np.where(voter, s, top) - top) / temperature), 0.0)
    total = w.sum(axis=1, keepdims=True)
    return w / np.where(total > 0, total, 1.0), n


def _smooth(class_w: np.ndarray, n: np.ndarray, alpha: float) -> np.ndarray:
    """(b, C) normalised class weights -> smoothed probabilities; NaN rows where n == 0."""
    n = n.astype(np.float64)[:, None]
    p = (n * class_w + alpha) / np.maximum(n + class_w.shape[1] * alpha, 1e-300)
    return np.where(n > 0, p, np.nan)


def _weighted_quantile(values: np.ndarray, w: np.ndarray, q: float, has: np.ndarray) -> np.ndarray:
    """Per row, the smallest voter value whose cumulative normalised weight reaches q."""
    v = np.where(w > 0, values, np.inf)
    order = np.argsort(v, axis=1, kind="stable")
    v_sorted = np.take_along_axis(v, order, axis=1)
    cw = np.cumsum(np.take_along_axis(w, order, axis=1), axis=1)
    pos = np.argmax(cw >= q - 1e-9, axis=1)
    out = v_sorted[np.arange(v.shape[0]), pos]
    return np.where(has & np.isfinite(out), out, np.nan)


def _check_settings(k, weighting, temperature, smoothing, interval) -> None:
    if int(k) != k or k < 1:
        raise ConfigError(f"--k {k}: the number of voting neighbours must be an integer >= 1")
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"weighting={weighting!r} is not one of {', '.join(WEIGHTINGS)}")
    if not (np.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"temperature={temperature} must be > 0")
    if not (np.isfinite(smoothing) and smoothing >= 0):
        raise ConfigError(f"smoothing={smoothing} must be >= 0")
    lo, hi = interval
    if not 0 <= lo <= hi <= 1:
        raise ConfigError(f"interval={tuple(interval)} must be two quantiles with 0 <= low <= high <= 1")
