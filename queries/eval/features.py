"""Every arm as a feature extractor: the kNN and linear probes on frozen ECG vectors.

The Echo2ECG paper's first evaluation: freeze the ECG encoder, embed the ECGs, classify structural
phenotypes from the vectors. Here on the benchmark's test ECGs (truth: the paired study's measured
phenotypes, as in every classification table) for LVEF <= 45 %, the LVEF class (reduced / mildly
reduced / preserved; macro AUROC over the classes present) and LVH, each probe fitted on the train
split's ECGs:

- `knn`: the paper's protocol, queries.eval.arms.paper_knn (k = 5, cosine, uniform vote);
- `linear`: the probe of `e2r eval --protocol linear`, queries.eval.probes.linear_probe_proba
  (standardised logistic regression, C from probes.C_GRID with the best validation-split AUROC).

The vectors are the ECG encoder's pooled features before any projection head (`e2r embed`'s
`features`): the same array for every neural arm whatever its objective, since a projection head
belongs to its objective (the shared ECG-echo space, SimCLR's head, a random one). The criteria
arm's vectors are its criteria (Sokolow-Lyon, Cornell, QRS duration, LBBB), z-scored with the train
split's mean and SD, a missing one set to that mean, so that no unit dominates the cosine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from e2r.metrics.classification import binary_metrics, classification_metrics
from e2r.phenotypes import LVEF_CLASSES
from queries.eval.arms import paper_knn, truth_of
from queries.eval.probes import KNN_K, linear_probe_proba

#: Targets of the feature-extractor table: (results key, truth_of key)
TARGETS = (("lvef_class", "lvef_class"), ("lvef_le45", "le45"), ("lvh", "lvh"))
CRITERIA_VECTOR = ("sokolow_lyon_mv", "cornell_mv", "qrs_ms", "lbbb")


@dataclass(frozen=True)
class FeatureSet:
    """ECG vectors of the three splits (N, C), each row named by its paired study."""

    train: np.ndarray
    train_study: Sequence[str]
    val: np.ndarray
    val_study: Sequence[str]
    test: np.ndarray
    test_study: Sequence[str]

    @classmethod
    def of(cls, arrays: Mapping[str, np.ndarray], studies: Mapping[str, Sequence[str]]) -> "FeatureSet":
        """From {split: vectors} and {split: study of each row}, splits train / val / test."""
        return cls(arrays["train"], studies["train"], arrays["val"], studies["val"], arrays["test"], studies["test"])


def criteria_features(criteria: Mapping[str, Sequence[Any]], studies: Mapping[str, Sequence[str]]) -> FeatureSet:
    """The criteria arm's vectors: CRITERIA_VECTOR of each ECG (e2r.ecg.criteria.ECGCriteria or None),
    z-scored with the train split's mean and SD; a missing value (no beat found) becomes 0, the mean."""
    from queries.eval.criteria_arm import criteria_matrix

    raw = {s: criteria_matrix(criteria[s], CRITERIA_VECTOR) for s in ("train", "val", "test")}
    mean, sd = np.zeros(len(CRITERIA_VECTOR)), np.ones(len(CRITERIA_VECTOR))
    for j, col in enumerate(raw["train"].T):
        seen = col[np.isfinite(col)]
        if seen.size:
            mean[j] = seen.mean()
            sd[j] = seen.std() if seen.std() > 0 else 1.0
    return FeatureSet.of({s: np.nan_to_num((x - mean) / sd) for s, x in raw.items()}, studies)


def feature_extractor_metrics(fs: FeatureSet, phenotypes: Mapping[str, Mapping[str, Any]],
                              k: int = KNN_K) -> dict[str, Any]:
    """{"knn": {target: metrics}, "linear": {target: metrics, "C": {target: C}}} on the test rows of
    `fs`, targets as TARGETS (binary_metrics / classification_metrics, as the classification tables);
    {} when no train ECG's study carries an LVEF."""
    truth = {s: truth_of([phenotypes.get(u) for u in getattr(fs, f"{s}_study")]) for s in ("train", "val", "test")}
    if not np.isfinite(truth["train"]["lvef"]).any():
        return {}
    train_rows = [phenotypes.get(u) for u in fs.train_study]
    knn = paper_knn(fs.train, train_rows, fs.test, k)
    scores = {"lvef_class": knn.class_proba, "lvef_le45": knn.p_le45, "lvh": knn.p_lvh}
    out: dict[str, Any] = {"knn": _metrics(scores, truth["test"])}
    linear, chosen = {}, {}
    for key, tkey in TARGETS:
        linear[key], chosen[key] = _linear(fs, truth, tkey)
    out["linear"] = {**_metrics(linear, truth["test"]), "C": {k_: c for k_, c in chosen.items() if c is not None}}
    return out


def _metrics(scores: Mapping[str, np.ndarray], truth: Mapping[str, Any]) -> dict[str, Any]:
    return {"lvef_class": classification_metrics(truth["lvef_class"], scores["lvef_class"], LVEF_CLASSES),
            "lvef_le45": binary_metrics(truth["le45"], scores["lvef_le45"]),
            "lvh": binary_metrics(truth["lvh"], scores["lvh"])}


def _labels(values: Sequence[Any]) -> np.ndarray:
    """Class indices (LVEF class names -> their index; 0/1 flags as ints); -1 = no label."""
    out = np.full(len(values), -1, dtype=np.int64)
    for i, v in enumerate(values):
        if isinstance(v, str):
            out[i] = LVEF_CLASSES.index(v)
        elif v is not None and np.isfinite(v):
            out[i] = int(v)
    return out


def _linear(fs: FeatureSet, truth: Mapping[str, Any], tkey: str) -> tuple[np.ndarray, Optional[float]]:
    """Test scores of the linear probe for one target (P(positive) (Q,), or class probabilities
    (Q, 3) for the LVEF class) and the C chosen; NaN scores when the train rows hold one class."""
    y = {s: _labels(truth[s][tkey]) for s in ("train", "val", "test")}
    multi = tkey == "lvef_class"
    n_test = len(fs.test)
    nan = np.full((n_test, len(LVEF_CLASSES)) if multi else n_test, np.nan)
    fit, val = y["train"] >= 0, y["val"] >= 0
    if len(np.unique(y["train"][fit])) < 2:
        return nan, None
    proba, classes, c, _ = linear_probe_proba(np.asarray(fs.train, np.float64)[fit], y["train"][fit],
                                              np.asarray(fs.val, np.float64)[val], y["val"][val],
                                              np.asarray(fs.test, np.float64))
    if not multi:
        return proba[:, classes.index(1)], c
    full = np.zeros((n_test, len(LVEF_CLASSES)))  # a class the train split lacks: probability 0
    for j, cls in enumerate(classes):
        full[:, cls] = proba[:, j]
    return full, c
