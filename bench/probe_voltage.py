"""QRS voltage of the phantom against real ECGs: Sokolow-Lyon and Cornell, LVH against not.

    python bench/probe_voltage.py [--n 400] [--seed 0] [--data ../shared/data]

Measures both sides the same way with e2r.ecg.criteria (XQRS fiducials, median beat, amplitudes
from the PR segment, mV). Phantom rows: `--n` baseline hearts of generator version 1
(e2r.phantom.latent) and of version 2 (e2r.phantom.latent_v2), each ECG from
e2r.phantom.ecg_synth.synth_ecg at 500 Hz; LVH = max(IVSd, LVPWd) >= 13 mm (the phenotype rule).
Real rows: the 500 PTB-XL records of ../shared/data/ecg/ptbxl (500 Hz files), LVH = the scp code
LVH, against NORM (normal ECGs) and against every other record (like the phantom's non-LVH group,
which holds sick hearts too); the AUROC is always LVH against every other record. PTB-XL is validation only: nothing is fitted.

Per group: n, median and IQR (mV). Per source: the LVH - non-LVH median difference, Cohen's d
(pooled SD) and the AUROC of the raw voltage for LVH. Measurement only: the phantom is not changed.
"""

from __future__ import annotations

import argparse
import ast
import csv
import sys
from pathlib import Path

import numpy as np

from e2r.ecg.criteria import ECGCriteria, measure_criteria

ROOT = Path(__file__).resolve().parents[1]
MEASURES = (("Sokolow-Lyon", "sokolow_lyon_mv"), ("Cornell", "cornell_mv"))


def phantom_criteria(version: int, n: int, seed: int) -> tuple[list[ECGCriteria], np.ndarray, np.ndarray]:
    """Criteria of n phantom ECGs of generator `version` (1 or 2), their hearts' LVH and LBBB flags."""
    from e2r.phantom import latent, latent_v2
    from e2r.phantom.ecg_synth import synth_ecg

    draw = latent.draw_baseline_exam if version == 1 else latent_v2.draw_baseline_exam
    rng = np.random.default_rng(seed)
    out, lvh, lbbb = [], [], []
    for _ in range(n):
        exam = draw(rng)
        sig, _ = synth_ecg(exam, rng, 500.0)
        out.append(measure_criteria(sig, 500.0, exam.sex))
        lvh.append(exam.lvh)
        lbbb.append(exam.lbbb)
    return out, np.array(lvh, dtype=bool), np.array(lbbb, dtype=bool)


def ptbxl_criteria(ptbxl: Path) -> tuple[list[ECGCriteria], list[set[str]]]:
    """Criteria of every PTB-XL record (500 Hz) and its scp codes (sex: 0 male, 1 female)."""
    from e2r.ecg import read_ecg

    with (ptbxl / "ptbxl_database.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    out, codes = [], []
    for row in rows:
        rec = read_ecg(ptbxl / row["filename_hr"])
        sex = {"0": "M", "1": "F"}.get(row["sex"].split(".")[0])
        out.append(measure_criteria(rec.signal, float(rec.fs), sex))
        codes.append(set(ast.literal_eval(row["scp_codes"])))
    return out, codes


def _values(ms: list[ECGCriteria], key: str) -> np.ndarray:
    v = np.array([getattr(m, key) for m in ms], dtype=np.float64)
    return v[np.isfinite(v)]


def _cell(v: np.ndarray) -> str:
    q1, med, q3 = np.quantile(v, [0.25, 0.5, 0.75])
    return f"{med:.2f} [{q1:.2f}-{q3:.2f}]"


def cohen_d(a: np.ndarray, b: np.ndarray) -> float:
    """(mean a - mean b) / pooled SD."""
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    return float((a.mean() - b.mean()) / pooled)


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))


def table(sources: list[tuple[str, str, list[ECGCriteria], str, list[ECGCriteria], list[ECGCriteria]]]) -> str:
    """Markdown: per source and measure, the two groups' median [IQR], the difference, d, AUROC."""
    lines = ["| source | measure (mV) | LVH group: n, median [IQR] | non-LVH group: n, median [IQR] | "
             "median difference | Cohen's d | AUROC (LVH vs all others) | above the LVH threshold: LVH / non-LVH |",
             "|---|---|---|---|---|---|---|---|"]
    for source, pos_name, pos, neg_name, neg, others in sources:
        for name, key in MEASURES:
            a, b = _values(pos, key), _values(neg, key)
            rest = _values(others, key)
            if key == "sokolow_lyon_mv":
                hit = [np.mean([m.sokolow_lyon_lvh for m in g if m.n_beats]) for g in (pos, neg)]
            else:
                hit = [np.mean([bool(m.cornell_lvh) for m in g if m.n_beats and m.cornell_lvh is not None])
                       for g in (pos, neg)]
            lines.append(f"| {source} | {name} | {pos_name}: {len(a)}, {_cell(a)} | {neg_name}: {len(b)}, "
                         f"{_cell(b)} | {np.median(a) - np.median(b):+.2f} | {cohen_d(a, b):.2f} | "
                         f"{auroc(a, rest):.3f} | {hit[0]:.2f} / {hit[1]:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=400, help="phantom hearts per generator version")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args(argv)
    sources = []
    for version in (1, 2):
        ms, lvh, lbbb = phantom_criteria(version, args.n, args.seed)
        pos = [m for m, f in zip(ms, lvh) if f]
        neg = [m for m, f in zip(ms, lvh) if not f]
        sources.append((f"phantom v{version}", "LVH", pos, "no LVH", neg, neg))
        found = np.array([m.lbbb for m in ms])
        print(f"phantom v{version}: {len(ms)} ECGs, {int(lvh.sum())} LVH, {sum(m.n_beats == 0 for m in ms)} "
              f"without a beat; LBBB {int(lbbb.sum())}, detected in {int(found[lbbb].sum())} of them and in "
              f"{int(found[~lbbb].sum())} others", file=sys.stderr)
    ptbxl = args.data / "ecg" / "ptbxl"
    if (ptbxl / "ptbxl_database.csv").is_file():
        ms, codes = ptbxl_criteria(ptbxl)
        pos = [m for m, c in zip(ms, codes) if "LVH" in c]
        norm = [m for m, c in zip(ms, codes) if "NORM" in c and "LVH" not in c]
        others = [m for m, c in zip(ms, codes) if "LVH" not in c]
        sources.append(("PTB-XL 1-500", "LVH", pos, "NORM", norm, others))
        sources.append(("PTB-XL 1-500", "LVH", pos, "all non-LVH", others, others))
        print(f"PTB-XL: {len(ms)} ECGs, {sum(m.n_beats == 0 for m in ms)} without a beat; CLBBB "
              f"{sum('CLBBB' in c for c in codes)}, LBBB detected in "
              f"{sum(m.lbbb for m, c in zip(ms, codes) if 'CLBBB' in c)} of them and in "
              f"{sum(m.lbbb for m, c in zip(ms, codes) if 'CLBBB' not in c)} others", file=sys.stderr)
    else:
        print(f"no PTB-XL at {ptbxl}: phantom rows only", file=sys.stderr)
    print(table(sources))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
