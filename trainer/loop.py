"""The one training loop: optimiser, schedule, AMP, DDP, validation, model selection, checkpoints.

Every training job of e2r runs here; the jobs differ only in their `Task` (trainer.task):
CLIP alignment (trainer.align), echo-tower pretraining (trainer.echo_pretrain) and the
supervised ECG ceiling (trainer.supervised). `run(task, config)` trains one task (single process,
or one rank of a torchrun job); rank 0 writes `<out_dir>/checkpoints/{last,best}.pt`, appends one
JSON line per epoch to `<out_dir>/train_log.jsonl` and at the end asks the task to save the best
weights (a model bundle, an echo tower, ...).

The best epoch is the best by the task's selection metric (for alignment: validation
phenotype-aware mAP), never by the loss alone: with a few hundred pairs the lowest validation
loss comes a few epochs after initialisation while retrieval still improves. The loss is logged
beside it.
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

from e2r.errors import ConfigError, E2RError
from e2r.progress import progress_bar
from trainer import distributed as D
from trainer.checkpoint import BEST, LAST, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from trainer.config import TrainConfig
from trainer.task import Task

log = logging.getLogger(__name__)
LOG_NAME = "train_log.jsonl"


class TrainingDivergedError(E2RError):
    """The loss or the gradients became NaN/inf; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainResult:
    """What a run did (returned by every rank; rank 0's holds the artefact hash)."""

    out_dir: str
    bundle_hash: Optional[str]
    epochs: int                      # completed epochs, resumed ones included
    start_epoch: int                 # epochs already done when this run started (resume)
    best_epoch: int                  # 1-based
    select_metric: str               # the validation key the best epoch was chosen by
    best_score: float
    best_metrics: dict[str, float]
    history: tuple[dict[str, Any], ...]
    data_summary: dict[str, Any]
    device: str
    world_size: int
    items_per_s: float               # mean training throughput of this run's epochs (global)
    train_time_s: float
    params: dict[str, int] = field(default_factory=dict)

    @property
    def pairs_per_s(self) -> float:
        """Alignment's name for the throughput (pairs are its items)."""
        return self.items_per_s

    @property
    def best_val_loss(self) -> float:
        """Validation loss of the selected epoch."""
        return float(self.best_metrics.get("val_loss", math.nan))

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


