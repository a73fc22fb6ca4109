"""Contrastive losses: symmetric InfoNCE (CLIP) between ECG and echo-study embeddings, and NT-Xent
(SimCLR) between two augmented views of one ECG (the ECG-only SSL arm, trainer.ssl).

CLIP:

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


class NTXentLoss(nn.Module):
    """SimCLR's NT-Xent loss between two augmented views of the same N items.

        z      = cat(a, b)                        # (2N, D), row i and row i+N are views of item i
        logits = scale * z @ z.T, diagonal = -inf  # an embedding is not its own candidate
        loss   = mean_i CE(logits[i], partner(i))  # partner(i) = i+N for i < N, i-N otherwise

    Each view's negatives are the other 2N-2 embeddings of the (global, under DDP) batch; the
    temperature is 1 / exp(logit_scale), the model's, as for ClipLoss.
    """

    def __init__(self, gather: bool = True):
        super().__init__()
        self.gather = gather

    def forward(self, a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
        """a, b: (N, D) L2-normalised local embeddings of the two views; returns the scalar global loss."""
        if self.gather:
            a, b = gather_with_grad(a), gather_with_grad(b)  # (N_global, D)
        z = torch.cat([a.float(), b.float()])  # (2N, D)
        n = a.shape[0]
        logits = logit_scale.float().exp() * z @ z.T  # (2N, 2N)
        self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)  # (2N,)
        return F.cross_entropy(logits, partner)
