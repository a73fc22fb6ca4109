"""Per-epoch validation of the alignment through the one encode path (e2r.encode).

Figures (all keys start with `val_`):
- exact-pair retrieval, validation ECG -> the unique validation studies: Recall@1/5/10 (ties count
  against the target), mAP, median and mean rank, and chance Recall@k;
- phenotype-aware retrieval (the benchmark's relevance: every RELEVANCE_FIELDS value within
  0.5 x the phenotype CSV's SD): `val_pheno_map`, and the mean fraction of the gallery that is
  relevant (`val_pheno_relevant_fraction`, about what a random ranking's precision is);
- the cross-modal kNN vote of the product: each validation ECG's 20 nearest *training* studies
  vote (softmax of similarity / 0.1) -> `val_knn_le45_auroc`, `val_knn_lvh_auroc`, `val_knn_lvef_mae`;
- `val_loss`: the CLIP loss over consecutive batches, logged beside them.
The phenotype figures are left out when the run has no phenotype CSV.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from trainer.paired_data import Pair, PairedData
from trainer.loss import ClipLoss


def study_inputs(data: PairedData, pairs: Sequence[Pair], max_videos: int) -> tuple[list[Any], np.ndarray, list[str]]:
    """Gallery of the unique studies of `pairs` (videos or view embeddings), each pair's index in
    it, and the gallery's study UIDs."""
    index: dict[str, int] = {}
    gallery: list[Any] = []
    target = np.empty(len(pairs), dtype=np.int64)
    for i, p in enumerate(pairs):
        if p.study_uid not in index:
            index[p.study_uid] = len(gallery)
            rows = np.asarray(p.video_rows[:max_videos])
            if data.view_emb is not None:
                gallery.append(np.asarray(data.view_emb[rows], dtype=np.float32))
            else:
                gallery.append([np.asarray(data.videos[r]) for r in rows])
        target[i] = index[p.study_uid]
    return gallery, target, list(index)


def encode_gallery(model: torch.nn.Module, gallery: list[Any], chunk: int = 64) -> np.ndarray:
    """(G, D) study embeddings of a gallery from study_inputs, in chunks (bounded memory)."""
    from e2r.encode import encode_echo_studies

    return np.concatenate([encode_echo_studies(model, gallery[i:i + chunk]) for i in range(0, len(gallery), chunk)])


def validate(model: torch.nn.Module, data: PairedData, batch_size: int, max_videos: int) -> dict[str, float]:
    """Every validation figure of the module doc for the current weights of `model`."""
    from e2r.encode import encode_ecg
    from e2r.metrics.retrieval import retrieval_metrics

    val = data.val
    ecg_emb = encode_ecg(model, [data.ecg[p.ecg_row] for p in val])  # (Q, D)
    gallery, target, uids = study_inputs(data, val, max_videos)
    study_emb = encode_gallery(model, gallery)  # (G, D)
    sim = ecg_emb @ study_emb.T  # (Q, G)
    exact = np.zeros(sim.shape, dtype=bool)
    exact[np.arange(len(val)), target] = True
    m = retrieval_metrics(sim, exact, ks=(1, 5, 10))
    g = len(uids)
    out: dict[str, float] = {f"val_recall@{k}": m.recall_at[k] for k in (1, 5, 10)}
    out.update({f"val_chance_recall@{k}": min(1.0, k / g) for k in (1, 5, 10)})
    out.update(val_exact_map=m.mean_ap, val_median_rank=m.median_rank,
               val_mean_rank=float(m.first_relevant_rank.mean()), val_chance_mean_rank=(g + 1) / 2,
               val_n_queries=len(val), val_n_gallery=g)
    if data.phenotypes:
        out.update(_phenotype_figures(model, data, val, ecg_emb, sim, uids, max_videos))
    out["val_loss"] = clip_loss_numpy_batches(ecg_emb, study_emb[target], batch_size,
                                              float(model.logit_scale.detach().cpu()))
    return out


def _phenotype_figures(model, data: PairedData, val: Sequence[Pair], ecg_emb: np.ndarray, sim: np.ndarray,
                       uids: list[str], max_videos: int) -> dict[str, float]:
    from e2r.metrics.classification import binary_metrics
    from e2r.metrics.knn import VOTE_K, VOTE_TEMPERATURE, knn_predict, label_arrays
    from e2r.metrics.retrieval import RELEVANCE_FIELDS, phenotype_relevance, retrieval_metrics
    from e2r.phenotypes import cohort_sd, lvef_le45_flag, phenotype_arrays

    ph = data.phenotypes
    fields = RELEVANCE_FIELDS
    q_rows = [ph.get(p.study_uid) for p in val]
    rel = phenotype_relevance(phenotype_arrays(q_rows, fields), phenotype_arrays([ph.get(u) for u in uids], fields),
                              fields=fields, sd=cohort_sd(ph, fields), tol=0.5)
    pm = retrieval_metrics(sim, rel, ks=(10,))
    out = {"val_pheno_map": pm.mean_ap, "val_pheno_relevant_fraction": pm.mean_relevant / sim.shape[1]}
    train_gallery, _, train_uids = study_inputs(data, data.train, max_videos)
    train_labels = label_arrays([ph.get(u) for u in train_uids])
    if not np.isfinite(train_labels["lvef"]).any():
        return out
    train_emb = encode_gallery(model, train_gallery)  # (A, D)
    pred = knn_predict(ecg_emb @ train_emb.T, train_labels, k=min(VOTE_K, len(train_uids)),
                       weighting="softmax", temperature=VOTE_TEMPERATURE)
    truth = label_arrays(q_rows)
    out["val_knn_le45_auroc"] = binary_metrics(lvef_le45_flag(truth["lvef"]), pred.p_le45)["auroc"]
    out["val_knn_lvh_auroc"] = binary_metrics(truth["lvh"], pred.p_lvh)["auroc"]
    err = np.abs(pred.lvef - truth["lvef"])
    out["val_knn_lvef_mae"] = float(np.nanmean(err)) if np.isfinite(err).any() else float("nan")
    return out


def clip_loss_numpy_batches(a: np.ndarray, b: np.ndarray, batch_size: int, logit_scale: float) -> float:
    """Mean CLIP loss over full consecutive batches (a lone short batch when none is full)."""
    n = len(a)
    b_size = min(batch_size, n)
    starts = range(0, n - b_size + 1, b_size)
    loss_fn = ClipLoss(gather=False)
    scale = torch.tensor(logit_scale)
    losses = [float(loss_fn(torch.from_numpy(a[s:s + b_size]), torch.from_numpy(b[s:s + b_size]), scale))
              for s in starts]
    return float(np.mean(losses))
