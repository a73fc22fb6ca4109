"""`e2r index --stats`: what is in the store."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

from e2r.phenotypes import NUMERIC_FIELDS


def collection_stats(store: Any, name: str) -> dict[str, Any]:
    """Count, model, and phenotype coverage (fraction of points carrying each field) of one collection."""
    meta = store.get_metadata(name)
    total = 0
    present = {f: 0 for f in (*NUMERIC_FIELDS, "lvef_class")}
    views: dict[str, int] = {}
    for record in store.iterate(name):
        total += 1
        for f in present:
            present[f] += record.payload.get(f) is not None
        for v in record.payload.get("views", ()):
            views[v] = views.get(v, 0) + 1
    return {
        "name": name,
        "points": total,
        "with_phenotypes": present["lvef_class"],
        "coverage": {f: round(n / total, 4) if total else 0.0 for f, n in present.items()},
        "studies_with_view": dict(sorted(views.items())),
        "model_hash": meta.get("model_hash"),
        "model_path": meta.get("model_path"),
        "preset": meta.get("preset"),
        "ecg_preprocess": meta.get("ecg_preprocess") or bundle_ecg_input(meta.get("model_path")),
        "e2r_version": meta.get("e2r_version"),
        "created": meta.get("created"),
    }


def bundle_ecg_input(model_path: Optional[str]) -> Optional[str]:
    """The ECG preprocessing of the bundle at `model_path`, as one line
    (ECGPreprocessConfig.describe), read from its bundle.json alone; None when the bundle is not
    there or not readable. For collections made before their metadata recorded it."""
    from e2r.ecg.preprocess import ECGPreprocessConfig

    if not model_path:
        return None
    try:
        meta = json.loads((Path(model_path) / "bundle.json").read_text())
        fields = meta["preset"]["ecg_preprocess"]
        known = {f.name for f in dataclasses.fields(ECGPreprocessConfig)}
        return ECGPreprocessConfig(**{k: v for k, v in fields.items() if k in known}).describe()
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store_stats(store: Any) -> dict[str, Any]:
    """Stats of every collection in the store."""
    return {"collections": [collection_stats(store, n) for n in sorted(store.list_collections())]}
