"""`e2r train-echo`: pretrain the echo tower on the archive's measured phenotypes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from e2r.cli.common import (
    ArchiveOpt,
    CacheDirOpt,
    DataDirOpt,
    DeviceOpt,
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
    """Add the `train-echo` command to the app."""
    app.command("train-echo")(handle_errors(train_echo))


def train_echo(
    data: Path = typer.Option(..., "--data", help="Cohort folder holding pairs.csv and phenotypes.csv, a pairs CSV, "
                              "or an EchoNet-Dynamic folder (FileList.csv + Videos/*.avi; needs PyAV, "
                              "pip install 'e2r[echonet]')."),
    out: Path = typer.Option(..., "--out", help="Tower folder: tower.json, weights.pt, checkpoints/, train_log.jsonl."),
    archive: Optional[Path] = ArchiveOpt,
    phenotypes: Optional[Path] = typer.Option(None, "--phenotypes", help="Phenotype CSV (default: phenotypes.csv beside the pairs CSV)."),
    group_by: str = GroupByOpt,
    preset: str = typer.Option("tiny", "--preset", help="Model preset whose video encoder is trained: tiny (CPU) or base."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs (default 15)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Videos per batch (default 64)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Peak learning rate (default 2e-3)."),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    workers: int = typer.Option(2, "--workers", help="Video decode worker processes."),
    cache_dir: Optional[Path] = CacheDirOpt,
    data_dir: Optional[Path] = DataDirOpt,
    min_studies: int = typer.Option(20, "--min-studies", help="Refuse to pretrain with fewer labelled training studies."),
    resume: bool = ResumeOpt,
    quiet: bool = QuietOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Pretrain e2r's video encoder to regress each video's study phenotypes (the echo tower).

    Trains on the patients of the pairs CSV's train split (val selects the epoch by the mean
    per-video Pearson r; test is never read) and writes a tower folder with its hash, the
    normalisation statistics and the per-field validation r and MAE. Studies without any
    measured phenotype take no part. Then align the ECG to it:
    `e2r train --data COHORT --echo-encoder OUT`.

    An EchoNet-Dynamic folder as --data (detected by its FileList.csv) trains on its AVI videos
    instead: EF, EDV, ESV -> lvef, lvedv, lvesv; FileList's TRAIN/VAL split; TEST never read;
    missing or corrupt videos skipped and counted.
    """
    import logging

    from trainer.config import make_train_config
    from trainer.echo_pretrain import ECHO_DEFAULTS, train_echo_tower

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = make_train_config(
        data, out, preset=preset, defaults=ECHO_DEFAULTS, archive=str(archive) if archive else None, group_by=group_by,
        cache_dir=str(cache_dir or home_dir(data_dir) / "cache"), epochs=epochs, batch_size=batch_size, lr=lr,
        seed=seed, device=device, workers=workers, resume=resume, progress=not quiet,
        phenotypes=str(phenotypes) if phenotypes else None)
    result = train_echo_tower(config, min_studies=min_studies)
    summary = _summary(result)
    if as_json:
        print_json(summary)
        return
    print_table(summary["fields"], ["field", "val_r", "val_study_r", "val_mae"])
    typer.echo("")
    print_table([{"item": k, "value": v} for k, v in summary.items() if k != "fields"], ["item", "value"])
    cohort = "COHORT" if _trained_on_echonet(result) else data
    typer.echo(f"\nnext: e2r train --data {cohort} --echo-encoder {out}")


def _trained_on_echonet(result: Any) -> bool:
    """Whether the tower was trained on an EchoNet-Dynamic folder (then align on another cohort)."""
    return "echonet" in result.data_summary


def _summary(result: Any) -> dict[str, Any]:
    m, d = result.best_metrics, result.data_summary
    return {
        "tower": result.out_dir, "hash": result.bundle_hash, "best_epoch": result.best_epoch,
        "epochs": result.epochs, "val_mean_r": m.get("val_mean_r"), "val_loss": m.get("val_loss"),
        "train_studies": d.get("train_studies"), "val_studies": d.get("val_studies"),
        "train_videos": d.get("train_videos"), "unlabelled_studies": d.get("unlabelled"),
        **{k: d[k] for k in ("echonet", "bad_rows", "failed_videos", "missing_videos") if k in d},
        "videos_per_s": result.items_per_s, "train_time_s": result.train_time_s, "device": result.device,
        "fields": [{"field": f, "val_r": m.get(f"val_r_{f}"), "val_study_r": m.get(f"val_study_r_{f}"),
                    "val_mae": m.get(f"val_mae_{f}")} for f in d.get("fields", [])],
    }
