"""The ECG encoder: a ViT over per-lead patches, shaped like OTiS (Turgut et al.).

Each lead is cut into patches of `patch_size` samples; a patch becomes a token. A token's embedding
is the patch projection plus a position code whose first half is a learnable lead embedding and
whose second half is a fixed 1-D sin-cos code of the patch's position in time (OTiS's
`pos_embed_y` / `pos_embed_x`). A class token is prepended as in OTiS; the global embedding is the
mean of the patch tokens (class token excluded) followed by a LayerNorm.

The attention block keeps OTiS's layout (a qkv projection, then the in-projection of
`nn.MultiheadAttention`, then its out-projection, then a final projection) so OTiS weights load
one-to-one; this layout is also why the base model has ~7.1M parameters rather than ~5.3M.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from e2r.errors import ConfigError
from e2r.models.weights import read_state_dict_file
from e2r.presets import ECGEncoderConfig

log = logging.getLogger(__name__)


def sincos_1d(n_positions: int, dim: int, device=None) -> torch.Tensor:
    """Fixed sin-cos position code (MAE/OTiS `get_1d_sincos_pos_embed`): (n_positions, dim)."""
    omega = torch.arange(dim // 2, dtype=torch.float64, device=device) / (dim / 2.0)
    omega = 1.0 / 10000**omega  # (dim/2,)
    pos = torch.arange(n_positions, dtype=torch.float64, device=device)
    out = pos[:, None] * omega[None, :]  # (n, dim/2)
    return torch.cat([out.sin(), out.cos()], dim=1).float()  # (n, dim)


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for a whole sample with probability p."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = torch.rand(x.shape[0], *([1] * (x.ndim - 1)), device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)


class Attention(nn.Module):
    """Multi-head self-attention in OTiS's layout: qkv -> MHA in-proj -> SDPA -> out-proj -> proj."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape  # (B, T, C)
        qkv = self.qkv(x).view(B, T, 3, C)  # (B, T, 3, C)
        w = self.in_proj_weight.view(3, C, C)  # (3, C_out, C_in)
        qkv = torch.einsum("btkc,kdc->btkd", qkv, w) + self.in_proj_bias.view(3, C)  # (B, T, 3, C)
        q, k, v = qkv.view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, h, T, c)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0
        )  # (B, h, T, c)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.proj(self.out_proj(y))  # (B, T, C)


