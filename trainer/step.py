"""One training step's forward: batch dict in, named losses out (no optimiser here).

A batch (trainer.data.collate) holds
    ecg       float (B, 12, N)                   preprocessed, augmented ECG windows
    mask      bool  (B, V)                       True = real video
    videos    uint8 (B, V, F, H, W[, 3])         decoded clips (trainable echo encoder), or
    view_emb  float (B, V, E)                    cached per-video features (frozen echo encoder)
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from e2r.encode import normalize_videos


class PairForward(nn.Module):
    """Echo2ECG behind one forward(batch) -> (ecg_emb, study_emb), the shape DDP wraps."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.model
        ecg_emb = model.encode_ecg(batch["ecg"])  # (B, D)
        mask = batch["mask"]
        if "view_emb" in batch:
            study_emb = model.encode_study(batch["view_emb"], mask)  # (B, D)
        else:
            videos = normalize_videos(batch["videos"], model.preset.echo)  # (B, V, F, C, H, W)
            study_emb = model.encode_study_videos(videos, mask)  # (B, D)
        return ecg_emb, study_emb


def batch_to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move every tensor of a batch to `device` (non-blocking from pinned memory)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA, nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(model: nn.Module, batch: dict[str, torch.Tensor], loss_fn: nn.Module) -> dict[str, torch.Tensor]:
    """Forward + loss on one (local) batch.

    `model`: an Echo2ECG, a PairForward, or a DDP-wrapped PairForward (DDP needs its own
    forward to be called so gradients are synchronised). Returns {"loss": scalar with grad,
    "logit_scale": detached scalar}.
    """
    pair = model if isinstance(model, (PairForward, nn.parallel.DistributedDataParallel)) else PairForward(model)
    core = _core(pair)
    with autocast_for(batch["ecg"].device):
        ecg_emb, study_emb = pair(batch)
    loss = loss_fn(ecg_emb.float(), study_emb.float(), core.logit_scale)
    return {"loss": loss, "logit_scale": core.logit_scale.detach().exp()}


def _core(pair: nn.Module) -> nn.Module:
    inner = pair.module if isinstance(pair, nn.parallel.DistributedDataParallel) else pair
    return inner.model
