"""Per-epoch validation through the one encode path (e2r.encode): loss and retrieval metrics."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from trainer.data import Pair, PairedData
from trainer.loss import ClipLoss
from trainer.metrics import retrieval_metrics


def study_inputs(data: PairedData, pairs: Sequence[Pair], max_videos: int) -> tuple[list[Any], np.ndarray]:
    """Gallery of the unique studies of `pairs` (videos or view embeddings) and each pair's index in it."""
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
    return gallery, target


def validate(model: torch.nn.Module, data: PairedData, pairs: Sequence[Pair], batch_size: int,
             max_videos: int, chunk: int = 64) -> dict[str, float]:
    """Validation loss (CLIP loss over consecutive batches of `batch_size` pairs) and
    ECG -> study retrieval over the unique validation studies (Recall@1/5, ranks, chance)."""
    from e2r.encode import encode_ecg, encode_echo_studies

    ecg_emb = encode_ecg(model, [data.ecg[p.ecg_row] for p in pairs])  # (Q, D)
    gallery, target = study_inputs(data, pairs, max_videos)
    study_emb = np.concatenate([encode_echo_studies(model, gallery[i:i + chunk])
                                for i in range(0, len(gallery), chunk)])  # (G, D)
    metrics = retrieval_metrics(ecg_emb, study_emb, target)
    metrics["val_loss"] = clip_loss_numpy_batches(ecg_emb, study_emb[target], batch_size,
                                                  float(model.logit_scale.detach().cpu()))
    return metrics


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