class MLP(nn.Module):
    """Two-layer GELU MLP."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(F.gelu(self.fc1(x)))))  # (B, T, C)


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dropout)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))  # (B, T, C)
        x = x + self.drop_path(self.mlp(self.norm2(x)))  # (B, T, C)
        return x


class PatchEmbed(nn.Module):
    """Linear projection of a 1-lead patch, then LayerNorm + GELU (as OTiS's PatchEmbed)."""

    def __init__(self, patch_size: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(patch_size, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.norm(self.proj(patches)))  # (B, L, P, C)


class ECGViT(nn.Module):
    """ECG encoder: (B, n_leads, N) signal -> (B, dim) global embedding."""

    def __init__(self, cfg: ECGEncoderConfig):
        super().__init__()
        if cfg.dim % cfg.heads or cfg.dim % 4:
            raise ConfigError(
                f"ECG encoder dim={cfg.dim} must be divisible by heads={cfg.heads} and by 4"
            )
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.lead_embed = nn.Parameter(torch.randn(cfg.n_leads, cfg.dim // 2) * 0.02)
        rates = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(
            Block(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.dropout, r) for r in rates
        )
        self.fc_norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.apply(_init_weights)
        nn.init.normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, N = x.shape  # (B, L, N)
        p = self.cfg.patch_size
        if L != self.cfg.n_leads:
            raise ValueError(f"ECG input has {L} leads, the encoder expects {self.cfg.n_leads}")
        pad = (-N) % p  # zero-pad the end so the window is a whole number of patches
        if pad:
            x = F.pad(x, (0, pad))  # (B, L, N')
        P = x.shape[-1] // p
        tok = self.patch_embed(x.reshape(B, L, P, p))  # (B, L, P, C)
        half = self.cfg.dim // 2
        lead = self.lead_embed[:, None, :].expand(L, P, half)  # (L, P, C/2)
        time = sincos_1d(P, half, x.device)[None, :, :].expand(L, P, half)  # (L, P, C/2)
        tok = tok + torch.cat([lead, time], dim=-1)  # (B, L, P, C)
        tok = tok.reshape(B, L * P, -1)  # (B, T, C)
        tok = torch.cat([self.cls_token.expand(B, -1, -1), tok], dim=1)  # (B, 1+T, C)
        for block in self.blocks:
            tok = block(tok)  # (B, 1+T, C)
        return self.fc_norm(tok[:, 1:].mean(dim=1))  # (B, C)

    def layer_id(self, name: str) -> int:
        """Depth index for layer-wise lr decay: 0 = embeddings, i+1 = block i, depth+1 = top."""
        if name.startswith(("patch_embed", "cls_token", "lead_embed")):
            return 0
        m = re.match(r"blocks\.(\d+)\.", name)
        if m:
            return int(m.group(1)) + 1
        return self.cfg.depth + 1

    @property
    def n_layers(self) -> int:
        """Number of lr-decay levels below the top (depth + 1)."""
        return self.cfg.depth + 1


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# OTiS checkpoint names -> ours; keys are matched after stripping "module." / "encoder." prefixes.
_OTIS_RENAMES = (
    (r"^blocks\.(\d+)\.attn\.mha\.in_proj_(weight|bias)$", r"blocks.\1.attn.in_proj_\2"),
    (r"^blocks\.(\d+)\.attn\.mha\.out_proj\.(weight|bias)$", r"blocks.\1.attn.out_proj.\2"),
)
_OTIS_IGNORED = re.compile(r"^(pos_embed_x|head\..*|norm\..*|decoder.*|mask_token|attention_pool.*)$")


def convert_otis_state_dict(sd: dict, cfg: ECGEncoderConfig) -> dict:
    """Map an OTiS ViT state_dict onto ECGViT names and shapes.

    `patch_embed.proj.weight` is a Conv2d (C, 1, 1, p) in OTiS and a Linear (C, p) here;
    `pos_embed_y.weight` (1 + leads, C/2) holds a padding row first, rows 1..n_leads are the leads;
    the fixed `pos_embed_x` is recomputed, the classification head is dropped.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        for prefix in ("module.", "encoder.", "model."):
            key = key.removeprefix(prefix)
        if _OTIS_IGNORED.match(key):
            continue
        for pattern, repl in _OTIS_RENAMES:
            key = re.sub(pattern, repl, key)
        if key == "patch_embed.proj.weight" and value.ndim == 4:
            value = value.reshape(value.shape[0], -1)  # (C, 1, 1, p) -> (C, p)
        if key == "pos_embed_y.weight":
            key, value = "lead_embed", value[1 : 1 + cfg.n_leads]
        out[key] = value
    return out


def load_otis_weights(encoder: ECGViT, path: str | Path) -> tuple[list[str], list[str]]:
    """Load OTiS weights into `encoder`; returns (missing, unexpected) keys, also logged.

    Accepts a bare state_dict or a checkpoint dict with a "model" or "state_dict" entry.
    Raises ConfigError when the file is missing/unreadable or a tensor's shape does not fit.
    """
    path = Path(path)
    ckpt = read_state_dict_file(path, "OTiS", "pass a torch state_dict file (ECGEncoderConfig.weights / --ecg-weights)")
    sd = convert_otis_state_dict(ckpt, encoder.cfg)
    own = encoder.state_dict()
    for key, value in sd.items():
        if key in own and own[key].shape != value.shape:
            raise ConfigError(
                f"{path}: {key} has shape {tuple(value.shape)}, the preset's ECG encoder expects "
                f"{tuple(own[key].shape)}; use a preset with the checkpoint's dim/depth/patch size"
            )
    result = encoder.load_state_dict(sd, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    log.info("loaded OTiS weights from %s: %d tensors, missing %s, unexpected %s",
             path, len(sd) - len(unexpected), missing, unexpected)
    if missing:
        log.warning("OTiS weights %s lack %d tensors (kept at init): %s", path, len(missing), missing)
    return missing, unexpected


def count_params(module: nn.Module) -> int:
    """Number of parameters of a module."""
    return sum(p.numel() for p in module.parameters())


def expected_patches(n_samples: int, patch_size: int) -> int:
    """Patches per lead for a window of n_samples (the window is zero-padded to whole patches)."""
    return math.ceil(n_samples / patch_size)
