"""What echo-tower pretraining trains on (`EchoData`), built the same way from either source:
an archive + pairs CSV (trainer.echo_pretrain.load_echo_data) or an EchoNet-Dynamic folder
(trainer.echonet_data). Both decode the videos into the shared cache, then hand the labelled
studies of each split to `build_echo_data`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EchoData:
    """Decoded videos and their studies' z-scored targets, split into train and val videos."""

    videos: np.ndarray                # (n_videos, F, H, W[, 3]) uint8, memory-mapped
    fields: tuple[str, ...]
    norm: dict[str, tuple[float, float]]  # field -> (train mean, train SD)
    train_rows: np.ndarray            # (n_train,) rows of `videos`
    train_targets: np.ndarray         # (n_train, K) float32, NaN = missing
    val_rows: np.ndarray
    val_targets: np.ndarray
    val_study: np.ndarray             # (n_val,) index of each val video's study (per-study figures)
    val_views: tuple[str, ...] = ()   # (n_val,) view label of each val video ("unknown" when absent)
    summary: dict[str, Any] = field(default_factory=dict)
    train_study: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (n_train,) like val_study
    train_views: tuple[str, ...] = ()  # (n_train,) like val_views (trainer.view_probe fits a probe per view)


def build_echo_data(videos: np.ndarray, labelled: dict[str, list[tuple[str, list[int]]]],
                    values: dict[str, dict[str, Any]], fields: Sequence[str], view_of: dict[int, str],
                    summary: dict[str, Any]) -> EchoData:
    """EchoData from a decoded-video cache and the labelled studies of each split.

    labelled: {"train" | "val": [(study key, rows of `videos`)]}; values: study key -> {field:
    value or None}; view_of: video row -> view label. Fields without two training values are left
    out; targets are z-scored with the train split's mean and SD. `summary` gets the counts added.
    """
    train_values = np.array([[_num(values[u].get(f)) for f in fields] for u, _ in labelled["train"]])
    kept = [j for j, f in enumerate(fields) if np.isfinite(train_values[:, j]).sum() >= 2]
    dropped = [f for j, f in enumerate(fields) if j not in kept]
    if dropped:
        log.warning("echo pretraining: no training values for %s; left out", ", ".join(dropped))
    fields = tuple(fields[j] for j in kept)
    mean = np.nanmean(train_values[:, kept], axis=0)
    sd = np.nanstd(train_values[:, kept], axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    norm = {f: (float(mean[j]), float(sd[j])) for j, f in enumerate(fields)}

    def targets(items):
        vid, tgt, study = [], [], []
        for k, (uid, vrows) in enumerate(items):
            z = (np.array([_num(values[uid].get(f)) for f in fields]) - mean) / sd
            for r in vrows:
                vid.append(r)
                tgt.append(z)
                study.append(k)
        return np.asarray(vid, np.int64), np.asarray(tgt, np.float32).reshape(-1, len(fields)), np.asarray(study)

    tr_rows, tr_t, tr_study = targets(labelled["train"])
    va_rows, va_t, va_study = targets(labelled["val"])
    n_train, n_val = len(labelled["train"]), len(labelled["val"])
    summary = {**summary, "train_studies": n_train, "val_studies": n_val, "train_videos": len(tr_rows),
               "val_videos": len(va_rows), "fields": list(fields)}
    log.info("echo pretraining data: %d train studies (%d videos), %d val studies (%d videos)",
             n_train, len(tr_rows), n_val, len(va_rows))
    return EchoData(videos, fields, norm, tr_rows, tr_t, va_rows, va_t, va_study,
                    tuple(view_of[r] for r in va_rows), summary, train_study=tr_study,
                    train_views=tuple(view_of[r] for r in tr_rows))


def _num(v: Any) -> float:
    return float(v) if v is not None else np.nan
