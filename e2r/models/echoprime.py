"""The EchoPrime video encoder (optional extra): torchvision MViT-v2-S with a 512-d head, frozen.

EchoPrime's `echo_prime_encoder.pt` is the state_dict of
`torchvision.models.video.mvit_v2_s()` whose last head layer is replaced by `Linear(768, 512)`.
Input: 16 frames (stride 2) of 224x224 RGB normalised with EchoPrime's mean/std.
torchvision is imported here only, so the rest of e2r works without it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from e2r.errors import ConfigError
from e2r.models.weights import read_state_dict_file
from e2r.presets import EchoEncoderConfig

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'e2r[echoprime]'"


def _torchvision_video():
    try:
        import torchvision.models.video as tv_video
    except Exception as exc:  # ImportError, or a torchvision built for another torch
        raise ConfigError(f"the echoprime echo encoder needs torchvision, which cannot be imported "
                          f"({exc.__class__.__name__}); install it with: {INSTALL_HINT}") from exc
    return tv_video


def build_mvit(out_dim: int = 512) -> nn.Module:
    """An untrained MViT-v2-S with its last head layer replaced by Linear(768, out_dim)."""
    tv_video = _torchvision_video()
    model = tv_video.mvit_v2_s(weights=None)
    model.head[-1] = nn.Linear(model.head[-1].in_features, out_dim)
    return model


def read_echoprime_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an EchoPrime encoder file: a state_dict, or {"state_dict"/"model": ...}, "module." ok."""
    sd = read_state_dict_file(path, "EchoPrime", "pass the path of EchoPrime's echo_prime_encoder.pt "
                              "(echo.weights / --echo-weights)")
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ConfigError(f"{path}: not a state_dict of tensors; pass EchoPrime's echo_prime_encoder.pt")
    return {k.removeprefix("module."): v for k, v in sd.items()}


class EchoPrimeEncoder(nn.Module):
    """Frozen MViT-v2-S: (N, F, 3, H, W) normalised frames -> (N, 512). Always in eval mode."""

    def __init__(self, cfg: EchoEncoderConfig, load_weights: bool = True):
        super().__init__()
        self.cfg = cfg
        _torchvision_video()  # the install hint comes before any complaint about weights
        sd = None
        if load_weights:  # read the file first: a bad path fails before the slow model build
            if not cfg.weights:
                raise ConfigError("the echoprime echo encoder needs EchoPrime's weight file; set "
                                  "echo.weights (e.g. --echo-weights echo_prime_encoder.pt)")
            sd = read_echoprime_state_dict(cfg.weights)
        self.mvit = build_mvit(cfg.out_dim)
        if sd is not None:
            try:
                self.mvit.load_state_dict(sd, strict=True)
            except RuntimeError as exc:
                first = str(exc).splitlines()[0] if str(exc) else "mismatch"
                raise ConfigError(f"{cfg.weights}: does not fit MViT-v2-S with a 512-d head "
                                  f"({first}); pass EchoPrime's echo_prime_encoder.pt") from exc
            log.info("loaded EchoPrime encoder weights from %s", cfg.weights)
        for p in self.mvit.parameters():
            p.requires_grad_(False)
        self.mvit.eval()

    def train(self, mode: bool = True) -> EchoPrimeEncoder:
        """Stay in eval mode: the encoder is frozen (dropout off)."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = video.permute(0, 2, 1, 3, 4)  # (N, 3, F, H, W)
        return self.mvit(x)  # (N, 512)
