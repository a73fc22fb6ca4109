"""Issue 22 item 2: the ECG-input ablation on the default benchmark, and the default chosen by rule.

    python bench/ablate_ecg_normalise.py --workdir work/ablate          # ~45 min on 2 CPU cores
    python bench/ablate_ecg_normalise.py --workdir work/ablate --tabulate-only

For each choice of `ecg_preprocess.normalise` it runs `e2r eval --benchmark --arms
criteria,attention,supervised --ecg-normalise CHOICE` (default sizes: 1,000 phantom patients, 3
seeds, 30 epochs, tiny preset) in one workdir, so that the cohort and the per-seed echo towers
are shared and only the ECG side differs. Every choice trains with the paper's ECG augmentations,
amplitude rescaling (log-normal, sigma 0.2) included: one variable at a time, although that
rescaling blurs the absolute voltage the amplitude-keeping choices feed the encoder. Then it prints one table per choice: the attention arm's
validation figures (what the choice is selected on), its test figures, the supervised ceiling on
the same input, and the real PTB-XL kNN P(LVH) with bootstrap CIs (reported, never selected on).

The selection rule, fixed before the first run (docs/benchmarks.md, "ECG input ablation"):
a choice replaces the paper's `lead_groups` as the default when, on the phantom's validation
split and over the seeds, (a) its mean validation LVH AUROC beats lead_groups' by more than the
larger seed SD of the two, and (b) neither its validation LVEF<=45 AUROC nor its validation
phenotype-aware mAP falls below lead_groups' by more than the larger seed SD. Of the choices that
pass, the one with the highest validation LVH AUROC wins; when none passes, lead_groups stays.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CHOICES = ("lead_groups", "mv_softclip", "lead_groups_logscale")
PAPER = "lead_groups"
ARMS = "criteria,attention,supervised"
VAL_KEYS = (("val LVH AUROC", "val_knn_lvh_auroc"), ("val LVEF<=45 AUROC", "val_knn_le45_auroc"),
            ("val pheno mAP", "val_pheno_map"))
TEST_PATHS = (
    ("LVH AUROC", ("classification", "cross_modal_knn", "lvh", "auroc")),
    ("LVEF<=45 AUROC", ("classification", "cross_modal_knn", "lvef_le45", "auroc")),
    ("LVEF-class AUROC", ("classification", "cross_modal_knn", "lvef_class", "auroc_macro")),
    ("LVEF MAE", ("classification", "cross_modal_knn", "lvef", "mae")),
    ("pheno mAP", ("retrieval", "ecg_to_echo", "phenotype", "map")),
)
CEILING_PATHS = (
    ("ceiling LVH AUROC", ("classification", "direct", "lvh", "auroc")),
    ("ceiling LVEF<=45 AUROC", ("classification", "direct", "lvef_le45", "auroc")),
)


def run_choice(choice: str, workdir: Path, extra: list[str]) -> float:
    """One benchmark for `choice` in `workdir`; returns its wall time in seconds."""
    out = workdir / f"results-{choice}"
    cmd = [sys.executable, "-m", "e2r", "eval", "--benchmark", "--arms", ARMS, "--ecg-normalise", choice,
           "--workdir", str(workdir), "--out", str(out), *extra]
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def _lookup(d: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def summarise(results: dict) -> dict[str, tuple[float, float]]:
    """Mean and SD over seeds of every figure of the table, from one choice's results.json: the
    benchmark's own aggregates where it wrote them (its `mean_sd`), the same aggregation otherwise."""
    from queries.eval.aggregate import mean_sd

    att = results["arms"]["attention"]
    row: dict[str, tuple[float, float]] = {}
    val = mean_sd([r["train"]["best_val"] for r in att["runs"]])
    for label, key in VAL_KEYS:
        row[label] = tuple(val[key])
    for label, path in TEST_PATHS:
        row[label] = tuple(_lookup(att["mean_sd"], path))
    sup = results["arms"].get("supervised")
    for label, path in CEILING_PATHS if sup else ():
        row[label] = tuple(_lookup(sup["mean_sd"], path))
    real = (results.get("real_ecgs") or {}).get("arms", {}).get("attention")
    if real:
        row["PTB-XL kNN P(LVH) AUROC"] = tuple(real["auroc"])
        row["PTB-XL per-seed 95% CIs"] = tuple((round(r["ci_low"], 2), round(r["ci_high"], 2))
                                               for r in real["per_seed"])  # type: ignore[assignment]
    probes = [r.get("real_ecg_probe", {}).get("targets", {}).get("lvh") for r in att["runs"]]
    if all(p and p.get("auroc") is not None for p in probes):
        row["PTB-XL linear probe LVH AUROC"] = mean_sd(probes)["auroc"]
    return row


