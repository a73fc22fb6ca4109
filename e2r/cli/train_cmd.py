"""`e2r train`: align the ECG and echo encoders on a paired cohort and write a model bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from e2r.cli.common import (
    ArchiveOpt,
    CacheDirOpt,
    DataDirOpt,
    DataOpt,
    DeviceOpt,
    EcgNormaliseOpt,
    GroupByOpt,
    JsonOpt,
    QuietOpt,
    ResumeOpt,
    SeedOpt,
    handle_errors,
    print_json,
    print_table,
)
from e2r.cli.store_opts import home_dir


def register(app: typer.Typer) -> None:
    """Add the `train` command to the app."""
    app.command("train")(handle_errors(train))


def train(
    data: Path = DataOpt,
    out: Path = typer.Option(..., "--out", help="Model folder: bundle, checkpoints/ and train_log.jsonl go here."),
    archive: Optional[Path] = ArchiveOpt,
    preset: str = typer.Option("tiny", "--preset", help="Model preset: tiny (CPU, minutes), base, base-echoprime."),
    aggregation: Optional[str] = typer.Option(None, "--aggregation", help="Study aggregation: attention, "
                                              "mean or single-view (default: the preset's)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs (default: the preset's)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Global batch size (default: the preset's)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default: the preset's)."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="AdamW weight decay."),
    warmup_epochs: Optional[float] = typer.Option(None, "--warmup-epochs", help="Linear warm-up epochs before the cosine decay."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    workers: int = typer.Option(0, "--workers", help="Data loader / decode worker processes."),
    cache_dir: Optional[Path] = CacheDirOpt,
    data_dir: Optional[Path] = DataDirOpt,
    min_pairs: int = typer.Option(8, "--min-pairs", help="Refuse to train with fewer usable training pairs."),
    max_videos: int = typer.Option(8, "--max-videos", help="Videos per study in a batch (random subset when more)."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="ECG augmentations of the paper."),
    resume: bool = ResumeOpt,
    quiet: bool = QuietOpt,
    temperature: Optional[float] = typer.Option(None, "--temperature", help="InfoNCE temperature (default: the preset's)."),
    ecg_normalise: Optional[str] = EcgNormaliseOpt,
    echo_encoder: Optional[Path] = typer.Option(None, "--echo-encoder", help="Frozen echo tower to align to: the --out folder of `e2r train-echo`, or an EchoPrime encoder weight file (.pt). Recommended: without it the video encoder starts random."),
    freeze_echo: bool = typer.Option(False, "--freeze-echo", help="Without --echo-encoder: freeze e2r's own (random-init) video encoder and cache its embeddings (an ablation)."),
    ecg_weights: Optional[Path] = typer.Option(None, "--ecg-weights", help="OTiS ECG encoder weights to start from."),
    phenotypes: Optional[Path] = typer.Option(None, "--phenotypes", help="Phenotype CSV for validation (default: phenotypes.csv beside the pairs CSV)."),
    group_by: str = GroupByOpt,
    select_metric: Optional[str] = typer.Option(None, "--select-metric", help="Validation figure that picks the best epoch (default val_pheno_map; e.g. val_knn_le45_auroc, val_exact_map, val_loss)."),
    as_json: bool = JsonOpt,
) -> None:
    """Align the ECG encoder to a multi-view echo study encoder (CLIP loss) on paired data.

    The recipe: pretrain the echo tower on the archive's measurements (`e2r train-echo`), then
    align to it frozen with --echo-encoder; its per-video embeddings are computed once and
    cached. Every epoch logs validation retrieval (exact and phenotype-aware mAP), the kNN
    LVEF<=45 / LVH AUROC and the loss to `OUT/train_log.jsonl`; the best epoch by --select-metric
    is saved as a model bundle in --out. Runs on CUDA with bf16 when present, else CPU. For
    several GPUs or machines launch it with torchrun (DDP).
    """
    import dataclasses
    import logging

    from e2r.errors import ConfigError
    from trainer.align import train as run_training
    from trainer.augment import AugmentConfig
    from trainer.config import make_train_config

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for flag, path in (("--echo-encoder", echo_encoder), ("--ecg-weights", ecg_weights)):
        if path is not None and not path.exists():
            raise ConfigError(f"{flag} {path}: no such file or folder")
    if echo_encoder is not None and freeze_echo:
        raise ConfigError("--freeze-echo is for e2r's own random-init encoder; --echo-encoder is frozen already")
    config = make_train_config(
        data, out, preset=preset, archive=str(archive) if archive else None, group_by=group_by,
        cache_dir=str(cache_dir or home_dir(data_dir) / "cache"), aggregation=aggregation,
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
        warmup_epochs=warmup_epochs, seed=seed, device=device, workers=workers,
        min_pairs=min_pairs, max_videos_per_study=max_videos, resume=resume,
        augment=dataclasses.replace(AugmentConfig(), enabled=augment), progress=not quiet,
        echo_encoder=str(echo_encoder) if echo_encoder else None, freeze_echo=freeze_echo,
        temperature=temperature, ecg_normalise=ecg_normalise, ecg_weights=str(ecg_weights) if ecg_weights else None,
        phenotypes=str(phenotypes) if phenotypes else None, select_metric=select_metric)
    result = run_training(config)
    if result.bundle_hash is None:  # a non-zero torchrun rank: rank 0 reports
        return
    summary = _summary(result)
    if as_json:
        print_json(summary)
    else:
        print_table(_rows(summary), ["item", "value"])


def _summary(result: Any) -> dict[str, Any]:
    m, d = result.best_metrics, result.data_summary
    return {
        "bundle": result.out_dir, "hash": result.bundle_hash,
        "pairs": {"train": d["train_pairs"], "val": d["val_pairs"], "skipped": d["skipped"],
                  "missing_ecg": d["missing_ecg"], "unreadable_ecg": d["unreadable_ecg"],
                  "missing_study": d["missing_study"], "no_video": d["no_video"],
                  "val_source": d["val_source"]},
        "epochs": result.epochs, "resumed_from_epoch": result.start_epoch,
        "best_epoch": result.best_epoch, "select_metric": result.select_metric,
        "val": {k[4:]: m.get(k) for k in VAL_KEYS if k in m},
        "pairs_per_s": result.pairs_per_s, "train_time_s": result.train_time_s,
        "device": result.device, "world_size": result.world_size, "params": result.params,
    }


VAL_KEYS = ("val_loss", "val_pheno_map", "val_pheno_relevant_fraction", "val_knn_le45_auroc",
            "val_knn_lvh_auroc", "val_knn_lvef_mae", "val_exact_map", "val_recall@1", "val_chance_recall@1",
            "val_recall@10", "val_chance_recall@10", "val_mean_rank", "val_median_rank",
            "val_chance_mean_rank", "val_n_queries", "val_n_gallery")


def _rows(s: dict[str, Any]) -> list[dict[str, Any]]:
    p, v = s["pairs"], s["val"]
    pheno = ([{"item": "val phenotype-aware mAP (relevant fraction)",
               "value": f"{v['pheno_map']:.3f} ({v['pheno_relevant_fraction']:.3f})"}] if "pheno_map" in v else [])
    knn = ([{"item": "val kNN AUROC LVEF<=45 / LVH",
             "value": f"{v['knn_le45_auroc']:.3f} / {v['knn_lvh_auroc']:.3f}"}] if "knn_le45_auroc" in v else [])
    return [
        {"item": "pairs used (train / val)", "value": f"{p['train']} / {p['val']} (val: {p['val_source']})"},
        {"item": "pairs skipped", "value": f"{p['skipped']} (ECG missing {p['missing_ecg']}, ECG unreadable "
                                           f"{p['unreadable_ecg']}, study missing {p['missing_study']}, "
                                           f"no video {p['no_video']})"},
        {"item": "epochs (resumed after)", "value": f"{s['epochs']} ({s['resumed_from_epoch']})"},
        {"item": "best epoch (by)", "value": f"{s['best_epoch']} ({s['select_metric']})"},
        *pheno, *knn,
        {"item": "val loss", "value": v["loss"]},
        {"item": "val Recall@1 (chance)", "value": f"{v['recall@1']:.3f} ({v['chance_recall@1']:.3f})"},
        {"item": "val Recall@10 (chance)", "value": f"{v['recall@10']:.3f} ({v['chance_recall@10']:.3f})"},
        {"item": "val mean / median rank (chance)",
         "value": f"{v['mean_rank']:.1f} / {v['median_rank']:.0f} ({v['chance_mean_rank']:.1f} of {v['n_gallery']})"},
        {"item": "throughput (pairs/s)", "value": f"{s['pairs_per_s']:.1f} on {s['device']} x{s['world_size']}"},
        {"item": "bundle", "value": s["bundle"]},
        {"item": "bundle hash", "value": s["hash"]},
    ]
