"""Sim-to-real check of the infarct coupling (issue 21 item 4): does a model trained on the phantom
only retrieve phantom studies of the matching coronary territory for real MI ECGs?

    python bench/probe_territory_retrieval.py --data-dir WORK/store --collection NAME \
        --phenotypes COHORT/phenotypes.csv [--ptbxl ../shared/data/ecg/ptbxl] [--top-k 20]

The real ECGs are the PTB-XL records of ../shared/data/ecg/ptbxl with an MI code of one territory
(ASMI, AMI -> LAD; IMI -> RCA; LMI -> LCx; ILMI counts for RCA and LCx) and the NORM records.
Each is searched, as `e2r search` does, against the phantom index; its top-k studies' `territory`
field is read from phenotypes.csv (generator version 2) by study UID. Two figures per territory T:

- match: the mean share of retrieved studies whose territory includes T, over the records of T,
  against chance = the share of indexed studies whose territory includes T. Bootstrap 95 % CI over
  records.
- contrast: the AUROC with which the retrieved share of T ranks the records of T above the
  records of the other MI territories (0.5 = the ECG tells nothing about the territory beyond
  "an infarct"), with a bootstrap CI.

PTB-XL is validation only: nothing here is fitted on it, and the phantom was fixed before this
ran. Prints a markdown table; exits 2 without the data.
"""

from __future__ import annotations

import argparse
import ast
import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CODE_TERRITORIES = {"ASMI": ("LAD",), "AMI": ("LAD",), "IMI": ("RCA",), "LMI": ("LCx",),
                    "ILMI": ("RCA", "LCx"), "NORM": ("none",)}
TERRITORIES = ("LAD", "LCx", "RCA", "none")
N_BOOT = 1000


def has(territory_field: str | None, t: str) -> bool:
    """Whether a study's territory field (`none`, `global`, `LAD+RCA`, ...) includes territory t."""
    if not territory_field:
        return False
    return territory_field == t if t == "none" else t in territory_field.split("+")


def record_groups(ptbxl: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(500 Hz record path without suffix, its territories) for records with exactly the codes of
    one group (an MI code of one territory, or NORM without an MI code)."""
    out = []
    with (ptbxl / "ptbxl_database.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            codes = [c for c in ast.literal_eval(row["scp_codes"]) if c in CODE_TERRITORIES]
            terr = {t for c in codes for t in CODE_TERRITORIES[c]}
            if not codes or ("none" in terr and len(terr) > 1):
                continue
            out.append((str(ptbxl / row["filename_hr"]) + ".hea", tuple(sorted(terr))))
    return out


def boot_mean_ci(x: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile 95 % CI of the mean of x, resampling records."""
    if len(x) < 2:
        return float("nan"), float("nan")
    means = rng.choice(x, size=(N_BOOT, len(x)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def contrast_auroc(pos: np.ndarray, neg: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    """AUROC of score pos vs neg (ties half), and its bootstrap 95 % CI."""
    from sklearn.metrics import roc_auc_score

    if not len(pos) or not len(neg):
        return float("nan"), float("nan"), float("nan")
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    s = np.r_[pos, neg]
    auc = float(roc_auc_score(y, s))
    boots = []
    for _ in range(N_BOOT):
        bp, bn = rng.choice(pos, len(pos)), rng.choice(neg, len(neg))
        boots.append(roc_auc_score(y, np.r_[bp, bn]))
    return auc, float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True, help="the embedded store folder of the index")
    ap.add_argument("--collection", required=True)
    ap.add_argument("--phenotypes", type=Path, required=True, help="phenotypes.csv of the indexed phantom cohort")
    ap.add_argument("--ptbxl", type=Path, default=ROOT.parent / "shared" / "data" / "ecg" / "ptbxl")
    ap.add_argument("--top-k", type=int, default=20)
    args = ap.parse_args(argv)
    if not (args.ptbxl / "ptbxl_database.csv").is_file():
        print(f"{args.ptbxl}: no ptbxl_database.csv; nothing to measure", file=sys.stderr)
        return 2

    from e2r.cli.store_opts import open_cli_store
    from queries.search import Searcher

    with args.phenotypes.open(newline="") as fh:
        territory_of = {row["study_uid"]: row.get("territory") for row in csv.DictReader(fh)}
    studies = list(territory_of.values())
    if not any(studies):
        print(f"{args.phenotypes}: no territory column (a generator version 1 cohort?)", file=sys.stderr)
        return 2
    chance = {t: float(np.mean([has(s, t) for s in studies])) for t in TERRITORIES}

    records = record_groups(args.ptbxl)
    scored: list[tuple[tuple[str, ...], dict[str, float]]] = []   # (record's territories, shares)
    failed = 0
    with open_cli_store(args.data_dir, None, None) as store:
        searcher = Searcher(store, args.collection)
        by_path = dict(records)
        for path, result, error in searcher.search_many([p for p, _ in records], top_k=args.top_k):
            if result is None:
                failed += 1
                continue
            got = [territory_of.get(n.study_uid) for n in result.neighbours]
            share = {t: float(np.mean([has(g, t) for g in got])) for t in TERRITORIES}
            scored.append((by_path[path], share))
    rng = np.random.default_rng(0)
    print(f"model {searcher.model_hash}, collection {args.collection}, top-k {args.top_k}, "
          f"{len(records)} PTB-XL records ({failed} unreadable), {len(studies)} indexed studies")
    print()
    print("| real records (territory) | n | retrieved share of that territory [95 % CI] | chance (indexed share) "
          "| ratio | contrast AUROC vs the other MI territories [95 % CI] |")
    print("|---|---|---|---|---|---|")
    for t in TERRITORIES:
        own = np.array([s[t] for terr, s in scored if t in terr])
        if not len(own):
            print(f"| {t} | 0 | - | {chance[t]:.3f} | - | - |")
            continue
        lo, hi = boot_mean_ci(own, rng)
        if t == "none":
            contrast = "-"
        else:
            others = np.array([s[t] for terr, s in scored if t not in terr and "none" not in terr])
            auc, alo, ahi = contrast_auroc(own, others, rng)
            contrast = f"{auc:.2f} [{alo:.2f}-{ahi:.2f}] (n other {len(others)})"
        print(f"| {t} | {len(own)} | {own.mean():.3f} [{lo:.3f}-{hi:.3f}] | {chance[t]:.3f} | "
              f"{own.mean() / chance[t]:.2f} | {contrast} |" if chance[t] else f"| {t} | {len(own)} | {own.mean():.3f} | 0 | - | {contrast} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
