"""Benchmark: tiny-preset training on CPU — throughput, epoch time, time to a validation-loss
plateau, and validation retrieval (Recall@1/5 vs chance) for attention and single-view pooling.

    python bench/bench_train.py [--cohort DIR] [--patients 1000] [--epochs 20] [--threads 2]

The cohort is a phantom (synthetic) cohort from e2r.phantom, generated when --cohort does not
exist; its numbers describe synthetic data. The decoded-video cache is shared by the arms, so the
decode cost is paid (and reported) once. Per-epoch lines are printed as they finish so an
interrupted run still reports what it did; --json-out writes the full results.
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

from e2r.presets import get_preset, with_overrides
from trainer.config import make_train_config
from trainer.data import load_paired_data
from trainer.loop import train


def plateau_epoch(val_losses: list[float], fraction: float = 0.95) -> int:
    """1-based first epoch that reached `fraction` of the run's total validation-loss drop."""
    first, best = val_losses[0], min(val_losses)
    target = first - fraction * (first - best)
    return next(i + 1 for i, v in enumerate(val_losses) if v <= target + 1e-12)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohort", type=Path, default=None,
                    help="phantom cohort folder (default ~/.e2r/bench/phantom-<patients>-s<seed>)")
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="default: the tiny preset's")
    ap.add_argument("--batch-size", type=int, default=None)
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

    preset = get_preset("tiny")
    base = make_train_config(cohort, args.out / "data", epochs=args.epochs, batch_size=args.batch_size,
                             cache_dir=str(args.out / "cache"), seed=args.seed, progress=True)
    t0 = time.perf_counter()
    data = load_paired_data(base, preset)
    report["data_load_s"] = time.perf_counter() - t0
    report["data"] = data.summary.to_dict()
    print(f"data: {data.summary.train_pairs} train / {data.summary.val_pairs} val pairs, "
          f"{data.summary.videos} videos decoded+cached in {report['data_load_s']:.0f} s", flush=True)

    for agg in args.aggregations.split(","):
        out = args.out / agg
        cfg = make_train_config(cohort, out, epochs=args.epochs, batch_size=args.batch_size,
                                cache_dir=str(args.out / "cache"), seed=args.seed, aggregation=agg,
                                progress=False, resume=(out / "checkpoints" / "last.pt").exists())
        t0 = time.perf_counter()
        result = train(cfg, data=data, preset=with_overrides(preset, aggregation__mode=agg))
        wall = time.perf_counter() - t0
        hist = list(result.history)
        losses = [h["val_loss"] for h in hist]
        pe = plateau_epoch(losses)
        best = result.best_metrics
        arm = {
            "epochs": result.epochs, "pairs_per_s": result.pairs_per_s,
            "epoch_time_s": sum(h["epoch_time_s"] for h in hist) / len(hist),
            "wall_s": wall, "best_epoch": result.best_epoch, "plateau_epoch": pe,
            "time_to_plateau_s": sum(h["epoch_time_s"] for h in hist[:pe]),
            "best": {k: best[k] for k in ("val_loss", "recall@1", "chance_recall@1", "recall@5",
                                          "chance_recall@5", "mean_rank", "median_rank",
                                          "chance_mean_rank", "n_gallery")},
            "history": [{k: h[k] for k in ("epoch", "train_loss", "val_loss", "recall@1", "recall@5",
                                           "pairs_per_s", "epoch_time_s")} for h in hist],
        }
        report["arms"][agg] = arm
        for h in arm["history"]:
            print(f"  {agg:12s} epoch {h['epoch']:2d}: train {h['train_loss']:.4f} val {h['val_loss']:.4f} "
                  f"R@1 {h['recall@1']:.3f} R@5 {h['recall@5']:.3f} {h['pairs_per_s']:.1f} pairs/s "
                  f"{h['epoch_time_s']:.0f} s", flush=True)
        b = arm["best"]
        print(f"{agg}: {arm['pairs_per_s']:.1f} pairs/s, {arm['epoch_time_s']:.0f} s/epoch, best epoch "
              f"{arm['best_epoch']}, plateau (95% of val-loss drop) at epoch {pe} after "
              f"{arm['time_to_plateau_s']:.0f} s; val R@1 {b['recall@1']:.3f} (chance "
              f"{b['chance_recall@1']:.3f}), R@5 {b['recall@5']:.3f} (chance {b['chance_recall@5']:.3f}), "
              f"mean rank {b['mean_rank']:.1f} (chance {b['chance_mean_rank']:.1f} of {b['n_gallery']})",
              flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