def cpu_threads(world_size: int) -> int:
    """Torch threads per process on CPU: the cores this process may use, shared by the ranks."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // world_size)


def better(score: float, best: float, minimise: bool) -> bool:
    """Whether `score` improves on `best` (NaN never does)."""
    if not math.isfinite(score):
        return False
    return score < best if minimise else score > best


def run(task: Task, config: TrainConfig, device: torch.device, info: D.DistInfo) -> TrainResult:
    """Train `task` as configured (see module doc) and return what happened.

    Raises ConfigError (bad --resume, batch too small for the processes), TrainingDivergedError.
    """
    out_dir = Path(config.out_dir)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    model = task.model
    train_set = task.train_set
    global_batch = min(config.batch_size, len(train_set))
    local_batch = global_batch // info.world_size
    if local_batch < 1:
        raise ConfigError(f"--batch-size {config.batch_size}: fewer items per process than "
                          f"processes ({info.world_size}); use a larger batch")
    sampler = DistributedSampler(train_set, num_replicas=info.world_size, rank=info.rank,
                                 shuffle=True, seed=config.seed, drop_last=True)
    workers = config.workers if task.loader_workers is None else task.loader_workers
    loader = DataLoader(train_set, batch_size=local_batch, sampler=sampler, drop_last=True,
                        collate_fn=task.collate, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    steps_per_epoch = len(loader)

    module = task.forward_module()
    if info.distributed:
        module = torch.nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=task.find_unused_parameters)
    optimizer = torch.optim.AdamW(task.param_groups(config.lr, config.weight_decay, config.layer_decay),
                                  lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(int(round(config.warmup_epochs * steps_per_epoch)),
                             config.epochs * steps_per_epoch))
    select, minimise = task.select_metric, task.select_metric.endswith("loss")

    state: dict[str, Any] = {"epoch": 0, "step": 0, "best_score": math.nan, "best_epoch": 0, "history": []}
    ckpt_dir = config.checkpoint_dir
    if config.resume:
        ckpt = load_checkpoint(ckpt_dir / LAST)
        _check_resumable(ckpt, config, task)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        state = {k: ckpt[k] for k in state}
        set_rng_state(ckpt["rng"])
        log.info("resuming after epoch %d from %s", state["epoch"], ckpt_dir / LAST)
    start_epoch = state["epoch"]
    jsonl = out_dir / LOG_NAME
    run_items, run_time = 0, 0.0

    for epoch in range(start_epoch, config.epochs):
        sampler.set_epoch(epoch)
        task.set_epoch(epoch)
        model.train()
        t0 = time.perf_counter()
        losses = []
        bar = progress_bar(loader, total=steps_per_epoch, desc=f"{task.name} epoch {epoch + 1}/{config.epochs}",
                           unit="batch", disable=not (config.progress and info.is_main), leave=False)
        for batch in bar:
            batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            with autocast_for(device):
                out = task.step(module, batch)
            loss = out["loss"].float()
            if not torch.isfinite(loss):
                raise _diverged(config, state, epoch, f"loss is {float(loss.detach())}")
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
                            items_s=f"{len(losses) * global_batch / max(elapsed, 1e-9):.1f}")
        bar.close()
        train_time = time.perf_counter() - t0
        run_items += steps_per_epoch * global_batch
        run_time += train_time

        record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                                  "lr": optimizer.param_groups[0]["lr"] / optimizer.param_groups[0].get("lr_scale", 1.0),
                                  "items_per_s": steps_per_epoch * global_batch / max(train_time, 1e-9),
                                  "train_time_s": train_time}
        if info.is_main:
            tv = time.perf_counter()
            record.update(task.validate())
            record["val_time_s"] = time.perf_counter() - tv
            record["epoch_time_s"] = time.perf_counter() - t0
            if not math.isfinite(record["val_loss"]):
                raise _diverged(config, state, epoch, f"validation loss is {record['val_loss']}")
            if select not in record:
                raise ConfigError(f"selection metric {select!r} is not among the validation figures "
                                  f"({', '.join(sorted(k for k in record if k.startswith('val_')))})")
        state["epoch"] = epoch + 1
        state["history"].append(record)
        if info.is_main:
            # The first epoch is always kept, so a metric that is NaN throughout still leaves a model.
            if state["best_epoch"] == 0 or better(record[select], state["best_score"], minimise):
                state["best_score"], state["best_epoch"] = record[select], epoch + 1
                save_checkpoint(ckpt_dir / BEST, {"model": model.state_dict(), "epoch": epoch + 1,
                                                  "metrics": record})
            save_checkpoint(ckpt_dir / LAST, {
                **state, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": rng_state(), "config": config.to_dict(),
                "task": task.name})
            with open(jsonl, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            log.info("%s epoch %d: %s", task.name, epoch + 1, task.describe(record))
        D.barrier()

    artefact_hash = None
    best_metrics: dict[str, Any] = {}
    if info.is_main:
        best = load_checkpoint(ckpt_dir / BEST)
        model.load_state_dict(best["model"])
        best_metrics = best["metrics"]
        run_info = {**config.to_dict(), "world_size": info.world_size, "device": str(device),
                    "best_epoch": state["best_epoch"], "epochs_completed": state["epoch"],
                    "select_metric": select}
        artefact_hash = task.save(out_dir, run_info, best_metrics)
    D.barrier()
    return TrainResult(
        out_dir=str(out_dir), bundle_hash=artefact_hash, epochs=state["epoch"], start_epoch=start_epoch,
        best_epoch=state["best_epoch"], select_metric=select, best_score=float(state["best_score"]),
        best_metrics=best_metrics, history=tuple(state["history"]), data_summary=task.data_summary,
        device=str(device), world_size=info.world_size,
        items_per_s=run_items / run_time if run_time else 0.0, train_time_s=run_time,
        params={"total": sum(p.numel() for p in model.parameters()),
                "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)})


def autocast_for(device: torch.device):
    """bf16 autocast on CUDA, nothing on CPU."""
    import contextlib

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def start(config: TrainConfig) -> tuple[torch.device, D.DistInfo, bool]:
    """Validate the config, pick the device, join torchrun's process group when launched by it,
    seed, and set CPU threads. Returns (device, dist info, whether this call created the group)."""
    config.validate()
    existed = torch.distributed.is_available() and torch.distributed.is_initialized()
    device = select_device(config.device, int(os.environ.get("LOCAL_RANK", "0")))
    info = D.init_distributed(device.type)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(info.world_size))
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    return device, info, info.distributed and not existed


def _check_resumable(ckpt: dict[str, Any], config: TrainConfig, task: Task) -> None:
    old = ckpt.get("config", {})
    if ckpt.get("task", task.name) != task.name:
        raise ConfigError(f"--resume: the checkpoint in {config.checkpoint_dir} is from {ckpt.get('task')}, "
                          f"not {task.name}; use a new --out")
    for name, flag in (("preset", "--preset"), ("aggregation", "--aggregation"),
                       ("batch_size", "--batch-size"), ("echo_encoder", "--echo-encoder"),
                       ("temperature", "--temperature"), ("ecg_normalise", "--ecg-normalise")):
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
