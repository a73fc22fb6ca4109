"""Every held-out test ECG of a cohort against an index, in one summary (what `e2r demo` prints).

The same functions as `e2r eval --model` (queries.eval.arms), composed for an index that holds
every study of the cohort, as the demo's does:

- the kNN estimate: the indexed train/val studies vote (cross_modal_knn, the vote `e2r search`
  uses). Test studies never vote, so no ECG sees its own paired study's measurements;
- the prior: the train split's mean LVEF and class frequencies (prior_predictions);
- retrieval: the rank of each ECG's paired study among every indexed study, the gallery a user's
  `e2r search` ranks (e2r.metrics.retrieval). A random ranking puts it at (G + 1) / 2 on average.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from e2r.errors import DataError
from e2r.metrics.retrieval import exact_relevance, retrieval_metrics, similarity_matrix
from queries.eval.arms import EvalSettings, cross_modal_knn, phenotype_metrics, prior_predictions, truth_of
from queries.eval.data import Splits, load_ecgs, read_splits


def summarise_held_out(store: Any, collection: str, loaded: Any, pairs_csv: Any, phenotypes_csv: Any,
                       settings: EvalSettings = EvalSettings()) -> dict[str, Any]:
    """Read and encode every test-split ECG of `pairs_csv` (the eval path: load_ecgs, encode_ecg in
    batches), read every study vector of `collection` back from the store, and summarise them
    (held_out_summary). `loaded` is the model the collection was built with."""
    from e2r.encode import encode_ecg

    splits = read_splits(pairs_csv, phenotypes_csv)
    ecgs = load_ecgs(splits.ecg_rows("test"), loaded.preset.ecg_preprocess)
    if not ecgs.rows:
        raise DataError(f"{pairs_csv}: none of the test-split ECGs could be read")
    vectors = {}
    for rec in store.iterate(collection, with_vectors=True):
        uid = rec.payload.get("study_uid")
        if uid and rec.vector is not None:
            vectors[uid] = np.asarray(rec.vector, dtype=np.float32)
    summary = held_out_summary(encode_ecg(loaded, ecgs.x), [r.study_uid for r in ecgs.rows], vectors, splits, settings)
    return {**summary, "test_ecgs_unreadable": len(ecgs.failed)}


def held_out_summary(test_ecg: np.ndarray, test_ecg_study: Sequence[str], study_vectors: Mapping[str, np.ndarray],
                     splits: Splits, settings: EvalSettings = EvalSettings()) -> dict[str, Any]:
    """LVEF<=45 and LVH AUROC and LVEF MAE of the kNN estimate, the prior's LVEF MAE, and the
    paired study's median rank against chance, over the test ECGs `test_ecg (Q, D)` whose paired
    studies are `test_ecg_study`; `study_vectors` holds every indexed study's vector by UID."""
    split_of = splits.study_split()
    gallery_uids = sorted(study_vectors)
    archive_uids = [u for u in gallery_uids if split_of.get(u) in ("train", "val")]
    if len(test_ecg) != len(test_ecg_study) or not len(test_ecg):
        raise DataError(f"held-out summary: {len(test_ecg)} ECG embeddings for {len(test_ecg_study)} test ECGs")
    missing = [u for u in test_ecg_study if u not in study_vectors]
    if missing:
        raise DataError(f"held-out summary: {len(missing)} test ECGs' paired studies are not indexed "
                        f"(first: {missing[0]}); index the cohort's whole archive")
    phenotypes = splits.phenotypes
    truth = truth_of([phenotypes.get(u) for u in test_ecg_study])
    archive = np.stack([study_vectors[u] for u in archive_uids]) if archive_uids else np.zeros((0, test_ecg.shape[1]))
    knn = phenotype_metrics(cross_modal_knn(test_ecg, archive, [phenotypes.get(u) for u in archive_uids], settings),
                            truth)
    train_rows = [phenotypes.get(r.study_uid) for r in splits.ecg_rows("train")]
    prior_pred = prior_predictions(train_rows, len(test_ecg_study))
    prior = phenotype_metrics(prior_pred, truth)
    sim = similarity_matrix(test_ecg, np.stack([study_vectors[u] for u in gallery_uids]))  # (Q, G)
    ranks = retrieval_metrics(sim, exact_relevance(test_ecg_study, gallery_uids), ks=settings.ks)
    g = len(gallery_uids)
    return {
        "test_ecgs": len(test_ecg_study),
        "gallery": "every indexed study",
        "gallery_studies": g,
        "voting_studies": len(archive_uids),
        "vote": {"k": settings.knn_k, "weighting": settings.knn_weighting, "temperature": settings.knn_temperature},
        "lvef_le45": {"auroc": knn["lvef_le45"]["auroc"], "positives": knn["lvef_le45"]["n_positive"],
                      "n": knn["lvef_le45"]["n"]},
        "lvh": {"auroc": knn["lvh"]["auroc"], "positives": knn["lvh"]["n_positive"], "n": knn["lvh"]["n"]},
        "lvef_mae": knn["lvef"]["mae"],
        "prior_lvef": float(prior_pred.lvef[0]),
        "prior_lvef_mae": prior["lvef"]["mae"],
        "median_rank": ranks.median_rank,
        "chance_median_rank": (g + 1) / 2,
        "recall_at": {k: ranks.recall_at[k] for k in settings.ks},
        "chance_recall_at": {k: min(k, g) / g for k in settings.ks},
    }
