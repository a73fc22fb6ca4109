"""What a training job is to the loop (trainer.loop.run): a model, data, one step, validation, an artefact.

Subclasses: trainer.align.AlignTask (CLIP alignment of ECG and echo study), trainer.echo_pretrain.
EchoTowerTask (per-video phenotype regression), trainer.supervised.SupervisedTask (ECG ->
phenotypes, the benchmark's ceiling), trainer.ssl.SSLTask (SimCLR on the ECG alone, its unimodal
baseline). Each step takes a batch dict and returns named losses ({"loss": scalar with grad, ...});
the loop owns everything else.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset


class Task:
    """Base class; subclasses set the attributes in __init__ and implement step/validate/save."""

    name: str = "task"
    model: nn.Module                      # trained, checkpointed and saved
    train_set: Dataset                    # items the loop batches (with `collate`)
    select_metric: str = "val_loss"       # validation key that picks the best epoch (max, or min for *loss)
    find_unused_parameters: bool = False  # DDP: parameters some steps do not use
    loader_workers: int | None = None     # DataLoader workers (None: config.workers)
    data_summary: dict[str, Any] = {}

    def collate(self, items: list[Any]) -> dict[str, torch.Tensor]:
        """Items -> batch dict (default: torch's stacking)."""
        return torch.utils.data.default_collate(items)

    def set_epoch(self, epoch: int) -> None:
        """Select the randomness of `epoch` in the data set (augmentations)."""
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)

    def forward_module(self) -> nn.Module:
        """The module whose forward the step calls (DDP wraps it)."""
        return self.model

    def param_groups(self, lr: float, weight_decay: float, layer_decay: float) -> list[dict]:
        """AdamW parameter groups (default: one group of the trainable parameters)."""
        return [{"params": [p for p in self.model.parameters() if p.requires_grad], "lr": lr,
                 "weight_decay": weight_decay, "lr_scale": 1.0, "name": "all"}]

    def step(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Forward + loss of one (local) batch: {"loss": scalar with grad, ...}."""
        raise NotImplementedError

    def validate(self) -> dict[str, float]:
        """Validation figures of the current weights; must hold "val_loss" and `select_metric`."""
        raise NotImplementedError

    def save(self, out_dir: Any, run_info: dict[str, Any], best_metrics: dict[str, Any]) -> str:
        """Write the artefact of the best weights (now loaded in `model`); returns its hash."""
        raise NotImplementedError

    def describe(self, record: dict[str, Any]) -> str:
        """One log line for an epoch record."""
        return " ".join(f"{k} {v:.4g}" for k, v in record.items()
                        if isinstance(v, float) and (k.startswith("val_") or k == "train_loss"))


def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the finite entries of target (B, K); NaN marks a missing label."""
    ok = torch.isfinite(target)
    if not bool(ok.any()):
        return pred.sum() * 0.0  # keeps the graph: every parameter gets a zero gradient
    diff = (pred.float() - torch.nan_to_num(target)) * ok
    return (diff ** 2).sum() / ok.sum()


