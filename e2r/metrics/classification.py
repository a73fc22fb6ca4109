"""Classification and regression metrics for phenotype estimates: thin scikit-learn wrappers that
settle the edge cases the evaluation meets (absent classes, one-class sets, missing estimates).

Rows whose estimate is NaN (e.g. a kNN query with no labelled neighbour) are left out and counted
as `n_missing`; a metric that is undefined on what remains (AUROC with one class) is NaN, never an
exception, so a degenerate seed shows in the table instead of stopping the run.
"""

from __future__ import annotations

import logging
import warnings
from typing import Sequence

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    mean_absolute_error,
    roc_auc_score,
)

from e2r.errors import DataError

log = logging.getLogger(__name__)

_NAN = float("nan")


def classification_metrics(y_true: Sequence, proba: np.ndarray, classes: Sequence) -> dict:
    """Multi-class metrics of probabilities `proba (N, C)` whose columns follow `classes`.

    `y_true` holds class labels (values of `classes`). Returns `auroc_macro` (one-vs-rest),
    `auprc_macro` (average precision per class), `balanced_accuracy` and `f1_macro` (prediction =
    argmax), the per-class `auroc` / `auprc` dicts, `n`, `n_missing` (rows with NaN probabilities
    or a None label, left out) and `classes_absent`. A class absent from `y_true` has no positives, so it is left out
    of every macro average (and of balanced accuracy and F1) and listed in `classes_absent`; the
    AUROC of a class that is every sample is NaN and also left out of the macro.
    """
    classes = list(classes)
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y_true, dtype=object)
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise DataError(f"classification_metrics: proba has shape {proba.shape}, expected (N, {len(classes)}) for classes {classes}")
    if y.shape != (proba.shape[0],):
        raise DataError(f"classification_metrics: {y.shape[0] if y.ndim else 0} labels for {proba.shape[0]} probability rows")
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(v) for v in y if v is not None and v not in index})
    if unknown:
        raise DataError(f"classification_metrics: labels {unknown} are not among the classes {classes}")
    keep = np.all(np.isfinite(proba), axis=1) & np.array([v is not None for v in y], dtype=bool)
    y_idx = np.array([index[v] for v in y[keep]], dtype=np.int64)
    p = proba[keep]
    present = [i for i in range(len(classes)) if np.any(y_idx == i)]
    out: dict = {
        "n": int(keep.sum()),
        "n_missing": int((~keep).sum()),
        "classes_absent": [classes[i] for i in range(len(classes)) if i not in present],
        "auroc": {},
        "auprc": {},
    }
    for i in present:
        positive = y_idx == i
        out["auroc"][classes[i]] = _auroc(positive, p[:, i])
        out["auprc"][classes[i]] = float(average_precision_score(positive, p[:, i]))
    out["auroc_macro"] = _mean_finite(out["auroc"].values())
    out["auprc_macro"] = _mean_finite(out["auprc"].values())
    if present:
        pred = np.argmax(p, axis=1)
        with warnings.catch_warnings():
            # "y_pred contains classes not in y_true": intended, absent classes are excluded.
            warnings.simplefilter("ignore", UserWarning)
            out["balanced_accuracy"] = float(balanced_accuracy_score(y_idx, pred))
        out["f1_macro"] = float(f1_score(y_idx, pred, labels=present, average="macro", zero_division=0))
    else:
        out["balanced_accuracy"] = out["f1_macro"] = _NAN
    return out


def binary_metrics(y_true: Sequence, p: np.ndarray, threshold: float = 0.5) -> dict:
    """Binary metrics of probabilities `p (N,)` for 0/1 labels `y_true`.

    Returns `auroc`, `auprc` (average precision), `balanced_accuracy` and `f1` with the
    prediction p >= threshold, plus `n`, `n_missing` (NaN p or NaN label, left out), `n_positive`
    and `prevalence`. AUROC and balanced accuracy are NaN when only one class remains; AUPRC is
    NaN without positives.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.ndim != 1 or y.shape != p.shape:
        raise DataError(f"binary_metrics: labels {y.shape} and probabilities {p.shape} must be 1-D of the same length")
    keep = np.isfinite(y) & np.isfinite(p)
    y, p = y[keep], p[keep]
    if np.any((y != 0) & (y != 1)):
        raise DataError("binary_metrics: labels must be 0 or 1")
    positive = y == 1
    n_pos = int(positive.sum())
    two_classes = 0 < n_pos < y.size
    pred = p >= threshold
    out = {
        "n": int(y.size),
        "n_missing": int((~keep).sum()),
        "n_positive": n_pos,
        "prevalence": float(n_pos / y.size) if y.size else _NAN,
        "auroc": _auroc(positive, p),
        "auprc": float(average_precision_score(positive, p)) if n_pos else _NAN,
        "balanced_accuracy": float(balanced_accuracy_score(positive, pred)) if two_classes else _NAN,
        "f1": float(f1_score(positive, pred, zero_division=0)) if y.size else _NAN,
    }
    return out


def regression_metrics(y: Sequence, yhat: Sequence) -> dict:
    """`mae`, `rmse`, Pearson `r` (NaN when either side is constant) and `n` / `n_missing`
    (pairs with a NaN on either side are left out)."""
    y = np.asarray(y, dtype=np.float64)
    yhat = np.asarray(yhat, dtype=np.float64)
    if y.ndim != 1 or y.shape != yhat.shape:
        raise DataError(f"regression_metrics: targets {y.shape} and estimates {yhat.shape} must be 1-D of the same length")
    keep = np.isfinite(y) & np.isfinite(yhat)
    y, yhat = y[keep], yhat[keep]
    out = {"n": int(y.size), "n_missing": int((~keep).sum())}
    if y.size == 0:
        return {**out, "mae": _NAN, "rmse": _NAN, "r": _NAN}
    out["mae"] = float(mean_absolute_error(y, yhat))
    out["rmse"] = float(np.sqrt(np.mean((y - yhat) ** 2)))
    out["r"] = float(np.corrcoef(y, yhat)[0, 1]) if y.size > 1 and y.std() > 0 and yhat.std() > 0 else _NAN
    return out


def _auroc(positive: np.ndarray, score: np.ndarray) -> float:
    if not 0 < int(positive.sum()) < positive.size:
        return _NAN
    return float(roc_auc_score(positive, score))


def _mean_finite(values) -> float:
    vals = [v for v in values if np.isfinite(v)]
    return float(np.mean(vals)) if vals else _NAN
