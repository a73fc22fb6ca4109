"""Symmetric InfoNCE (CLIP) loss between ECG and echo-study embeddings.

    logits = scale * ecg @ echo.T          # (B, B), row i's positive is column i
    loss   = (CE(logits, arange) + CE(logits.T, arange)) / 2

Under DDP every process gathers the embeddings of all processes (with gradient) and computes the
loss over the whole global batch, so each process sees the same loss a single process would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer.distributed import gather_with_grad


class ClipLoss(nn.Module):
    """CLIP loss; `logit_scale` is the log of the inverse temperature (it lives in the model)."""

    def __init__(self, gather: bool = True):
        super().__init__()
        self.gather = gather

    def forward(self, ecg: torch.Tensor, echo: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
        """ecg, echo: (B, D) L2-normalised local embeddings; returns the scalar global loss."""
        if self.gather:
            ecg, echo = gather_with_grad(ecg), gather_with_grad(echo)  # (B_global, D)
        ecg, echo = ecg.float(), echo.float()
        logits = logit_scale.float().exp() * ecg @ echo.T  # (B, B)
        labels = torch.arange(logits.shape[0], device=logits.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
