"""`mean_sd`: metric dicts of several seeds aggregated into mean +/- SD (every benchmark table).

The metrics themselves live in e2r.metrics (shared with training validation and search)."""

from __future__ import annotations

import numbers
from typing import Any, Mapping, Sequence

import numpy as np

from e2r.errors import DataError


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
