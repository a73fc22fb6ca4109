"""The alignment step: batch dict in, named losses out (no optimiser here; trainer.loop owns it).

A batch (trainer.batching.collate) holds
    ecg       float (B, 12, N)                   preprocessed, augmented ECG windows
    mask      bool  (B, V)                       True = real video
    videos    uint8 (B, V, F, H, W[, 3])         decoded clips (trainable echo encoder), or
    view_emb  float (B, V, E)                    cached per-video features (frozen echo encoder)

The step calls the model's own forward (Echo2ECG.forward), so DDP, which wraps the model, sees it.
"""

from __future__ import annotations

import torch
from torch import nn

from e2r.encode import normalize_videos


def core_model(module: nn.Module) -> nn.Module:
    """The Echo2ECG inside a DDP wrapper (or the module itself)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def clip_step(module: nn.Module, batch: dict[str, torch.Tensor], loss_fn: nn.Module) -> dict[str, torch.Tensor]:
    """Forward + CLIP loss on one (local) batch; `module` is an Echo2ECG or a DDP-wrapped one.

    Returns {"loss": scalar with grad, "logit_scale": detached scalar}.
    """
    core = core_model(module)
    if "view_emb" in batch:
        echo = {"view_emb": batch["view_emb"]}
    else:
        echo = {"videos": normalize_videos(batch["videos"], core.preset.echo)}  # (B, V, F, C, H, W)
    ecg_emb, study_emb = module(batch["ecg"], mask=batch["mask"], **echo)  # (B, D), (B, D)
    loss = loss_fn(ecg_emb.float(), study_emb.float(), core.logit_scale)
    return {"loss": loss, "logit_scale": core.logit_scale.detach().exp()}
