"""Study aggregation: many per-video embeddings (B, V, E) + a mask -> one study vector (B, P).

- attention: project the views (E -> P); one query = the masked mean of the projected views;
  keys/values = the projected views; padded views are masked out (key_padding_mask).
- mean: masked mean of the projected views.
- single-view (ablation): in training mode one random real view per study is used; in eval
  mode every view is used and the projections are averaged, so evaluation is deterministic
  and uses the whole study.
"""

from __future__ import annotations

import torch
from torch import nn

from e2r.presets import AggregationConfig


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of x (B, V, P) where mask (B, V) is True -> (B, P)."""
    m = mask.to(x.dtype).unsqueeze(-1)  # (B, V, 1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)  # (B, P)


class StudyAggregator(nn.Module):
    """Pool a study's view embeddings into one vector of width cfg.proj_dim."""

    def __init__(self, cfg: AggregationConfig, in_dim: int):
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(in_dim, cfg.proj_dim)
        if cfg.mode == "attention":
            self.attn = nn.MultiheadAttention(cfg.proj_dim, cfg.heads, batch_first=True)

    def forward(self, view_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if not bool(mask.any(dim=1).all()):
            raise ValueError("every study needs at least one real video (mask row all False)")
        h = self.proj(view_emb)  # (B, V, P)
        if self.cfg.mode == "attention":
            q = masked_mean(h, mask).unsqueeze(1)  # (B, 1, P)
            out, _ = self.attn(q, h, h, key_padding_mask=~mask, need_weights=False)  # (B, 1, P)
            return out.squeeze(1)  # (B, P)
        if self.cfg.mode == "single-view" and self.training:
            pick = torch.multinomial(mask.float(), 1).squeeze(1)  # (B,) one real view per study
            return h[torch.arange(h.shape[0], device=h.device), pick]  # (B, P)
        return masked_mean(h, mask)  # (B, P)
