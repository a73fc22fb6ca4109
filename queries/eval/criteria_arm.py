"""The clinical criteria arm: what a cardiologist reads off the ECG without e2r, as a baseline.

Each ECG's criteria come from e2r.ecg.criteria on the record as read (mV, its own rate; never the
model's z-scored input, which divides the voltage away). Per target, ONE logistic model
(scikit-learn, standardised features, default L2 C=1) is fitted on the train split's ECGs and
predicts the test split's:

- LVH: Sokolow-Lyon and Cornell voltage (mV);
- LVEF <= 45 %: QRS duration (ms) and LBBB (0/1).

Beside it, the raw rules as scores for LVH (`sokolow_lyon`, `cornell`: the voltage itself,
no fit). The criteria give no LVEF class or LVEF value: those columns are n/a. Deterministic, so
the protocol runs it once, not per seed.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from e2r.ecg.criteria import CORNELL_MV, SOKOLOW_LYON_MV, ECGCriteria
from e2r.metrics.classification import binary_metrics
from e2r.phenotypes import LVEF_CLASSES
from queries.eval.arms import ArmEval, PhenotypePredictions, phenotype_metrics, truth_of

log = logging.getLogger(__name__)

CRITERIA_FEATURES = {  # target (truth_of key) -> the criteria its logistic model reads
    "lvh": ("sokolow_lyon_mv", "cornell_mv"),
    "le45": ("qrs_ms", "lbbb"),
}
# The raw rules as LVH scores: (criterion, threshold in mV for balanced accuracy and F1). The
# phantom's phenotypes carry no sex, so Cornell is cut at the men's 2.8 mV (Casale 1987).
RULE_SCORES = {"sokolow_lyon": ("sokolow_lyon_mv", SOKOLOW_LYON_MV), "cornell": ("cornell_mv", CORNELL_MV["M"])}


def measure_rows(paths: Sequence[str]) -> list[Optional[ECGCriteria]]:
    """The criteria of each ECG file; None for one that cannot be read or has no detectable beat."""
    from e2r.ecg import read_ecg
    from e2r.ecg.criteria import record_criteria
    from e2r.errors import E2RError

    out: list[Optional[ECGCriteria]] = []
    for path in paths:
        try:
            c = record_criteria(read_ecg(path))
        except (E2RError, OSError, ValueError) as err:
            log.warning("criteria: %s left out (%s)", path, err)
            c = None
        out.append(c if c is not None and c.n_beats > 0 else None)
    return out


def criteria_matrix(criteria: Sequence[Optional[ECGCriteria]], names: Sequence[str]) -> np.ndarray:
    """(N, F) float features; a row of NaN for an ECG without criteria."""
    x = np.full((len(criteria), len(names)), np.nan)
    for i, c in enumerate(criteria):
        if c is not None:
            x[i] = [float(getattr(c, n)) for n in names]
    return x


def make_logistic():
    """The criteria model: standardised features, logistic regression (scikit-learn defaults)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression())


def fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit on the train rows with finite features and label; P(positive) of the test rows (NaN where a
    feature is missing, or everywhere when the train rows hold one class only)."""
    keep = np.all(np.isfinite(x_train), axis=1) & np.isfinite(y_train)
    y = y_train[keep].astype(int)
    info: dict[str, Any] = {"train_n": int(keep.sum()), "train_positives": int(y.sum())}
    p = np.full(len(x_test), np.nan)
    if len(np.unique(y)) < 2:
        info["note"] = "the train split holds one class only: no model"
        return p, info
    model = make_logistic().fit(x_train[keep], y)
    ok = np.all(np.isfinite(x_test), axis=1)
    if ok.any():
        p[ok] = model.predict_proba(x_test[ok])[:, 1]
    lr = model[-1]
    info.update({"coef_standardised": [float(v) for v in lr.coef_[0]], "intercept": float(lr.intercept_[0])})
    return p, info


def evaluate_criteria(train_criteria: Sequence[Optional[ECGCriteria]], train_study: Sequence[str],
                      test_criteria: Sequence[Optional[ECGCriteria]], test_study: Sequence[str],
                      phenotypes: Mapping[str, Mapping[str, Any]]) -> tuple[ArmEval, dict[str, Any]]:
    """The arm's metrics: `logistic` (one model per target, fitted on the train ECGs) and the raw
    rules (`sokolow_lyon`, `cornell`: LVH only); and what the fit saw."""
    train_truth = truth_of([phenotypes.get(u) for u in train_study])
    truth = truth_of([phenotypes.get(u) for u in test_study])
    n = len(test_study)
    probs, info = {}, {"features": {t: list(f) for t, f in CRITERIA_FEATURES.items()},
                       "train_ecgs_without_criteria": sum(c is None for c in train_criteria),
                       "test_ecgs_without_criteria": sum(c is None for c in test_criteria)}
    for target, names in CRITERIA_FEATURES.items():
        probs[target], info[target] = fit_predict(criteria_matrix(train_criteria, names), train_truth[target],
                                                  criteria_matrix(test_criteria, names))
    pred = PhenotypePredictions(np.full((n, len(LVEF_CLASSES)), np.nan), probs["le45"], probs["lvh"],
                                np.full(n, np.nan))
    classification: dict[str, Any] = {"logistic": phenotype_metrics(pred, truth)}
    raw: dict[str, Any] = {"truth": truth, "criteria": pred}
    for rule, (key, threshold) in RULE_SCORES.items():
        score = criteria_matrix(test_criteria, (key,))[:, 0]
        classification[rule] = {"lvh": binary_metrics(truth["lvh"], score, threshold=threshold)}
        raw[rule] = score
    return ArmEval({"classification": classification}, {}, raw), info
