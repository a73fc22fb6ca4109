"""Echo2ECG: an ECG encoder and a multi-view echo study encoder aligned in one embedding space.

    ECG (B, 12, N) --ECGViT--> (B, C) --ecg_head--> (B, D) --L2--> ECG embedding
    videos (B, V, F, C, H, W) --video encoder--> (B, V, E) --aggregator--> (B, P)
                                                      --echo_head--> (B, D) --L2--> study embedding

The loss (trainer/loss.py) contrasts the two with logits = exp(logit_scale) * a @ b.T.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from e2r.models.aggregation import StudyAggregator
from e2r.models.ecg_vit import ECGViT, load_otis_weights
from e2r.models.video_encoder import VideoEncoder
from e2r.presets import ModelPreset, validate_preset


class Echo2ECG(nn.Module):
    """The full model of a preset. `load_weights=False` skips external weight files (OTiS,
    EchoPrime): a bundle's state_dict already holds every tensor."""

    def __init__(self, preset: ModelPreset, load_weights: bool = True):
        super().__init__()
        validate_preset(preset)
        self.preset = preset
        self.ecg_encoder = ECGViT(preset.ecg)
        if load_weights and preset.ecg.weights:
            load_otis_weights(self.ecg_encoder, preset.ecg.weights)
        if preset.echo.kind == "echoprime":
            from e2r.models.echoprime import EchoPrimeEncoder

            self.video_encoder: nn.Module = EchoPrimeEncoder(preset.echo, load_weights=load_weights)
        else:
            self.video_encoder = VideoEncoder(preset.echo)
            if preset.echo.frozen:
                self.video_encoder.requires_grad_(False)
        self.aggregator = StudyAggregator(preset.aggregation, preset.echo.out_dim)
        self.ecg_head = nn.Linear(preset.ecg.dim, preset.embed_dim)
        self.echo_head = nn.Linear(preset.aggregation.proj_dim, preset.embed_dim)
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(1.0 / preset.temperature)),
            requires_grad=preset.learn_temperature,
        )

    @property
    def video_encoder_frozen(self) -> bool:
        """True when the per-video encoder is frozen (EchoPrime, or `echo.frozen`): its embeddings can be cached."""
        return self.preset.echo.kind == "echoprime" or self.preset.echo.frozen

    def encode_ecg(self, ecg: torch.Tensor) -> torch.Tensor:
        """(B, 12, N) preprocessed ECG -> (B, D) L2-normalised embedding."""
        return self.encode_ecg_features(ecg)[1]  # (B, D)

    def encode_ecg_features(self, ecg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 12, N) preprocessed ECG -> (the ECG encoder's pooled features (B, C), before the
        projection head; the L2-normalised shared-space embedding (B, D) that `encode_ecg` returns)."""
        x = self.ecg_encoder(ecg)  # (B, C)
        return x, F.normalize(self.ecg_head(x), dim=-1)  # (B, C), (B, D)

    def embed_videos(self, videos: torch.Tensor) -> torch.Tensor:
        """(N, F, C, H, W) normalised videos -> (N, E) per-video features (no grad when frozen)."""
        if self.video_encoder_frozen:
            with torch.no_grad():
                return self.video_encoder(videos).float()  # (N, E)
        return self.video_encoder(videos)  # (N, E)

    def encode_study(self, view_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, V, E) view embeddings + (B, V) bool mask (True = real video) -> (B, D) L2-normalised."""
        pooled = self.aggregator(view_emb, mask.bool())  # (B, P)
        return F.normalize(self.echo_head(pooled), dim=-1)  # (B, D)

    def encode_study_videos(self, videos: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, V, F, C, H, W) videos + (B, V) mask -> (B, D); only real videos are encoded."""
        B, V = mask.shape
        mask = mask.bool()
        flat = videos.flatten(0, 1)[mask.flatten()]  # (n_real, F, C, H, W)
        emb = self.embed_videos(flat)  # (n_real, E)
        view_emb = emb.new_zeros(B * V, emb.shape[-1])  # (B*V, E)
        view_emb[mask.flatten()] = emb
        return self.encode_study(view_emb.view(B, V, -1), mask)  # (B, D)

    def forward(self, ecg: torch.Tensor, videos: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, view_emb: torch.Tensor | None = None):
        """(ecg (B,12,N), videos (B,V,F,C,H,W) or view_emb (B,V,E) (e.g. cached EchoPrime
        features), mask (B,V)) -> (ecg_emb (B,D), study_emb (B,D)). One call, so DDP sees it."""
        if mask is None or (videos is None) == (view_emb is None):
            raise ValueError("pass mask and exactly one of videos / view_emb")
        study = (self.encode_study(view_emb, mask) if view_emb is not None
                 else self.encode_study_videos(videos, mask))
        return self.encode_ecg(ecg), study

    def param_groups(self, lr: float, weight_decay: float, layer_decay: float = 0.75) -> list[dict]:
        """AdamW parameter groups with layer-wise lr decay.

        ECG ViT: block i gets lr * decay^(depth - i), the patch/lead/cls embeddings
        lr * decay^(depth + 1), its final norm the full lr; the own video encoder likewise over
        its stages (stem lowest, head full); aggregation, heads and logit scale get the full lr.
        Biases, norm weights, embeddings and the logit scale get no weight decay. Frozen
        parameters are left out. Each group carries "lr_scale" (its lr / lr) and "name".
        """
        groups: dict[tuple[str, int, bool], dict] = {}

        def add(name: str, p: nn.Parameter, part: str, level: int, n_levels: int) -> None:
            if not p.requires_grad:
                return
            scale = layer_decay ** (n_levels - level)
            no_decay = p.ndim <= 1 or name.endswith(("cls_token", "lead_embed"))
            key = (part, level, no_decay)
            if key not in groups:
                groups[key] = {"params": [], "lr": lr * scale, "lr_scale": scale,
                               "weight_decay": 0.0 if no_decay else weight_decay,
                               "name": f"{part}.{level}.{'no_decay' if no_decay else 'decay'}"}
            groups[key]["params"].append(p)

        ecg = self.ecg_encoder
        for name, p in ecg.named_parameters():
            add(name, p, "ecg", ecg.layer_id(name), ecg.n_layers)
        video = self.video_encoder
        for name, p in video.named_parameters():
            if isinstance(video, VideoEncoder):
                add(name, p, "video", video.layer_id(name), video.n_layers)
            else:
                add(name, p, "video", 0, 0)
        for module_name in ("aggregator", "ecg_head", "echo_head"):
            for name, p in getattr(self, module_name).named_parameters():
                add(name, p, module_name, 0, 0)
        add("logit_scale", self.logit_scale, "logit_scale", 0, 0)
        return list(groups.values())
