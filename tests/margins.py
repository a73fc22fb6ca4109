"""Sweep the tests that train a model over seeds and print each quality figure's margin.

    python tests/margins.py [--seeds 10] [--only tower,echonet,ceiling]

A test that asserts a trained model's quality must pass at every seed with a margin that float
differences between machines cannot eat (the developers' guide); this script is how the margins
in the tests' comments were measured. It trains exactly what the tests train, seed by seed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def tower_runs(seeds, root, cohort_seeds=(7,)):
    from test_echo_tower import train_learning_tower

    for c in cohort_seeds:
        for s in seeds:
            t = time.time()
            res = train_learning_tower(root / f"cohort{c}", seed=s, cohort_seed=c)
            yield {"test": "tower", "cohort_seed": c, "seed": s, "s": round(time.time() - t, 1),
                   "best": {k: res.best_metrics[k] for k in ("val_r_lvef", "val_mean_r", "val_loss")},
                   "train_loss": [round(r["train_loss"], 4) for r in res.history]}


def echonet_runs(seeds, root):
    from test_echonet import N_TRAIN, N_VAL, train_echonet_tower, write_echonet

    write_echonet(root / "EchoNet", n_train=N_TRAIN, n_val=N_VAL)
    for s in seeds:
        t = time.time()
        res = train_echonet_tower(root / "EchoNet", root / f"tower-seed{s}" / "tower", seed=s)
        yield {"test": "echonet", "seed": s, "s": round(time.time() - t, 1),
               "best": {k: res.best_metrics.get(k) for k in ("val_r_lvedv", "val_r_lvef", "val_loss")},
               "train_loss": [round(r["train_loss"], 4) for r in res.history]}


def ceiling_runs(seeds, root):
    import numpy as np
    from test_benchmark import train_ceiling_on_written_labels

    for s in seeds:
        t = time.time()
        model, pred, lvef, _ = train_ceiling_on_written_labels(seed=s)
        r = float(np.corrcoef(pred["lvef"], lvef[-len(pred["lvef"]):])[0, 1])
        yield {"test": "ceiling", "seed": s, "s": round(time.time() - t, 1), "best": {"test_r_lvef": r},
               "train_loss": [round(h["train_loss"], 4) for h in model.history]}


RUNS = {"tower": tower_runs, "echonet": echonet_runs, "ceiling": ceiling_runs}


def asserted(name):
    """(figure, threshold) of what the test asserts: the figure must exceed the threshold."""
    if name == "tower":
        from test_echo_tower import LEARNING_MIN_R
        return "val_r_lvef", LEARNING_MIN_R
    return {"echonet": ("val_r_lvedv", 0.5), "ceiling": ("test_r_lvef", 0.5)}[name]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--only", default=",".join(RUNS))
    ap.add_argument("--cohort-seeds", default="7", help="tower: comma-separated seeds of the written cohort")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            kw = {"cohort_seeds": [int(c) for c in args.cohort_seeds.split(",")]} if name == "tower" else {}
            figure, threshold = asserted(name)
            values = []
            for row in RUNS[name](range(args.seeds), Path(tmp) / name, **kw):
                print(json.dumps(row), flush=True)
                values.append(row["best"][figure])
            worst = min(values)
            print(f"{name}: {figure} > {threshold} at {len(values)} runs; worst {worst:.3f}, best {max(values):.3f}, "
                  f"SD {statistics.stdev(values):.3f}; margin at the worst run {worst - threshold:.3f} "
                  f"({(worst - threshold) / statistics.stdev(values):.1f} SD)", flush=True)


if __name__ == "__main__":
    main()
