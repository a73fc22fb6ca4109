"""The training loop: optimiser, schedule, AMP, DDP, validation, checkpoints, log, bundle.

`train(config)` runs one training job (single process, or one rank of a torchrun job) and
returns a TrainResult; rank 0 writes `<out_dir>/checkpoints/{last,best}.pt`, appends one JSON
line per epoch to `<out_dir>/train_log.jsonl`, and at the end saves the best weights as a model
bundle in `<out_dir>` (e2r.bundle.save_bundle).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from e2r.errors import ConfigError, E2RError
from trainer import distributed as D
from trainer.checkpoint import BEST, LAST, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from trainer.config import TrainConfig
from trainer.data import PairedData, load_paired_data
from trainer.dataset import PairDataset, collate
from trainer.loss import ClipLoss
from trainer.step import PairForward, batch_to, train_step
from trainer.validate import validate

log = logging.getLogger(__name__)
LOG_NAME = "train_log.jsonl"


class TrainingDivergedError(E2RError):
    """The loss or the gradients became NaN/inf; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainResult:
    """What a run did (returned by every rank; rank 0's holds the bundle hash)."""

    out_dir: str
    bundle_hash: Optional[str]
    epochs: int                      # completed epochs, resumed ones included
    start_epoch: int                 # epochs already done when this run started (resume)
    best_epoch: int                  # 1-based
    best_val_loss: float
    best_metrics: dict[str, float]
    history: tuple[dict[str, Any], ...]
    data_summary: dict[str, Any]
    device: str
    world_size: int
    pairs_per_s: float               # mean training throughput of this run's epochs (global)
    train_time_s: float
    params: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        d = asdict(self)
        d["history"] = list(self.history)
        return d


def select_device(name: str, local_rank: int = 0) -> torch.device:
    """auto -> CUDA when visible, else CPU."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is visible; use --device auto or cpu")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def lr_lambda(warmup_steps: int, total_steps: int):
    """Linear warm-up to 1, then cosine to 0, as a function of the step (LambdaLR factor)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def resolve_preset(config: TrainConfig, preset: Any = None):
    """The model preset of the run, with the --aggregation override applied."""
    from e2r.presets import get_preset, with_overrides

    preset = preset or get_preset(config.preset)
    if config.aggregation and config.aggregation != preset.aggregation.mode:
        preset = with_overrides(preset, aggregation__mode=config.aggregation)
    return preset


def _cpu_threads(world_size: int) -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // world_size)


def train(config: TrainConfig, data: Optional[PairedData] = None, preset: Any = None) -> TrainResult:
    """Run training as configured (see module doc). `data`: an already loaded data set (tests,
    benchmark arms); otherwise it is built from config.data. `preset`: a ModelPreset to use
    instead of config.preset's (a derived variant; config.aggregation still applies).

    Raises DataError (too few pairs, bad CSV), ConfigError (bad --resume), TrainingDivergedError.
    """
    from e2r.models import Echo2ECG

    config.validate()
    preset = resolve_preset(config, preset)
    dist_created = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    device = select_device(config.device, int(os.environ.get("LOCAL_RANK", "0")))
    info = D.init_distributed(device.type)
    dist_created = dist_created and info.distributed
    try:
        return _train(config, preset, device, info, data, Echo2ECG)
    finally:
        if dist_created:
            D.cleanup()


