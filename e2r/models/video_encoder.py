"""e2r's own echo video encoder: a small, trainable (2+1)-D convolutional network.

Each stage is a spatial 1x3x3 convolution followed by a temporal 3x1x1 convolution (the R(2+1)D
factorisation), GroupNorm (batch-independent, so training and evaluation behave the same and
DDP needs no synchronised statistics) and a residual connection. A strided stem cuts the frame
size first. The stem is a patch embedding (non-overlapping frames x pixels patches through one
linear layer, i.e. a Conv3d with kernel = stride) written as reshape + Linear because that runs
~5x faster than Conv3d on CPU, where the full-resolution first layer dominates the cost.

Pooling sees motion explicitly: the features are averaged over space at each time step, then their
mean and standard deviation over time are concatenated and projected to the per-video embedding,
so how much the heart moves during the clip (what the ejection fraction measures) reaches the
head directly. With the temporal convolutions before it, a plain global average pooled about as
well on the phantom (docs/benchmarks.md); mean + SD is never worse there and does not rely on them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from e2r.presets import EchoEncoderConfig


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class Stage(nn.Module):
    """(2+1)-D residual stage: spatial conv (stride 2) -> norm -> relu -> temporal conv -> norm."""

    def __init__(self, c_in: int, c_out: int, t_stride: int):
        super().__init__()
        self.spatial = nn.Conv3d(c_in, c_out, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False)
        self.norm1 = _norm(c_out)
        self.temporal = nn.Conv3d(c_out, c_out, (3, 1, 1), stride=(t_stride, 1, 1), padding=(1, 0, 0),
                                  bias=False)
        self.norm2 = _norm(c_out)
        self.skip = nn.Conv3d(c_in, c_out, 1, stride=(t_stride, 2, 2), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.spatial(x)))  # (N, C', T, H/2, W/2)
        y = self.norm2(self.temporal(y))  # (N, C', T/s, H/2, W/2)
        return F.relu(y + self.skip(x))  # (N, C', T/s, H/2, W/2)


class PatchStem(nn.Module):
    """Non-overlapping (pt frames x ps x ps pixels) patches -> Linear -> GroupNorm -> ReLU."""

    def __init__(self, channels: int, pt: int, ps: int, width: int):
        super().__init__()
        self.pt, self.ps = pt, ps
        self.proj = nn.Linear(channels * pt * ps * ps, width)
        self.norm = _norm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, C, T, H, W = x.shape  # (N, C, T, H, W)
        pt, ps = self.pt, self.ps
        if T % pt or H % ps or W % ps:
            raise ValueError(f"video ({T} frames, {H}x{W}) is not a whole number of "
                             f"{pt}x{ps}x{ps} patches")
        x = x.view(N, C, T // pt, pt, H // ps, ps, W // ps, ps)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7).flatten(4)  # (N, T', H', W', C*pt*ps*ps)
        x = self.proj(x).permute(0, 4, 1, 2, 3)  # (N, w, T', H', W')
        return F.relu(self.norm(x))  # (N, w, T', H', W')


class VideoEncoder(nn.Module):
    """(N, F, C, H, W) normalised frames -> (N, out_dim) per-video embedding."""

    def __init__(self, cfg: EchoEncoderConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.stem = PatchStem(cfg.channels, cfg.patch[0], cfg.patch[1], w)
        stages, c = [], w
        for i in range(cfg.depth):
            c_out = w * 2 ** (i + 1)
            stages.append(Stage(c, c_out, t_stride=2 if i < 2 else 1))  # time: 1/4 after two stages
            c = c_out
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(2 * c, cfg.out_dim)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = video.permute(0, 2, 1, 3, 4)  # (N, C, F, H, W)
        x = self.stem(x)  # (N, w, F/pt, H/ps, W/ps)
        for stage in self.stages:
            x = stage(x)  # (N, c, F', H', W')
        x = x.mean(dim=(3, 4))  # (N, c, F')  spatial mean per time step
        x = torch.cat([x.mean(dim=2), x.std(dim=2, unbiased=False)], dim=1)  # (N, 2c)
        return self.head(x)  # (N, out_dim)

    def layer_id(self, name: str) -> int:
        """Depth index for layer-wise lr decay: 0 = stem, i+1 = stage i, depth+1 = head."""
        if name.startswith("stem"):
            return 0
        if name.startswith("stages."):
            return int(name.split(".")[1]) + 1
        return self.cfg.depth + 1

    @property
    def n_layers(self) -> int:
        """Number of lr-decay levels below the top (depth + 1)."""
        return self.cfg.depth + 1
