"""The unimodal self-supervised baseline ("ECG-only SSL"): the preset's ECG encoder trained with
SimCLR's contrastive objective between two augmented views of one ECG. No echo at all.

    ECG x --augment_ecg (the paper's augmentations, trainer.augment)--> x1, x2      (B, 12, N) each
    x1, x2 --ECGViT--> (2B, C) --ecg_head--> (2B, D) --L2--> z1, z2
    loss = NT-Xent(z1, z2)   (trainer.loss.NTXentLoss; temperature: the preset's, as for alignment)

It is the Echo2ECG paper's "unimodal baseline" in the only form that can be trained here: the
same encoder, the same training ECGs, the same epochs, batch, lr, warm-up and layer decay as the
alignment arms (the shared loop, trainer.loop, with its bf16 autocast on CUDA, checkpoints and
train_log.jsonl); only the objective differs. The Echo2ECG's own ECG projection head serves as
SimCLR's projection head, so probes read the pooled features before it (`e2r embed`'s `features`).

The epoch is selected by `val_knn_auroc_mean`: the mean of the validation ECGs' LVEF<=45 and LVH
AUROCs under the paper's kNN probe (k = 5, cosine, uniform vote) over the pooled features of the
training ECGs, labelled with their paired studies' measured phenotypes. The NT-Xent of fixed
validation views is logged beside it (`val_loss`).

The artefact is an ordinary Echo2ECG model bundle (e2r.bundle.save_bundle), so `e2r embed`,
`e2r eval --ecg-labels --protocol knn|linear` and the benchmark load it unchanged. Its echo side
(video encoder, aggregation, echo head) is the seeded random initialisation, never trained; the
bundle's train_config says so (`"objective": "simclr"` and `ECG_ONLY_MARK`): an ECG feature extractor,
not a retrieval model.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from e2r.errors import ConfigError, DataError
from trainer.augment import AugmentConfig, augment_ecg
from trainer.config import TrainConfig
from trainer.loop import TrainResult, run, start
from trainer.loss import NTXentLoss
from trainer.task import Task

OBJECTIVE = "simclr"
KNN_K = 5  # the paper's probe
SELECT_METRIC = "val_knn_auroc_mean"
# What bundle.json's train_config carries for a bundle whose echo side was never trained (beside its
# "objective"): this arm's, and any encoder saved by `save_encoder_bundle` (the supervised ceiling's).
ECG_ONLY_MARK = {"ecg_only": True,
                 "echo_side": "random initialisation, never trained: an ECG feature extractor, not a retrieval model"}
_VAL_VIEWS_KEY = 0x5E1F  # fixed seed part of the validation views: the same views every epoch


def ecg_array_digest(x: np.ndarray) -> str:
    """sha256 (first 16 hex) of an ECG array's shape and bytes: names the training ECGs in the bundle."""
    a = np.ascontiguousarray(x, dtype=np.float32)
    h = hashlib.sha256(repr(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


class TwoViews(torch.utils.data.Dataset):
    """Items {"view1", "view2"}: two augmentations of one ECG (12, N), seeded by (seed, epoch, item)."""

    def __init__(self, x: np.ndarray, augment: AugmentConfig, seed: int):
        self.x, self.augment, self.seed, self.epoch = x, augment, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the randomness of `epoch` (call before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return views_of(np.asarray(self.x[i], np.float32), self.augment, np.random.default_rng([self.seed, self.epoch, i]))


def views_of(x: np.ndarray, augment: AugmentConfig, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Two independent draws of the augmentations of one (12, N) ECG, as tensors."""
    return {"view1": torch.from_numpy(augment_ecg(x, augment, rng)),
            "view2": torch.from_numpy(augment_ecg(x, augment, rng))}


class ECGProjection(nn.Module):
    """The step's forward: an Echo2ECG's ECG side only, (B, 12, N) -> (B, D) L2-normalised. DDP wraps
    this module, so it sees the forward; the echo side is frozen and never reached."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ecg: torch.Tensor) -> torch.Tensor:
        return self.model.encode_ecg(ecg)  # (B, D)


class SSLTask(Task):
    """SimCLR on the ECG side of an Echo2ECG; selected by the validation kNN AUROC (see module doc)."""

    name = "ssl"
    select_metric = SELECT_METRIC

    def __init__(self, model: Any, train_x: np.ndarray, train_labels: dict[str, np.ndarray], val_x: np.ndarray,
                 val_labels: dict[str, np.ndarray], config: TrainConfig):
        self.model, self.config = model, config
        for part in (model.video_encoder, model.aggregator, model.echo_head):
            part.requires_grad_(False)  # no echo at all: left out of the optimiser and of DDP
        self.train_x, self.val_x = train_x, val_x
        self.train_labels, self.val_labels = train_labels, val_labels
        self.train_set = TwoViews(train_x, config.augment, config.seed)
        self.projection = ECGProjection(model)
        self.loss_fn = NTXentLoss(gather=True)
        self.data_summary = {"train_ecgs": len(train_x), "val_ecgs": len(val_x),
                             "train_ecgs_sha256": ecg_array_digest(train_x), "val_ecgs_sha256": ecg_array_digest(val_x)}

    def forward_module(self) -> nn.Module:
        return self.projection

    def param_groups(self, lr: float, weight_decay: float, layer_decay: float) -> list[dict]:
        return self.model.param_groups(lr, weight_decay, layer_decay)  # the frozen echo side is left out

    def step(self, module, batch):
        n = batch["view1"].shape[0]
        z = module(torch.cat([batch["view1"], batch["view2"]]))  # (2B, D): both views in one forward
        loss = self.loss_fn(z[:n].float(), z[n:].float(), self.model.logit_scale)
        return {"loss": loss, "logit_scale": self.model.logit_scale.detach().exp()}

    def validate(self) -> dict[str, float]:
        from e2r.encode import encode_ecg_features

        train_f = encode_ecg_features(self.model, self.train_x)[0]  # (T, C)
        val_f = encode_ecg_features(self.model, self.val_x)[0]  # (V, C)
        out = knn_aurocs(train_f, self.train_labels, val_f, self.val_labels)
        finite = [v for v in out.values() if np.isfinite(v)]
        out[SELECT_METRIC] = float(np.mean(finite)) if finite else float("nan")
        out["val_loss"] = self._val_loss()
        out["logit_scale"] = float(self.model.logit_scale.detach().exp())
        out["val_feature_sd"] = float(val_f.std(axis=0).mean())  # a collapse to one point shows here
        return out

    def _val_loss(self) -> float:
        """NT-Xent over full consecutive batches of fixed validation views (a lone short batch when none is full)."""
        x = self.val_x
        size = min(self.config.batch_size, len(x))
        loss_fn = NTXentLoss(gather=False)  # validation runs on rank 0 alone
        model = self.model
        device = next(model.parameters()).device
        was = model.training
        model.eval()
        losses = []
        with torch.no_grad():
            for s in range(0, len(x) - size + 1, size):
                views = [views_of(np.asarray(x[i], np.float32), self.config.augment,
                                  np.random.default_rng([self.config.seed, _VAL_VIEWS_KEY, i])) for i in range(s, s + size)]
                v1 = torch.stack([v["view1"] for v in views]).to(device)  # (b, 12, N)
                v2 = torch.stack([v["view2"] for v in views]).to(device)
                losses.append(float(loss_fn(model.encode_ecg(v1).float(), model.encode_ecg(v2).float(),
                                            model.logit_scale)))
        model.train(was)
        return float(np.mean(losses))

    def save(self, out_dir, run_info, best_metrics) -> str:
        from e2r.bundle import save_bundle

        train_config = {**run_info, "objective": OBJECTIVE, **ECG_ONLY_MARK, "best_metrics": best_metrics}
        return save_bundle(self.model.cpu(), out_dir, train_config, self.data_summary)

    def describe(self, r: dict[str, Any]) -> str:
        return (f"train {r['train_loss']:.4f} val {r['val_loss']:.4f}, kNN AUROC LVEF<=45 "
                f"{r['val_knn_le45_auroc']:.3f} LVH {r['val_knn_lvh_auroc']:.3f}, {r['items_per_s']:.0f} ECGs/s")


def knn_aurocs(train_f: np.ndarray, train_labels: dict[str, np.ndarray], val_f: np.ndarray,
               val_labels: dict[str, np.ndarray], k: int = KNN_K) -> dict[str, float]:
    """`val_knn_le45_auroc`, `val_knn_lvh_auroc`: AUROC of the paper's kNN probe (k, cosine, uniform
    vote over the labelled train rows) for each 0/1 label array (NaN = unlabelled); NaN where a
    side lacks labels or the validation rows hold one class."""
    from e2r.metrics.classification import binary_metrics
    from e2r.metrics.knn import ecg_knn_classify

    out = {}
    for key, name in (("lvef_le45", "le45"), ("lvh", "lvh")):
        y_train, y_val = train_labels[key], val_labels[key]
        labels = [int(v) if np.isfinite(v) else None for v in y_train]
        if all(v is None for v in labels) or not np.isfinite(y_val).any():
            out[f"val_knn_{name}_auroc"] = float("nan")
            continue
        proba, _ = ecg_knn_classify(train_f, labels, val_f, k=k, classes=(0, 1))
        out[f"val_knn_{name}_auroc"] = binary_metrics(y_val, proba[:, 1])["auroc"]
    return out


def train_ssl(config: TrainConfig, train_x: np.ndarray, train_rows: Sequence, val_x: np.ndarray,
              val_rows: Sequence, preset: Any = None) -> TrainResult:
    """Train the ECG-only SSL baseline on preprocessed ECGs (N, 12, T) and write its bundle into
    config.out_dir. `*_rows`: the phenotype rows of each ECG's paired study (None: unlabelled),
    read by the validation kNN only; `preset`: a ModelPreset to start from instead of config.preset's
    (config's --ecg-normalise / --temperature overrides apply either way).

    Raises ConfigError (an echo encoder was given, bad --resume), DataError (too few ECGs, arrays and
    rows of different lengths), TrainingDivergedError."""
    from e2r.models import Echo2ECG
    from trainer import distributed as D
    from trainer.align import model_preset
    from trainer.supervised import targets_of

    if config.echo_encoder or config.freeze_echo:
        raise ConfigError("--echo-encoder / --freeze-echo: the ECG-only SSL arm trains no echo side; drop them")
    if len(train_x) != len(train_rows) or len(val_x) != len(val_rows):
        raise DataError("ECG-only SSL: ECG arrays and phenotype rows differ in length")
    if len(train_x) < 2:
        raise DataError(f"ECG-only SSL: {len(train_x)} training ECGs; a contrastive batch needs at least 2")
    if len(val_x) < 2:
        raise DataError(f"ECG-only SSL: {len(val_x)} validation ECGs; need at least 2 (add rows with split=val)")
    device, info, created = start(config)
    try:
        model = Echo2ECG(model_preset(config, preset)[0]).to(device)
        train_t, val_t = targets_of(train_rows), targets_of(val_rows)
        task = SSLTask(model, train_x, train_t, val_x, val_t, config)
        return run(task, config, device, info)
    finally:
        if created:
            D.cleanup()


def save_encoder_bundle(encoder: nn.Module, preset: Any, out_dir: Any, train_config: dict[str, Any],
                        seed: int = 0) -> str:
    """Any trained ECG encoder (an ECGViT of `preset`; e.g. the supervised ceiling's) as an ECG-only
    model bundle in out_dir; returns its hash. An Echo2ECG whose ECG encoder holds these weights, its
    projection head and echo side the `seed`ed random initialisation, never trained, and
    train_config marked so (ECG_ONLY_MARK): `e2r embed`, the probes and the benchmark read its pooled
    features like any other bundle's."""
    from e2r.bundle import save_bundle
    from e2r.models import Echo2ECG

    torch.manual_seed(seed)
    model = Echo2ECG(preset, load_weights=False)
    model.ecg_encoder.load_state_dict(encoder.state_dict())
    return save_bundle(model.eval(), out_dir, {**train_config, **ECG_ONLY_MARK, "seed": seed}, {})
