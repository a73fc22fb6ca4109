"""The supervised ceiling of the benchmark: the preset's ECG encoder trained directly on phenotypes.

    ECG (B, 12, N) --ECGViT (same config as Echo2ECG's)--> (B, C) --> heads:
        lvef_class  3 logits   cross-entropy over reduced / mildly reduced / preserved
        lvef        1 value    smooth-L1 on the z-scored LVEF (train mean / SD)
        lvef_le45   1 logit    binary cross-entropy (EchoNext's LVEF <= 45 % flag)
        lvh         1 logit    binary cross-entropy (max wall >= 13 mm)

A label that is missing for a study is masked out of its loss. It trains on the same loop as the
alignment (trainer.loop: AdamW, the preset's lr and weight decay, linear warm-up then cosine,
gradient clipping) with the paper's ECG augmentations (trainer.augment); the epoch is selected
by the mean of the validation LVEF<=45 and LVH AUROCs, the loss logged beside it.
`train_supervised` returns a `SupervisedModel` whose `predict` gives plain numpy arrays.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from e2r.errors import ConfigError, DataError
from e2r.phenotypes import LVEF_CLASSES, lvef_class_index, lvef_le45_flag, lvh_flag
from trainer.augment import AugmentConfig, augment_ecg
from trainer.task import Task

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
            lvh[i] = float(lvh_flag(walls))
    cls = lvef_class_index(lvef)
    le45 = lvef_le45_flag(lvef)
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
                "best_val_loss": next((h["val_loss"] for h in self.history if h["epoch"] == self.best_epoch), float("nan")),
                "config": {k: v for k, v in asdict(self.config).items() if k != "augment"}}


def _losses(out: dict[str, torch.Tensor], t: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum of the four masked losses (each the mean over the rows that carry its label)."""
    total = out["lvef"].new_zeros(()).float()
    cls_ok = t["lvef_class"] >= 0
    if cls_ok.any():
        total = total + nn.functional.cross_entropy(out["lvef_class"][cls_ok].float(), t["lvef_class"][cls_ok])
    ok = torch.isfinite(t["lvef"])
    if ok.any():
        total = total + nn.functional.smooth_l1_loss(out["lvef"][ok].float(), t["lvef"][ok])
    for k in ("lvef_le45", "lvh"):
        ok = torch.isfinite(t[k])
        if ok.any():
            total = total + nn.functional.binary_cross_entropy_with_logits(out[k][ok].float(), t[k][ok])
    return total


class _ECGTargets(torch.utils.data.Dataset):
    """Items {"ecg": augmented (12, T), targets...}; augmentation seeded by (seed, epoch, item)."""

    def __init__(self, x: np.ndarray, targets: dict[str, np.ndarray], augment: AugmentConfig, seed: int):
        self.x, self.t, self.augment, self.seed, self.epoch = x, targets, augment, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        item = {"ecg": torch.from_numpy(augment_ecg(np.asarray(self.x[i], np.float32), self.augment, rng))}
        for k, v in self.t.items():
            item[k] = torch.tensor(v[i], dtype=torch.long if k == "lvef_class" else torch.float32)
        return item


class SupervisedTask(Task):
    """ECG -> phenotype heads; selected by the mean of the validation LVEF<=45 and LVH AUROCs."""

    name = "supervised"
    select_metric = "val_auroc_mean"

    def __init__(self, model: SupervisedECG, train_x, train_t, val_x, val_t, augment: AugmentConfig, seed: int):
        self.model = model
        self.train_set = _ECGTargets(train_x, train_t, augment, seed)
        self.val_x, self.val_t = val_x, val_t
        self.data_summary = {"train_ecgs": len(train_x), "val_ecgs": len(val_x)}
        self.saved: dict[str, Any] = {}

    def step(self, module, batch):
        targets = {k: v for k, v in batch.items() if k != "ecg"}
        return {"loss": _losses(module(batch["ecg"]), targets)}

    def validate(self) -> dict[str, float]:
        from e2r.metrics.classification import binary_metrics

        model = self.model
        device = next(model.parameters()).device
        was = model.training
        model.eval()
        with torch.no_grad():
            outs = [model(torch.from_numpy(np.asarray(self.val_x[i:i + 256], np.float32)).to(device))
                    for i in range(0, len(self.val_x), 256)]
        model.train(was)
        out = {k: torch.cat([o[k] for o in outs]).float().cpu() for k in HEADS}
        t = {k: torch.as_tensor(v, dtype=torch.long if k == "lvef_class" else torch.float32) for k, v in self.val_t.items()}
        rec = {"val_loss": float(_losses(out, t))}
        for k in ("lvef_le45", "lvh"):
            rec[f"val_{k}_auroc"] = binary_metrics(self.val_t[k], torch.sigmoid(out[k]).numpy())["auroc"]
        finite = [v for v in (rec["val_lvef_le45_auroc"], rec["val_lvh_auroc"]) if np.isfinite(v)]
        rec["val_auroc_mean"] = float(np.mean(finite)) if finite else float("nan")
        return rec

    def save(self, out_dir, run_info, best_metrics) -> str:
        self.saved = {"run_info": run_info, "best_metrics": best_metrics}
        return ""


def train_supervised(train_x: np.ndarray, train_rows: Sequence, val_x: np.ndarray, val_rows: Sequence,
                     preset: Any, config: SupervisedConfig = SupervisedConfig(),
                     out_dir: Optional[str | Path] = None) -> SupervisedModel:
    """Train the ceiling on preprocessed train ECGs (N, 12, T) with their studies' phenotype rows on
    the shared loop; `preset` is a ModelPreset or a preset name. When out_dir is given, the
    checkpoints and train_log.jsonl go there with the best weights (supervised.pt) and the
    history (supervised.json); otherwise into a temporary folder."""
    import tempfile

    from e2r.presets import get_preset
    from trainer.config import make_train_config
    from trainer.loop import run, start

    config.validate()
    preset = get_preset(preset) if isinstance(preset, str) else preset
    d = preset.train
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

    with tempfile.TemporaryDirectory(prefix="e2r-supervised-") as tmp:
        out = Path(out_dir) if out_dir is not None else Path(tmp)
        cfg = make_train_config(
            "", out, preset=preset.name, defaults=d, epochs=config.epochs,
            batch_size=min(config.batch_size or d.batch_size, len(train_x)), lr=config.lr or d.lr,
            weight_decay=d.weight_decay if config.weight_decay is None else config.weight_decay,
            warmup_epochs=d.warmup_epochs if config.warmup_epochs is None else config.warmup_epochs,
            grad_clip=config.grad_clip, seed=config.seed, device=config.device, augment=config.augment,
            progress=False)
        if (out / "checkpoints").exists():  # a fresh run: an earlier one's log and checkpoints go
            import shutil

            shutil.rmtree(out / "checkpoints")
            (out / "train_log.jsonl").unlink(missing_ok=True)
        device, info, _ = start(cfg)
        model = SupervisedECG(preset).to(device)
        task = SupervisedTask(model, train_x, train_t, val_x, val_t, config.augment, config.seed)
        result = run(task, cfg, device, info)
    history = [{k: v for k, v in h.items() if isinstance(v, (int, float))} for h in result.history]
    sup = SupervisedModel(model.eval(), mean, sd, history, result.best_epoch, result.train_time_s, config)
    if out_dir is not None:
        out = Path(out_dir)
        torch.save({"state_dict": model.state_dict(), "lvef_mean": mean, "lvef_sd": sd}, out / "supervised.pt")
        (out / "supervised.json").write_text(json.dumps({**sup.info(), "history": history}, indent=2))
    return sup
