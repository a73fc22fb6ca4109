"""Evaluation metrics in one import: retrieval (`retrieval_metrics`), classification and regression
(`classification_metrics`), and `mean_sd`, the aggregation over seeds used by every table."""

from __future__ import annotations

import numbers
from typing import Any, Mapping, Sequence

import numpy as np

from e2r.errors import DataError
from queries.classification_metrics import binary_metrics, classification_metrics, regression_metrics
from queries.retrieval_metrics import (
    RELEVANCE_FIELDS,
    RetrievalMetrics,
    exact_relevance,
    phenotype_relevance,
    retrieval_metrics,
    similarity_matrix,
)

__all__ = [
    "RELEVANCE_FIELDS",
    "RetrievalMetrics",
    "binary_metrics",
    "classification_metrics",
    "exact_relevance",
    "mean_sd",
    "phenotype_relevance",
    "regression_metrics",
    "retrieval_metrics",
    "similarity_matrix",
]


def mean_sd(runs: Sequence[Mapping[str, Any]]) -> dict:
    """Aggregate metric dicts of several seeds into {key: (mean, sd)}.

    A key is aggregated when every run holds a number for it (bools excluded); a key whose value
    is a dict in every run is aggregated recursively into a nested dict. Other keys (lists,
    strings, keys some runs lack) are left out. SD is the sample SD (ddof=1) over runs, 0.0 for a
    single run; a NaN in any run makes that key's mean and SD NaN, so a degenerate seed shows.
    """
    if not runs:
        raise DataError("mean_sd: no runs to aggregate; evaluate at least one seed")
    out: dict = {}
    for key in runs[0]:
        values = [run.get(key) for run in runs]
        if all(isinstance(v, Mapping) for v in values):
            out[key] = mean_sd(values)
        elif all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in values):
            arr = np.asarray(values, dtype=np.float64)
            sd = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
            out[key] = (float(arr.mean()), sd)
    return out
