"""The one typed configuration of a training run (`e2r train` builds it from flags).

`make_train_config(data=..., out_dir=..., preset="tiny", **overrides)` fills the optimisation
settings the caller leaves as None from the preset's TrainDefaults (the paper's values), then
`validate()` checks every value and names the flag when one is wrong.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from e2r.ecg.preprocess import NORMALISE_MODES
from e2r.errors import ConfigError
from trainer.augment import AugmentConfig

AGGREGATIONS = ("attention", "mean", "single-view")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs. Paths are stored as given (strings)."""

    data: str                          # cohort folder (holding pairs.csv) or a pairs CSV
    out_dir: str                       # model directory: bundle, checkpoints/, train_log.jsonl
    archive: Optional[str] = None      # echo archive root (default: <cohort>/echo)
    group_by: str = "uid"              # studies by StudyInstanceUID or by folder (e2r.echo.archive.GROUP_BY)
    cache_dir: Optional[str] = None    # decoded-video/ECG cache (default: <out_dir>/cache)
    preset: str = "tiny"               # model preset name (e2r.presets)
    aggregation: Optional[str] = None  # study aggregation override; None keeps the preset's
    epochs: int = 50
    batch_size: int = 256              # global batch (all processes together)
    lr: float = 5e-4
    weight_decay: float = 1e-7
    layer_decay: float = 0.75
    warmup_epochs: float = 5.0
    grad_clip: float = 1.0             # max global grad norm; 0 disables clipping
    seed: int = 0
    workers: int = 0                   # DataLoader worker processes (0 = in the main process)
    device: str = "auto"               # auto | cpu | cuda
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    resume: bool = False               # continue from <out_dir>/checkpoints/last.pt
    min_pairs: int = 8                 # refuse to train on fewer usable training pairs
    max_videos_per_study: int = 8      # videos per study in a batch (random subset in training)
    val_fraction: float = 0.1          # patients held out when the pairs CSV has no val rows
    progress: bool = True              # tqdm bars
    phenotypes: Optional[str] = None   # phenotype CSV (default: phenotypes.csv beside the pairs CSV)
    echo_encoder: Optional[str] = None # frozen echo tower folder (e2r train-echo) or EchoPrime weight file
    freeze_echo: bool = False          # freeze e2r's own (untrained) video encoder
    temperature: Optional[float] = None  # InfoNCE temperature override (None: the preset's)
    ecg_normalise: Optional[str] = None  # ECG input normalisation override (e2r.ecg.preprocess.NORMALISE_MODES)
    ecg_weights: Optional[str] = None  # OTiS ECG encoder weights to start from
    select_metric: Optional[str] = None  # validation key that picks the best epoch (None: the task's)

    def validate(self) -> "TrainConfig":
        """Raise ConfigError naming the flag and the value when a setting is out of range."""
        checks = [
            (self.epochs >= 1, "--epochs", self.epochs, "must be at least 1"),
            (self.batch_size >= 2, "--batch-size", self.batch_size,
             "must be at least 2 (a contrastive batch needs negatives)"),
            (self.lr > 0, "--lr", self.lr, "must be > 0"),
            (self.weight_decay >= 0, "--weight-decay", self.weight_decay, "must be >= 0"),
            (0 < self.layer_decay <= 1, "--layer-decay", self.layer_decay, "must lie in (0, 1]"),
            (self.warmup_epochs >= 0, "--warmup-epochs", self.warmup_epochs, "must be >= 0"),
            (self.grad_clip >= 0, "--grad-clip", self.grad_clip, "must be >= 0 (0 disables)"),
            (self.workers >= 0, "--workers", self.workers, "must be >= 0"),
            (self.group_by in ("uid", "folder"), "--group-by", self.group_by, "must be uid or folder"),
            (self.min_pairs >= 2, "--min-pairs", self.min_pairs, "must be at least 2"),
            (self.max_videos_per_study >= 1, "--max-videos", self.max_videos_per_study,
             "must be at least 1"),
            (0 < self.val_fraction < 1, "--val-fraction", self.val_fraction, "must lie in (0, 1)"),
            (self.device in DEVICES, "--device", self.device, f"must be one of {', '.join(DEVICES)}"),
            (self.aggregation is None or self.aggregation in AGGREGATIONS, "--aggregation",
             self.aggregation, f"must be one of {', '.join(AGGREGATIONS)}"),
            (self.temperature is None or self.temperature > 0, "--temperature", self.temperature,
             "must be > 0"),
            (self.ecg_normalise is None or self.ecg_normalise in NORMALISE_MODES, "--ecg-normalise",
             self.ecg_normalise, f"must be one of {', '.join(NORMALISE_MODES)}"),
            (self.select_metric is None or self.select_metric.startswith("val_"), "--select-metric",
             self.select_metric, "must name a validation figure (val_...)"),
        ]
        for ok, flag, value, what in checks:
            if not ok:
                raise ConfigError(f"{flag} {value}: {what}")
        if self.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise ConfigError("--device cuda: no CUDA device is visible; use --device auto or cpu")
        self.augment.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (stored in checkpoints and the bundle)."""
        return asdict(self)

    @property
    def checkpoint_dir(self) -> Path:
        """Folder of last.pt / best.pt."""
        return Path(self.out_dir) / "checkpoints"

    @property
    def resolved_cache_dir(self) -> Path:
        """The cache folder actually used."""
        return Path(self.cache_dir) if self.cache_dir else Path(self.out_dir) / "cache"


def make_train_config(data: str | Path, out_dir: str | Path, preset: str = "tiny",
                      defaults: Any = None, **overrides: Any) -> TrainConfig:
    """Build and validate a TrainConfig; optimisation settings left None come from `defaults`
    (a TrainDefaults; by default the preset's, the paper's recipe).

    Raises PresetError for an unknown preset and ConfigError for a value out of range.
    """
    from e2r.presets import get_preset

    defaults = defaults or get_preset(preset).train
    kwargs = {k: v for k, v in overrides.items() if v is not None}
    for name in ("epochs", "batch_size", "lr", "weight_decay", "layer_decay", "warmup_epochs",
                 "grad_clip"):
        kwargs.setdefault(name, getattr(defaults, name))
    return TrainConfig(data=str(data), out_dir=str(out_dir), preset=preset, **kwargs).validate()
