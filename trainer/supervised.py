"""The supervised ceiling of the benchmark: the preset's ECG encoder trained directly on phenotypes.

    ECG (B, 12, N) --ECGViT (same config as Echo2ECG's)--> (B, C) --> heads:
        lvef_class  3 logits   cross-entropy over reduced / mildly reduced / preserved
        lvef        1 value    smooth-L1 on the z-scored LVEF (train mean / SD)
        lvef_le45   1 logit    binary cross-entropy (EchoNext's LVEF <= 45 % flag)
        lvh         1 logit    binary cross-entropy (max wall >= 13 mm)

A label that is missing for a study is masked out of its loss. The recipe follows the alignment
arms (AdamW, the preset's lr and weight decay, linear warm-up then cosine, gradient clipping, the
paper's ECG augmentations from trainer.augment); the checkpoint with the lowest validation loss is
kept. `train_supervised` returns a `SupervisedModel` whose `predict` gives plain numpy arrays.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from e2r.errors import ConfigError, DataError
from e2r.phenotypes import LVEF_CLASSES, LVH_WALL_MM
from trainer.augment import AugmentConfig, augment_ecg
from trainer.loop import lr_lambda, select_device

log = logging.getLogger(__name__)

HEADS = ("lvef_class", "lvef", "lvef_le45", "lvh")


@dataclass(frozen=True)
class SupervisedConfig:
    """Optimisation settings of the ceiling (None: the preset's TrainDefaults)."""

    epochs: int = 20
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    weight_decay: Optional[float] = None
    warmup_epochs: Optional[float] = None
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> "SupervisedConfig":
        if self.epochs < 1:
            raise ConfigError(f"supervised epochs {self.epochs}: must be at least 1")
        if self.batch_size is not None and self.batch_size < 2:
            raise ConfigError(f"supervised batch size {self.batch_size}: must be at least 2")
        self.augment.validate()
        return self


class SupervisedECG(nn.Module):
    """ECGViT of the preset + one linear head per target."""

    def __init__(self, preset: Any):
        super().__init__()
        from e2r.models.ecg_vit import ECGViT

        self.preset = preset
        self.encoder = ECGViT(preset.ecg)
        dim = preset.ecg.dim
        self.heads = nn.ModuleDict({"lvef_class": nn.Linear(dim, len(LVEF_CLASSES)), "lvef": nn.Linear(dim, 1),
                                    "lvef_le45": nn.Linear(dim, 1), "lvh": nn.Linear(dim, 1)})

    def forward(self, ecg: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 12, N) -> {"lvef_class": (B, 3), "lvef": (B,), "lvef_le45": (B,), "lvh": (B,)}."""
        z = self.encoder(ecg)  # (B, C)
        out = {name: head(z) for name, head in self.heads.items()}
        return {k: (v if k == "lvef_class" else v.squeeze(-1)) for k, v in out.items()}


def targets_of(rows: Sequence[Optional[Mapping[str, Any]]]) -> dict[str, np.ndarray]:
    """Training targets from phenotype rows: class index (-1 missing), LVEF, 0/1 flags (NaN missing)."""
    n = len(rows)
    lvef = np.full(n, np.nan)
    lvh = np.full(n, np.nan)
    for i, row in enumerate(rows):
        if not row:
            continue
        if row.get("lvef") is not None:
            lvef[i] = float(row["lvef"])
        walls = [float(row[f]) for f in ("ivsd", "lvpwd") if row.get(f) is not None]
        if row.get("lvh") is not None:
            lvh[i] = float(row["lvh"])
        elif walls:
            lvh[i] = float(max(walls) >= LVH_WALL_MM)
    cls = np.where(np.isfinite(lvef), np.where(lvef < 40, 0, np.where(lvef < 50, 1, 2)), -1)
    le45 = np.where(np.isfinite(lvef), (lvef <= 45).astype(float), np.nan)
    return {"lvef_class": cls.astype(np.int64), "lvef": lvef, "lvef_le45": le45, "lvh": lvh}


@dataclass
class SupervisedModel:
    """A trained ceiling model with the LVEF scaling it needs to predict."""

    model: SupervisedECG
    lvef_mean: float
    lvef_sd: float
    history: list[dict[str, float]]
    best_epoch: int
    train_time_s: float
    config: SupervisedConfig

    def predict(self, x: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Preprocessed ECGs (N, 12, T) -> class_proba (N, 3), p_le45, p_lvh, lvef (N,) as numpy."""
        model = self.model
        device = next(model.parameters()).device
        model.eval()
        outs: dict[str, list[np.ndarray]] = {k: [] for k in HEADS}
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                out = model(torch.from_numpy(np.asarray(x[i:i + batch_size], dtype=np.float32)).to(device))
                for k in HEADS:
                    outs[k].append(out[k].float().cpu().numpy())
        if len(x) == 0:
            return {"class_proba": np.zeros((0, 3)), "p_le45": np.zeros(0), "p_lvh": np.zeros(0), "lvef": np.zeros(0)}
        logits = np.concatenate(outs["lvef_class"])
        proba = np.exp(logits - logits.max(axis=1, keepdims=True))
        return {
            "class_proba": proba / proba.sum(axis=1, keepdims=True),
            "p_le45": 1 / (1 + np.exp(-np.concatenate(outs["lvef_le45"]))),
            "p_lvh": 1 / (1 + np.exp(-np.concatenate(outs["lvh"]))),
            "lvef": np.concatenate(outs["lvef"]) * self.lvef_sd + self.lvef_mean,
        }

    def info(self) -> dict[str, Any]:
        """Plain-JSON summary (the benchmark's results.json keeps it)."""
        return {"best_epoch": self.best_epoch, "epochs": len(self.history), "train_time_s": self.train_time_s,
                "best_val_loss": min((h["val_loss"] for h in self.history), default=float("nan")),
                "config": {k: v for k, v in asdict(self.config).items() if k != "augment"}}


def _losses(out: dict[str, torch.Tensor], t: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of the four masked losses (each the mean over the rows that carry its label)."""
    total = out["lvef"].new_zeros(())
    cls_ok = t["lvef_class"] >= 0
    if cls_ok.any():
        total = total + nn.functional.cross_entropy(out["lvef_class"][cls_ok], t["lvef_class"][cls_ok])
    ok = torch.isfinite(t["lvef"])
    if ok.any():
        total = total + nn.functional.smooth_l1_loss(out["lvef"][ok], t["lvef"][ok])
    for k in ("lvef_le45", "lvh"):
        ok = torch.isfinite(t[k])
        if ok.any():
            total = total + nn.functional.binary_cross_entropy_with_logits(out[k][ok], t[k][ok])
    return total


def train_supervised(train_x: np.ndarray, train_rows: Sequence, val_x: np.ndarray, val_rows: Sequence,
                     preset: Any, config: SupervisedConfig = SupervisedConfig(),
                     out_dir: Optional[str | Path] = None) -> SupervisedModel:
    """Train the ceiling on preprocessed train ECGs (N, 12, T) with their studies' phenotype rows,
    select the epoch by validation loss; `preset` is a ModelPreset or a preset name. When out_dir
    is given, the best weights (supervised.pt) and the history (supervised.json) are written there."""
    from e2r.presets import get_preset

    config.validate()
    preset = get_preset(preset) if isinstance(preset, str) else preset
    defaults = preset.train
    batch = config.batch_size or defaults.batch_size
    lr = config.lr or defaults.lr
    wd = defaults.weight_decay if config.weight_decay is None else config.weight_decay
    warmup = defaults.warmup_epochs if config.warmup_epochs is None else config.warmup_epochs
    train_t, val_t = targets_of(train_rows), targets_of(val_rows)
    if len(train_x) != len(train_rows) or len(val_x) != len(val_rows):
        raise DataError("supervised: ECG arrays and phenotype rows differ in length")
    if len(train_x) < 2 or not np.isfinite(train_t["lvef"]).any():
        raise DataError(f"supervised: {len(train_x)} train ECGs with LVEF labels; need at least 2 labelled ECGs")
    if len(val_x) == 0:
        raise DataError("supervised: no validation ECGs; the pairs CSV needs val rows with an ECG")
    mean = float(np.nanmean(train_t["lvef"]))
    sd = float(np.nanstd(train_t["lvef"])) or 1.0
    for t in (train_t, val_t):
        t["lvef"] = (t["lvef"] - mean) / sd

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = select_device(config.device)
    model = SupervisedECG(preset).to(device)
    batch = min(batch, len(train_x))
    steps_per_epoch = max(1, len(train_x) // batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(int(round(warmup * steps_per_epoch)), config.epochs * steps_per_epoch))
    to_t = lambda t, idx: {k: torch.as_tensor(v[idx], dtype=torch.long if k == "lvef_class" else torch.float32,  # noqa: E731
                                              device=device) for k, v in t.items()}
    history: list[dict[str, float]] = []
    best = (math.inf, 0, None)
    t0 = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        order = rng.permutation(len(train_x))
        losses = []
        for s in range(steps_per_epoch):
            idx = np.sort(order[s * batch:(s + 1) * batch])
            x = np.stack([augment_ecg(np.asarray(train_x[i], np.float32), config.augment, rng) for i in idx])
            loss = _losses(model(torch.from_numpy(x).to(device)), to_t(train_t, idx))
            if not torch.isfinite(loss):
                raise DataError(f"supervised training diverged in epoch {epoch + 1} (loss {float(loss)}); "
                                "lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
        model.eval()
        with torch.no_grad():
            outs = [model(torch.from_numpy(np.asarray(val_x[i:i + 256], np.float32)).to(device))
                    for i in range(0, len(val_x), 256)]
            val_out = {k: torch.cat([o[k] for o in outs]) for k in HEADS}
            val_loss = float(_losses(val_out, to_t(val_t, np.arange(len(val_x)))))
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": val_loss})
        log.info("supervised epoch %d: train %.4f val %.4f", epoch + 1, history[-1]["train_loss"], val_loss)
        if val_loss < best[0]:
            best = (val_loss, epoch + 1, {k: v.detach().clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    result = SupervisedModel(model.eval(), mean, sd, history, best[1], time.perf_counter() - t0, config)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": model.state_dict(), "lvef_mean": mean, "lvef_sd": sd}, out / "supervised.pt")
        (out / "supervised.json").write_text(json.dumps({**result.info(), "history": history}, indent=2))
    return result