def _train(config: TrainConfig, preset, device: torch.device, info: D.DistInfo,
           data: Optional[PairedData], model_cls) -> TrainResult:
    if device.type == "cpu":
        torch.set_num_threads(_cpu_threads(info.world_size))
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    out_dir = Path(config.out_dir)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)

    model = model_cls(preset).to(device)
    frozen = bool(model.video_encoder_frozen)
    if data is None:
        # Rank 0 builds the caches; the others then find them complete and reuse them.
        if info.is_main:
            data = load_paired_data(config, preset, embedder=model if frozen else None)
        D.barrier()
        if not info.is_main:
            data = load_paired_data(replace_progress(config), preset, embedder=model if frozen else None)
    summary = data.summary.to_dict()

    global_batch = min(config.batch_size, len(data.train))
    local_batch = global_batch // info.world_size
    if local_batch < 1:
        raise ConfigError(f"--batch-size {config.batch_size}: fewer pairs per process than "
                          f"processes ({info.world_size}); use a larger batch")
    train_set = PairDataset(data, data.train, train=True, augment=config.augment, seed=config.seed,
                            max_videos=config.max_videos_per_study,
                            single_view=preset.aggregation.mode == "single-view")
    sampler = DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank,
                                 shuffle=True, seed=config.seed, drop_last=True)
    loader = DataLoader(train_set, batch_size=local_batch, sampler=sampler, drop_last=True,
                        collate_fn=collate, num_workers=config.workers,
                        pin_memory=device.type == "cuda", persistent_workers=config.workers > 0)
    steps_per_epoch = len(loader)

    pair = PairForward(model)
    if info.distributed:
        pair = torch.nn.parallel.DistributedDataParallel(
            pair, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=preset.aggregation.mode == "single-view")
    optimizer = torch.optim.AdamW(model.param_groups(config.lr, config.weight_decay, config.layer_decay),
                                  lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(int(round(config.warmup_epochs * steps_per_epoch)),
                             config.epochs * steps_per_epoch))
    loss_fn = ClipLoss(gather=True)

    state = {"epoch": 0, "step": 0, "best_val_loss": math.inf, "best_epoch": 0, "history": []}
    ckpt_dir = config.checkpoint_dir
    if config.resume:
        ckpt = load_checkpoint(ckpt_dir / LAST)
        _check_resumable(ckpt, config)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        state = {k: ckpt[k] for k in state}
        set_rng_state(ckpt["rng"])
        log.info("resuming after epoch %d from %s", state["epoch"], ckpt_dir / LAST)
    start_epoch = state["epoch"]
    jsonl = out_dir / LOG_NAME
    run_pairs, run_time = 0, 0.0

    for epoch in range(start_epoch, config.epochs):
        sampler.set_epoch(epoch)
        train_set.set_epoch(epoch)
        model.train()
        t0 = time.perf_counter()
        losses = []
        bar = tqdm(loader, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{config.epochs}",
                   unit="batch", disable=not (config.progress and info.is_main), leave=False)
        for batch in bar:
            batch = batch_to(batch, device)
            out = train_step(pair, batch, loss_fn)
            loss = out["loss"]
            if not torch.isfinite(loss):
                raise _diverged(config, state, epoch, f"loss is {float(loss)}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                if not torch.isfinite(norm):
                    raise _diverged(config, state, epoch, f"gradient norm is {float(norm)}")
            optimizer.step()
            scheduler.step()
            state["step"] += 1
            losses.append(float(loss.detach()))
            elapsed = time.perf_counter() - t0
            bar.set_postfix(loss=f"{losses[-1]:.4f}",
                            pairs_s=f"{len(losses) * global_batch / max(elapsed, 1e-9):.1f}")
        bar.close()
        train_time = time.perf_counter() - t0
        run_pairs += steps_per_epoch * global_batch
        run_time += train_time

        record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                                  "lr": optimizer.param_groups[0]["lr"] / optimizer.param_groups[0].get("lr_scale", 1.0),
                                  "pairs_per_s": steps_per_epoch * global_batch / max(train_time, 1e-9),
                                  "train_time_s": train_time}
        if info.is_main:
            tv = time.perf_counter()
            record.update(validate(model, data, data.val, global_batch, config.max_videos_per_study))
            record["val_time_s"] = time.perf_counter() - tv
            record["epoch_time_s"] = time.perf_counter() - t0
            record["logit_scale"] = float(model.logit_scale.detach().exp())
            if not math.isfinite(record["val_loss"]):
                raise _diverged(config, state, epoch, f"validation loss is {record['val_loss']}")
        state["epoch"] = epoch + 1
        state["history"].append(record)
        if info.is_main:
            improved = record["val_loss"] < state["best_val_loss"]
            if improved:
                state["best_val_loss"], state["best_epoch"] = record["val_loss"], epoch + 1
                save_checkpoint(ckpt_dir / BEST, {"model": model.state_dict(), "epoch": epoch + 1,
                                                  "metrics": record})
            save_checkpoint(ckpt_dir / LAST, {
                **state, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": rng_state(), "config": config.to_dict()})
            with open(jsonl, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            log.info("epoch %d: train %.4f val %.4f R@1 %.3f (chance %.3f) R@5 %.3f %.1f pairs/s",
                     epoch + 1, record["train_loss"], record["val_loss"], record["recall@1"],
                     record["chance_recall@1"], record["recall@5"], record["pairs_per_s"])
        D.barrier()

    bundle_hash = None
    best_metrics: dict[str, float] = {}
    if info.is_main:
        best = load_checkpoint(ckpt_dir / BEST)
        model.load_state_dict(best["model"])
        best_metrics = best["metrics"]
        from e2r.bundle import save_bundle

        train_config = {**config.to_dict(), "world_size": info.world_size, "device": str(device),
                        "best_epoch": state["best_epoch"], "epochs_completed": state["epoch"]}
        bundle_hash = save_bundle(model.cpu() if device.type != "cpu" else model, out_dir,
                                  train_config, summary)
    D.barrier()
    return TrainResult(
        out_dir=str(out_dir), bundle_hash=bundle_hash, epochs=state["epoch"], start_epoch=start_epoch,
        best_epoch=state["best_epoch"], best_val_loss=state["best_val_loss"], best_metrics=best_metrics,
        history=tuple(state["history"]), data_summary=summary, device=str(device),
        world_size=info.world_size, pairs_per_s=run_pairs / run_time if run_time else 0.0,
        train_time_s=run_time,
        params={"total": sum(p.numel() for p in model.parameters()),
                "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)})


def replace_progress(config: TrainConfig) -> TrainConfig:
    """The config without progress bars (non-main ranks)."""
    from dataclasses import replace

    return replace(config, progress=False)


def _check_resumable(ckpt: dict[str, Any], config: TrainConfig) -> None:
    old = ckpt.get("config", {})
    for name, flag in (("preset", "--preset"), ("aggregation", "--aggregation"),
                       ("batch_size", "--batch-size")):
        if old.get(name) != getattr(config, name):
            raise ConfigError(f"--resume: the checkpoint was trained with {flag} {old.get(name)}, "
                              f"not {getattr(config, name)}; use the same value or a new --out")


def _diverged(config: TrainConfig, state: dict[str, Any], epoch: int, what: str) -> TrainingDivergedError:
    last = config.checkpoint_dir / LAST
    kept = (f"the last good checkpoint (epoch {state['epoch']}) is kept at {last}"
            if state["epoch"] > 0 else "no epoch had finished, so no checkpoint was written")
    return TrainingDivergedError(
        f"training diverged in epoch {epoch + 1} ({what}); {kept}; lower --lr or check the "
        "input data, then rerun (with --resume to continue from the checkpoint)")
