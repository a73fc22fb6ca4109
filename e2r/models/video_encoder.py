"""e2r's own echo video encoder: a small, trainable (2+1)-D convolutional network.

Each stage is a spatial 1x3x3 convolution followed by a temporal 3x1x1 convolution (the R(2+1)D
factorisation), GroupNorm (batch-independent, so training and evaluation behave the same and
DDP needs no synchronised statistics) and a residual connection. A strided stem cuts the frame
size first, as that first layer dominates the cost on CPU. Global average pooling over time and
space, then a linear layer, gives the per-video embedding.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

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


class VideoEncoder(nn.Module):
    """(N, F, C, H, W) normalised frames -> (N, out_dim) per-video embedding."""

    def __init__(self, cfg: EchoEncoderConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.stem = nn.Sequential(
            nn.Conv3d(cfg.channels, w, (1, 5, 5), stride=(1, 2, 2), padding=(0, 2, 2), bias=False),
            _norm(w),
            nn.ReLU(inplace=True),
        )
        stages, c = [], w
        for i in range(cfg.depth):
            c_out = w * 2 ** (i + 1)
            stages.append(Stage(c, c_out, t_stride=2 if i < 2 else 1))
            c = c_out
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(c, cfg.out_dim)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = video.permute(0, 2, 1, 3, 4)  # (N, C, F, H, W)
        x = self.stem(x)  # (N, w, F, H/2, W/2)
        for stage in self.stages:
            x = stage(x)  # (N, c, F', H', W')
        x = x.mean(dim=(2, 3, 4))  # (N, c)
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
