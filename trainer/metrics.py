"""Validation retrieval: ECG query -> gallery of echo studies by cosine similarity."""

from __future__ import annotations

import numpy as np


def retrieval_ranks(query: np.ndarray, gallery: np.ndarray, target: np.ndarray) -> np.ndarray:
    """1-based rank of each query's target among the gallery (ties count against the target).

    query (Q, D) and gallery (G, D) are L2-normalised; target (Q,) indexes the gallery.
    """
    sims = query @ gallery.T  # (Q, G)
    own = sims[np.arange(len(query)), target]  # (Q,)
    return 1 + (sims > own[:, None]).sum(axis=1)


def retrieval_metrics(query: np.ndarray, gallery: np.ndarray, target: np.ndarray,
                      ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Recall@k, mean/median rank of the paired study, and the same numbers for chance."""
    ranks = retrieval_ranks(query, gallery, target)
    g = len(gallery)
    out: dict[str, float] = {"n_queries": int(len(query)), "n_gallery": int(g)}
    for k in ks:
        out[f"recall@{k}"] = float(np.mean(ranks <= k))
        out[f"chance_recall@{k}"] = min(1.0, k / g)
    out["mean_rank"] = float(ranks.mean())
    out["median_rank"] = float(np.median(ranks))
    out["chance_mean_rank"] = (g + 1) / 2
    return out
