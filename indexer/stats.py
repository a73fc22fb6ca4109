"""`e2r index --stats`: what is in the store."""

from __future__ import annotations

from typing import Any

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
        "e2r_version": meta.get("e2r_version"),
        "created": meta.get("created"),
    }


def store_stats(store: Any) -> dict[str, Any]:
    """Stats of every collection in the store."""
    return {"collections": [collection_stats(store, n) for n in sorted(store.list_collections())]}
