"""Echo-tower pretraining (`e2r train-echo`): e2r's video encoder learns the archive's measurements.

Every video of a training study is one example; its target is the study's measured phenotypes
(e2r.echo_tower.TOWER_FIELDS by default), z-scored with the training studies' mean and SD; a
missing value masks its term of the loss (trainer.task.masked_mse). Only patients of the pairs
CSV's train split train; the val split selects the epoch (mean per-video Pearson r over the
fields, the loss logged beside it); test studies are never read. Studies without any label take
no part (they are still indexed later). The result is an echo tower (e2r.echo_tower) that
`e2r train --echo-encoder` freezes and aligns the ECG to. An EchoNet-Dynamic folder as --data
(FileList.csv + Videos/*.avi) is read by trainer.echonet_data instead of a pairs CSV + archive.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from e2r.errors import DataError
from e2r.presets import TrainDefaults
from trainer import distributed as D
from trainer.config import TrainConfig
from trainer.echo_data import EchoData, build_echo_data
from trainer.loop import TrainResult, run, start
from trainer.task import Task, masked_mse

log = logging.getLogger(__name__)

# Chosen on the 1,000-patient phantom's validation split (docs/benchmarks.md): the per-video
# regression has converged by epoch 15 at batch 64; layer-wise decay is off for a network this small.
ECHO_DEFAULTS = TrainDefaults(epochs=15, batch_size=64, lr=2e-3, weight_decay=1e-4, layer_decay=1.0,
                              warmup_epochs=1, grad_clip=1.0)
MIN_STUDIES = 20  # labelled training studies below which pretraining refuses


def load_echo_data(config: TrainConfig, echo_cfg: Any, fields: Sequence[str], min_studies: int = MIN_STUDIES) -> EchoData:
    """Scan the archive, decode the videos of the train/val studies once (the cache alignment
    shares), and build the targets. DataError when too few labelled studies remain."""
    from e2r.echo import scan_archive
    from e2r.pairs import read_pairs
    from trainer.echonet_data import echonet_filelist, load_echonet_data
    from trainer.paired_data import decoded_video_cache, load_phenotypes_for, resolve_inputs, training_videos

    if echonet_filelist(config.data) is not None:  # an EchoNet-Dynamic folder: FileList.csv + Videos/
        return load_echonet_data(config, echo_cfg, fields, min_studies)
    csv_path, root = resolve_inputs(config.data, config.archive)
    rows = read_pairs(csv_path)
    phenotypes = load_phenotypes_for(config, csv_path)
    if not phenotypes:
        raise DataError(f"{csv_path.parent / 'phenotypes.csv'}: no phenotype CSV; echo pretraining learns the "
                        "measured phenotypes, so pass --phenotypes with the CSV described in the README")
    scan = scan_archive(root, progress=config.progress, group_by=config.group_by)
    studies = {s.study_uid: s for s in scan.studies}
    paths = training_videos(rows, studies)
    decoded = decoded_video_cache(config, echo_cfg, paths)
    row_of = {p: i for i, p in enumerate(paths)}

    split, patient = _study_splits(rows, config)
    counts = {"unlabelled": 0, "no_video": 0, "not_in_archive": 0}
    labelled: dict[str, list[tuple[str, list[int]]]] = {"train": [], "val": []}
    view_of = {row_of[str(v.path)]: v.view or "unknown" for s in studies.values() for v in s.videos
               if str(v.path) in row_of}
    for uid in sorted(split):
        s = split[uid]
        values = phenotypes.get(uid) or {}
        if not any(values.get(f) is not None for f in fields):
            counts["unlabelled"] += 1
            continue
        if uid not in studies:
            counts["not_in_archive"] += 1
            continue
        vrows = [row_of[str(v.path)] for v in studies[uid].videos if row_of[str(v.path)] not in decoded.failed]
        if not vrows:
            counts["no_video"] += 1
            continue
        labelled[s].append((uid, vrows))
    n_train, n_val = len(labelled["train"]), len(labelled["val"])
    if n_train < min_studies:
        raise DataError(
            f"{csv_path}: {n_train} labelled training studies with a decodable video ({counts['unlabelled']} "
            f"studies carry none of {', '.join(fields)}); echo pretraining needs at least {min_studies} "
            "(--min-studies); add phenotypes to the CSV or more studies to the archive")
    if n_val < 2:
        raise DataError(f"{csv_path}: {n_val} labelled validation studies; need at least 2 (add split=val rows)")

    summary = {"pairs_csv": str(csv_path), "archive": str(root), "phenotypes": len(phenotypes),
               "train_patients": len({patient[u] for u, _ in labelled["train"]}),
               "failed_videos": len(decoded.failed), **counts}
    log.info("echo pretraining data: %d unlabelled studies left out", counts["unlabelled"])
    return build_echo_data(decoded.array, labelled, phenotypes, fields, view_of, summary)


def _study_splits(rows, config: TrainConfig) -> tuple[dict[str, str], dict[str, str]]:
    """study_uid -> "train" / "val" (test studies left out), and study_uid -> patient id. Without
    val rows, config.val_fraction of the patients are held out (as alignment does)."""
    test = {r.study_uid for r in rows if r.split == "test"}
    split, patient = {}, {}
    for r in rows:
        if r.study_uid in test or not r.study_uid:
            continue
        split[r.study_uid] = "val" if r.split == "val" else "train"
        patient[r.study_uid] = r.patient_id or r.study_uid
    if "val" not in split.values():
        patients = sorted(set(patient.values()))
        n_val = max(1, int(round(config.val_fraction * len(patients)))) if len(patients) > 1 else 0
        held = set(np.random.default_rng(config.seed).permutation(patients)[:n_val].tolist())
        split = {u: "val" if patient[u] in held else "train" for u in split}
    return split, patient


class VideoTargets(Dataset):
    """Items {"video": uint8 (F, H, W[, 3]), "target": float32 (K,)}."""

    def __init__(self, videos: np.ndarray, rows: np.ndarray, targets: np.ndarray):
        self.videos, self.rows, self.targets = videos, rows, targets

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"video": torch.from_numpy(np.array(self.videos[self.rows[i]])),  # a copy: the cache is read-only
                "target": torch.from_numpy(self.targets[i])}


class EchoTowerTask(Task):
    """Per-video multi-task regression of the study's phenotypes; selected by val mean r."""

    name = "echo-tower"
    select_metric = "val_mean_r"
    loader_workers = 0  # an item is a slice of the memory-mapped cache; workers would copy it

    def __init__(self, config: TrainConfig, data: EchoData, echo_cfg: Any):
        from e2r.echo_tower import EchoTower

        self.config, self.data, self.cfg = config, data, echo_cfg
        self.model = EchoTower(echo_cfg, len(data.fields))
        self.train_set = VideoTargets(data.videos, data.train_rows, data.train_targets)
        self.data_summary = data.summary
        if config.select_metric:
            self.select_metric = config.select_metric

    def step(self, module, batch):
        from e2r.encode import normalize_videos

        pred = module(normalize_videos(batch["video"], self.cfg))  # (B, K)
        return {"loss": masked_mse(pred, batch["target"])}

    def predict(self, rows: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(n, K) z-scored predictions for rows of the video cache (eval mode, no grad)."""
        from e2r.encode import normalize_videos

        model = self.model
        device = next(model.parameters()).device
        was = model.training
        model.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(rows), batch_size):
                x = torch.from_numpy(np.asarray(self.data.videos[np.sort(rows[i:i + batch_size])]))
                order = np.argsort(np.argsort(rows[i:i + batch_size]))  # back to the given order
                out.append(model(normalize_videos(x.to(device), self.cfg)).float().cpu().numpy()[order])
        model.train(was)
        return np.concatenate(out) if out else np.zeros((0, len(self.data.fields)), np.float32)

    def validate(self) -> dict[str, float]:
        d = self.data
        pred = self.predict(d.val_rows)
        out: dict[str, float] = {"val_loss": float(masked_mse(torch.from_numpy(pred), torch.from_numpy(d.val_targets)))}
        out.update(field_figures(pred, d.val_targets, d.fields, d.norm, "val"))
        n_study = int(d.val_study.max()) + 1 if len(d.val_study) else 0
        per_study = np.stack([pred[d.val_study == k].mean(axis=0) for k in range(n_study)])
        truth = np.stack([d.val_targets[d.val_study == k][0] for k in range(n_study)])
        out.update({f"val_study_r_{f}": v for f, v in _pearson(per_study, truth, d.fields).items()})
        rs = [out[f"val_r_{f}"] for f in d.fields if np.isfinite(out[f"val_r_{f}"])]
        out["val_mean_r"] = float(np.mean(rs)) if rs else float("nan")
        return out

    def save(self, out_dir, run_info, best_metrics) -> str:
        from e2r.echo_tower import save_echo_tower

        val = {f: {"r": best_metrics.get(f"val_r_{f}"), "mae": best_metrics.get(f"val_mae_{f}"),
                   "study_r": best_metrics.get(f"val_study_r_{f}")} for f in self.data.fields}
        info = {"trained_on": self.data_summary, "val": val, "val_mean_r": best_metrics.get("val_mean_r"),
                "val_r_by_view": self.view_figures(), "train_config": run_info}
        return save_echo_tower(self.model.cpu(), out_dir, self.data.fields, self.data.norm, info)

    def view_figures(self) -> dict[str, dict[str, Any]]:
        """Per view: validation videos and the per-video r of each field (which views carry what)."""
        d = self.data
        if not d.val_views:
            return {}
        pred = self.predict(d.val_rows)
        views = np.asarray(d.val_views)
        out = {}
        for view in sorted(set(d.val_views)):
            sel = views == view
            out[view] = {"videos": int(sel.sum()), **_pearson(pred[sel], d.val_targets[sel], d.fields)}
        return out

    def describe(self, r: dict[str, Any]) -> str:
        per = " ".join(f"{f} {r[f'val_r_{f}']:.2f}" for f in self.data.fields)
        return (f"train {r['train_loss']:.4f} val {r['val_loss']:.4f} mean r {r['val_mean_r']:.3f} ({per}), "
                f"{r['items_per_s']:.0f} videos/s")


def _pearson(pred: np.ndarray, truth: np.ndarray, fields: Sequence[str]) -> dict[str, float]:
    out = {}
    for j, f in enumerate(fields):
        ok = np.isfinite(truth[:, j])
        a, b = pred[ok, j], truth[ok, j]
        out[f] = float(np.corrcoef(a, b)[0, 1]) if ok.sum() > 2 and a.std() > 0 and b.std() > 0 else float("nan")
    return out


def field_figures(pred: np.ndarray, truth: np.ndarray, fields: Sequence[str],
                  norm: dict[str, tuple[float, float]], prefix: str) -> dict[str, float]:
    """Per-field Pearson r and MAE in the field's units (pred and truth z-scored, NaN = missing)."""
    out = {f"{prefix}_r_{f}": v for f, v in _pearson(pred, truth, fields).items()}
    for j, f in enumerate(fields):
        ok = np.isfinite(truth[:, j])
        out[f"{prefix}_mae_{f}"] = (float(np.mean(np.abs(pred[ok, j] - truth[ok, j])) * norm[f][1])
                                    if ok.any() else float("nan"))
    return out


def train_echo_tower(config: TrainConfig, echo_cfg: Any = None, fields: Optional[Sequence[str]] = None,
                     min_studies: int = MIN_STUDIES, data: Optional[EchoData] = None) -> TrainResult:
    """Pretrain an echo tower as configured and save it in config.out_dir (see module doc).

    `echo_cfg`: the EchoEncoderConfig (default: config.preset's echo encoder, unfrozen).
    """
    from e2r.echo_tower import TOWER_FIELDS
    from e2r.errors import ConfigError
    from e2r.presets import get_preset

    echo_cfg = replace(echo_cfg or get_preset(config.preset).echo, frozen=False)
    if echo_cfg.kind != "video":
        raise ConfigError(f"--preset {config.preset}: its echo encoder is {echo_cfg.kind!r}; echo pretraining "
                          "trains e2r's own video encoder (use tiny or base)")
    device, info, created = start(config)
    try:
        if info.distributed:
            raise ConfigError("e2r train-echo runs in one process (it trains in minutes); start it without torchrun")
        data = data or load_echo_data(config, echo_cfg, tuple(fields or TOWER_FIELDS), min_studies)
        task = EchoTowerTask(config, data, echo_cfg)
        task.model.to(device)
        return run(task, config, device, info)
    finally:
        if created:
            D.cleanup()


def embed_studies(tower_dir: str | Path, archive: str | Path, cache_dir: str | Path, workers: int = 0,
                  progress: bool = True, group_by: str = "uid") -> dict[str, np.ndarray]:
    """{study_uid: (V, E) per-video embeddings} of every study of an archive under a frozen tower
    (the benchmark's echo-tower arm: echo-to-echo retrieval with the tower alone)."""
    from e2r.echo import scan_archive
    from e2r.echo_tower import load_echo_tower
    from trainer.paired_data import decoded_video_cache
    from trainer.cache import embed_cached_videos

    tower, meta = load_echo_tower(tower_dir)
    scan = scan_archive(archive, progress=progress, group_by=group_by)
    paths = sorted(str(v.path) for s in scan.studies for v in s.videos)
    cfg = TrainConfig(data=str(archive), out_dir=str(cache_dir), cache_dir=str(cache_dir), workers=workers,
                      progress=progress)
    decoded = decoded_video_cache(cfg, tower.cfg, paths)
    emb = embed_cached_videos(cache_dir, decoded, tower.encoder, tower.cfg, meta["hash"], progress=progress)
    row = {p: i for i, p in enumerate(paths)}
    out = {}
    for s in scan.studies:
        rows = [row[str(v.path)] for v in s.videos if row[str(v.path)] not in emb.failed]
        if rows:
            out[s.study_uid] = np.asarray(emb.array[rows], dtype=np.float32)
    return out
