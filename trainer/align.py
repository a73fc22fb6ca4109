"""CLIP alignment of the ECG encoder with the multi-view echo study encoder (`e2r train`).

The paper's recipe: the per-video echo encoder is frozen (EchoPrime there; by default here e2r's
own tower pretrained on the archive's measurements, `e2r train-echo`), its per-video embeddings
are computed once and cached, and the ECG encoder, the study aggregation and both heads are
trained with the symmetric InfoNCE loss. Without `--echo-encoder` the video encoder is trained
too (or frozen at random init with `--freeze-echo`); measured, that learns far less.

`train(config)` runs one job on the shared loop (trainer.loop) and saves a model bundle that
records which tower it was aligned to.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Optional

from trainer import distributed as D
from trainer.config import TrainConfig
from trainer.paired_data import PairedData, load_paired_data
from trainer.batching import PairDataset, collate
from trainer.loop import TrainResult, run, start
from trainer.loss import ClipLoss
from trainer.step import clip_step
from trainer.task import Task
from trainer.validate import validate

log = logging.getLogger(__name__)


def model_preset(config: TrainConfig, preset: Any = None) -> tuple[Any, Any]:
    """The run's model preset (config.preset's, or `preset`, with the flag overrides applied) and
    the frozen echo encoder it aligns to (an e2r.echo_tower.EchoSource, or None)."""
    from e2r.echo_tower import resolve_echo_encoder
    from e2r.presets import get_preset, with_overrides

    preset = preset or get_preset(config.preset)
    over: dict[str, Any] = {}
    if config.aggregation and config.aggregation != preset.aggregation.mode:
        over["aggregation__mode"] = config.aggregation
    if config.temperature is not None:
        over["temperature"] = config.temperature
    if config.ecg_normalise and config.ecg_normalise != preset.ecg_preprocess.normalise:
        over["ecg_preprocess__normalise"] = config.ecg_normalise
    if config.ecg_weights:
        over["ecg__weights"] = config.ecg_weights
    source = None
    if config.echo_encoder:
        source = resolve_echo_encoder(config.echo_encoder)
        over["echo"] = source.echo
    elif config.freeze_echo:
        over["echo__frozen"] = True
    return (with_overrides(preset, **over) if over else preset), source


class AlignTask(Task):
    """Echo2ECG trained with the CLIP loss; selected by validation phenotype-aware mAP."""

    name = "align"

    def __init__(self, config: TrainConfig, data: PairedData, model: Any, source: Any = None):
        self.config, self.data, self.model, self.source = config, data, model, source
        preset = model.preset
        self.train_set = PairDataset(data, data.train, train=True, augment=config.augment, seed=config.seed,
                                     max_videos=config.max_videos_per_study,
                                     single_view=preset.aggregation.mode == "single-view")
        self.collate = collate
        self.find_unused_parameters = preset.aggregation.mode == "single-view"
        self.select_metric = config.select_metric or ("val_pheno_map" if data.phenotypes else "val_exact_map")
        self.data_summary = data.summary.to_dict()
        self.loss_fn = ClipLoss(gather=True)

    def param_groups(self, lr: float, weight_decay: float, layer_decay: float) -> list[dict]:
        return self.model.param_groups(lr, weight_decay, layer_decay)

    def step(self, module, batch):
        return clip_step(module, batch, self.loss_fn)

    def validate(self) -> dict[str, float]:
        out = validate(self.model, self.data, self.config.batch_size, self.config.max_videos_per_study)
        out["logit_scale"] = float(self.model.logit_scale.detach().exp())
        return out

    def save(self, out_dir, run_info, best_metrics) -> str:
        from e2r.bundle import save_bundle

        tower = self.source.describe() if self.source is not None else None
        return save_bundle(self.model.cpu(), out_dir, {**run_info, "best_metrics": best_metrics},
                           self.data_summary, echo_tower=tower)

    def describe(self, r: dict[str, Any]) -> str:
        parts = [f"train {r['train_loss']:.4f} val {r['val_loss']:.4f}",
                 f"R@1 {r['val_recall@1']:.3f} (chance {r['val_chance_recall@1']:.3f})"]
        if "val_pheno_map" in r:
            parts.append(f"pheno mAP {r['val_pheno_map']:.3f}")
        if "val_knn_le45_auroc" in r:
            parts.append(f"kNN LVEF<=45 AUROC {r['val_knn_le45_auroc']:.3f}")
        return ", ".join(parts) + f", {r['items_per_s']:.0f} pairs/s"


def train(config: TrainConfig, data: Optional[PairedData] = None, preset: Any = None) -> TrainResult:
    """Align as configured (see module doc). `data`: an already loaded data set built for the same
    echo encoder (tests, benchmark arms); `preset`: a ModelPreset to start from instead of
    config.preset's. Raises DataError (too few pairs, bad CSV), BundleError (bad --echo-encoder),
    ConfigError (bad --resume), TrainingDivergedError."""
    from e2r.models import Echo2ECG

    device, info, created = start(config)
    try:
        preset, source = model_preset(config, preset)
        model = Echo2ECG(preset)
        if source is not None and source.encoder_state is not None:
            model.video_encoder.load_state_dict(source.encoder_state)
        model = model.to(device)
        if data is None:
            frozen = model.video_encoder_frozen
            encoder_id = source.hash if source is not None else None
            # Rank 0 builds the caches; the others then find them complete and reuse them.
            if info.is_main:
                data = load_paired_data(config, preset, embedder=model if frozen else None, encoder_id=encoder_id)
            D.barrier()
            if not info.is_main:
                data = load_paired_data(replace(config, progress=False), preset,
                                        embedder=model if frozen else None, encoder_id=encoder_id)
        elif source is None and not model.video_encoder_frozen and data.videos is None:
            raise ValueError("data holds cached view embeddings but the echo encoder is trainable")
        if source is None and not model.video_encoder_frozen:
            log.warning("aligning without a pretrained echo tower: the video encoder starts random and "
                        "learns little from a few hundred pairs; pretrain one with `e2r train-echo` "
                        "and pass it with --echo-encoder")
        return run(AlignTask(config, data, model, source), config, device, info)
    finally:
        if created:
            D.cleanup()