def select(rows: dict[str, dict[str, tuple[float, float]]]) -> tuple[str, list[str]]:
    """The module docstring's rule: (the chosen default, one line per choice saying why)."""
    base = rows[PAPER]
    why, passing = [], []
    for choice, row in rows.items():
        if choice == PAPER:
            continue
        sd = {k: max(row[k][1], base[k][1]) for k, _ in VAL_KEYS}
        gain = row["val LVH AUROC"][0] - base["val LVH AUROC"][0]
        losses = {k: base[k][0] - row[k][0] for k in ("val LVEF<=45 AUROC", "val pheno mAP")}
        ok_gain = gain > sd["val LVH AUROC"]
        ok_rest = all(losses[k] <= sd[k] for k in losses)
        if ok_gain and ok_rest:
            passing.append(choice)
        why.append(f"{choice}: val LVH {gain:+.3f} vs SD {sd['val LVH AUROC']:.3f} ({'beats' if ok_gain else 'does not beat'}); "
                   + "; ".join(f"{k} {-v:+.3f} vs SD {sd[k]:.3f}" for k, v in losses.items())
                   + f" -> {'passes' if ok_gain and ok_rest else 'fails'}")
    chosen = max(passing, key=lambda c: rows[c]["val LVH AUROC"][0]) if passing else PAPER
    return chosen, why


def table(rows: dict[str, dict[str, tuple[float, float]]]) -> str:
    labels = [k for k in next(iter(rows.values())) if k != "PTB-XL per-seed 95% CIs"]
    lines = ["| figure (attention arm unless 'ceiling') | " + " | ".join(rows) + " |",
             "|---|" + "---|" * len(rows)]
    for label in labels:
        cells = [f"{r[label][0]:.3f} +/- {r[label][1]:.3f}" if label in r else "n/a" for r in rows.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cis = [" ".join(f"[{lo:.2f}-{hi:.2f}]" for lo, hi in r.get("PTB-XL per-seed 95% CIs", ())) or "n/a"
           for r in rows.values()]
    lines.append("| PTB-XL per-seed 95% CI | " + " | ".join(cis) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("work/ablate"))
    ap.add_argument("--choices", nargs="+", default=list(CHOICES))
    ap.add_argument("--tabulate-only", action="store_true", help="Read the results of earlier runs; train nothing.")
    ap.add_argument("extra", nargs="*", help="Further `e2r eval` options after --, e.g. -- --seeds 1 --patients 200")
    args = ap.parse_args()
    if PAPER not in args.choices:
        ap.error(f"--choices must include the paper's {PAPER}: the rule compares against it")
    args.workdir.mkdir(parents=True, exist_ok=True)
    walls = {}
    if not args.tabulate_only:
        for choice in args.choices:
            walls[choice] = run_choice(choice, args.workdir, args.extra)
            print(f"{choice}: {walls[choice]:.0f} s", flush=True)
    rows = {c: summarise(json.loads((args.workdir / f"results-{c}" / "results.json").read_text()))
            for c in args.choices}
    print(table(rows))
    chosen, why = select(rows)
    print("\n".join(why))
    print(f"default by the rule: {chosen}")
    if walls:
        print("wall s: " + ", ".join(f"{c} {w:.0f}" for c, w in walls.items()))


if __name__ == "__main__":
    main()
