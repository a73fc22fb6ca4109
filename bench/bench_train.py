"""Benchmark: the two-stage recipe on CPU — echo-tower pretraining, the tower-embedding cache, and
alignment against the frozen tower (pairs/s, epoch time, validation figures) per aggregation.

    python bench/bench_train.py [--cohort DIR] [--patients 1000] [--epochs 30] [--threads 2]

The cohort is a phantom (synthetic) cohort from e2r.phantom, generated when --cohort does not
exist; its numbers describe synthetic data. Decoding is timed separately (the first pretraining
builds the decoded-video cache that alignment reuses). Per-epoch lines are printed as they finish
so an interrupted run still reports what it did; --json-out writes the full results.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import torch

from e2r.models import Echo2ECG
from trainer.align import model_preset, train
from trainer.config import make_train_config
from trainer.paired_data import load_paired_data
from trainer.echo_pretrain import ECHO_DEFAULTS, load_echo_data, train_echo_tower

VAL_KEYS = ("val_pheno_map", "val_pheno_relevant_fraction", "val_knn_le45_auroc", "val_knn_lvh_auroc",
            "val_recall@10", "val_chance_recall@10", "val_loss")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohort", type=Path, default=None,
                    help="phantom cohort folder (default ~/.e2r/bench/phantom-<patients>-s<seed>)")
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=30, help="alignment epochs")
    ap.add_argument("--tower-epochs", type=int, default=ECHO_DEFAULTS.epochs)
    ap.add_argument("--aggregations", default="attention,single-view")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("bench_out/train"))
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("trainer").setLevel(logging.INFO)  # one line per epoch while it runs
    torch.set_num_threads(args.threads)

    cohort = args.cohort or Path.home() / ".e2r" / "bench" / f"phantom-{args.patients}-s{args.seed}"
    report: dict = {"machine": f"{platform.processor() or platform.machine()}, {args.threads} threads, "
                               f"torch {torch.__version__}", "cohort": str(cohort), "arms": {}}
    if not (cohort / "pairs.csv").exists():
        from e2r.phantom import write_cohort

        t0 = time.perf_counter()
        summary = write_cohort(cohort, args.patients, args.seed, progress=True)
        report["cohort_write_s"] = time.perf_counter() - t0
        print(f"phantom cohort: {summary.patients} patients, {summary.studies} studies, "
              f"{summary.videos} videos in {report['cohort_write_s']:.0f} s", flush=True)
    cache = str(args.out / "cache")

    # 1. echo tower: decode once (timed alone), then pretrain on the cached frames
    tower_dir = args.out / "echo-tower"
    tcfg = make_train_config(cohort, tower_dir, defaults=ECHO_DEFAULTS, epochs=args.tower_epochs, seed=args.seed,
                             cache_dir=cache, workers=args.threads, progress=False)
    from e2r.presets import get_preset

    echo_cfg = get_preset("tiny").echo
    t0 = time.perf_counter()
    echo_data = load_echo_data(tcfg, echo_cfg, ("lvef", "lvedv", "lvesv", "ivsd", "lvpwd", "la_volume", "rv_diameter"))
    report["decode_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tower = train_echo_tower(tcfg, echo_cfg, data=echo_data)
    report["tower"] = {"wall_s": time.perf_counter() - t0, "train_s": tower.train_time_s,
                       "videos_per_s": tower.items_per_s, "best_epoch": tower.best_epoch,
                       "val_r": {k[6:]: round(v, 3) for k, v in tower.best_metrics.items() if k.startswith("val_r_")},
                       "train_videos": len(echo_data.train_rows)}
    print(f"echo tower: decode/cache {report['decode_s']:.0f} s; {len(echo_data.train_rows)} train videos, "
          f"{tower.epochs} epochs in {tower.train_time_s:.0f} s ({tower.items_per_s:.0f} videos/s); "
          f"best epoch {tower.best_epoch}, val r {report['tower']['val_r']}", flush=True)

    # 2. the frozen tower's per-video embeddings, computed once
    base = make_train_config(cohort, args.out / "data", epochs=args.epochs, cache_dir=cache, seed=args.seed,
                             echo_encoder=str(tower_dir), progress=False)
    preset, source = model_preset(base)
    embedder = Echo2ECG(preset)
    embedder.video_encoder.load_state_dict(source.encoder_state)
    t0 = time.perf_counter()
    data = load_paired_data(base, preset, embedder=embedder, encoder_id=source.hash)
    report["embed_cache_s"] = time.perf_counter() - t0
    report["data"] = data.summary.to_dict()
    print(f"tower embedding cache: {data.summary.videos} videos in {report['embed_cache_s']:.1f} s; "
          f"{data.summary.train_pairs} train / {data.summary.val_pairs} val pairs", flush=True)

    # 3. alignment per aggregation against the frozen tower
    for agg in args.aggregations.split(","):
        cfg = make_train_config(cohort, args.out / agg, epochs=args.epochs, cache_dir=cache, seed=args.seed,
                                aggregation=agg, echo_encoder=str(tower_dir), progress=False)
        t0 = time.perf_counter()
        result = train(cfg, data=data)
        hist = list(result.history)
        arm = {"wall_s": time.perf_counter() - t0, "pairs_per_s": result.pairs_per_s,
               "train_epoch_s": sum(h["train_time_s"] for h in hist) / len(hist),
               "val_s": sum(h["val_time_s"] for h in hist) / len(hist),
               "best_epoch": result.best_epoch, "select_metric": result.select_metric,
               "best": {k: result.best_metrics.get(k) for k in VAL_KEYS}}
        report["arms"][agg] = arm
        b = arm["best"]
        print(f"{agg}: {arm['pairs_per_s']:.0f} pairs/s, {arm['train_epoch_s']:.1f} s/epoch + {arm['val_s']:.1f} s "
              f"validation; best epoch {arm['best_epoch']} by {arm['select_metric']}: pheno mAP "
              f"{b['val_pheno_map']:.3f} (relevant fraction {b['val_pheno_relevant_fraction']:.3f}), kNN AUROC "
              f"LVEF<=45 {b['val_knn_le45_auroc']:.3f} LVH {b['val_knn_lvh_auroc']:.3f}, R@10 "
              f"{b['val_recall@10']:.3f} (chance {b['val_chance_recall@10']:.3f}), val loss {b['val_loss']:.3f}",
              flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
