"""External validation on labelled ECGs without echo (`e2r eval --ecg-labels LABELS`).

Each labelled ECG (e2r.datasets.ecg_labels: PTB-XL, CinC 2021 `# Dx`, or a plain CSV) is
searched against an index built by `e2r index`, through `queries.search.Searcher.search_many` —
the same read, preprocessing, encoding and kNN vote as `e2r search`. The kNN P(LVH) (and
P(LVEF<=45) where labelled) is scored against the labels: AUROC with a seeded percentile
bootstrap CI (resampling ECGs with replacement; resamples with one class only are dropped and
counted), AUPRC, positives and negatives. ECGs that cannot be scored are counted by reason:
`missing_file`, `unreadable` (the reader's named error), `unexpected_error`, and per target
`no_estimate` (no indexed study carries that label). Beside the LVH estimate, the clinical voltage
rules (Sokolow-Lyon, Cornell: e2r.ecg.criteria) are scored on the same ECGs with the same bootstrap
(`targets.lvh.criteria`). Outputs: results.json and report.md, with counts and figures only (no
record paths, no patient identifiers).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from e2r.errors import DataError
from e2r.util import atomic_write, jsonable

log = logging.getLogger(__name__)

TARGETS = {"lvh": "p_lvh", "lvef_le45": "p_lvef_le45"}  # label -> the kNN estimate's probability key
TARGET_NAMES = {"lvh": "LVH", "lvef_le45": "LVEF <= 45 %"}
# The clinical voltage rules scored beside the kNN P(LVH) (e2r.ecg.criteria)
CRITERIA_NAMES = {"sokolow_lyon": "Sokolow-Lyon voltage", "cornell": "Cornell voltage"}
N_BOOTSTRAP = 1000
CI_LEVEL = 0.95


@dataclass(frozen=True)
class LabelledEvalResult:
    """What `e2r eval --ecg-labels` prints: the results dict and the files written."""

    results: dict[str, Any]
    out_files: list[str]


def bootstrap_auroc(y: np.ndarray, p: np.ndarray, n_boot: int = N_BOOTSTRAP, seed: int = 0,
                    level: float = CI_LEVEL) -> dict[str, Any]:
    """AUROC of scores `p` for 0/1 labels `y` with a percentile bootstrap CI.

    Returns auroc, ci_low, ci_high, positives, negatives, resamples (used), dropped (one-class
    resamples). With one class only, auroc and the CI are None and `note` says why.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels {y.shape} and scores {p.shape} must be 1-D of the same length")
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    out: dict[str, Any] = {"auroc": None, "ci_low": None, "ci_high": None, "positives": n_pos, "negatives": n_neg,
                           "resamples": 0, "dropped": 0, "ci_level": level, "seed": seed}
    if n_pos == 0 or n_neg == 0:
        out["note"] = (f"only one class among {y.size} ECGs ({n_pos} positive, {n_neg} negative); "
                       "AUROC needs both")
        return out
    out["auroc"] = float(roc_auc_score(y, p))
    rng = np.random.default_rng(seed)
    stats = []
    for start in range(0, n_boot, 100):  # 100 resamples at a time: (100, N) index blocks
        idx = rng.integers(0, y.size, (min(100, n_boot - start), y.size))
        auc = rank_auroc(y[idx], p[idx])
        out["dropped"] += int(np.isnan(auc).sum())
        stats.extend(auc[np.isfinite(auc)].tolist())
    out["resamples"] = len(stats)
    if stats:
        alpha = (1 - level) / 2
        out["ci_low"], out["ci_high"] = (float(v) for v in np.quantile(stats, [alpha, 1 - alpha]))
    return out


def rank_auroc(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """AUROC of each row: (B, N) 0/1 labels and scores -> (B,), by the Mann-Whitney rank sum
    (ties get average ranks, as roc_auc_score counts them half); NaN for a one-class row."""
    from scipy.stats import rankdata

    ranks = rankdata(p, axis=1)  # (B, N)
    n_pos = y.sum(axis=1).astype(np.float64)
    n_neg = y.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * y).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def criteria_aurocs(labelled: list[tuple[int, str]], n_boot: int = N_BOOTSTRAP, seed: int = 0,
                    measure: Optional[Callable[[list[str]], list]] = None) -> dict[str, Any]:
    """The voltage rules' AUROC for LVH on the same ECGs as the kNN vote: Sokolow-Lyon and Cornell
    voltage (e2r.ecg.criteria, on the record as read, mV) as scores, with the same bootstrap.
    ECGs where no beat is found are left out and counted (`unmeasured`). `measure`: paths -> their
    criteria (default queries.eval.criteria_arm.measure_rows; the benchmark passes a cached one)."""
    from queries.eval.criteria_arm import measure_rows

    ys: list[int] = []
    scores: dict[str, list[float]] = {name: [] for name in CRITERIA_NAMES}
    for (label, _), c in zip(labelled, (measure or measure_rows)([path for _, path in labelled])):
        if c is None:  # unreadable, or no beat found
            continue
        values = {"sokolow_lyon": c.sokolow_lyon_mv, "cornell": c.cornell_mv}
        if all(np.isfinite(v) for v in values.values()):
            ys.append(label)
            for name, v in values.items():
                scores[name].append(v)
    y = np.array(ys, dtype=np.int64)
    out: dict[str, Any] = {"unmeasured": len(labelled) - len(ys)}
    for name, v in scores.items():
        out[name] = bootstrap_auroc(y, np.array(v, dtype=np.float64), n_boot, seed)
    return out


def _exists(path: str) -> bool:
    p = Path(path)
    return p.is_file() or p.with_name(p.name + ".hea").is_file()


def score_labelled(searcher: Any, labels: Any, k: Optional[int] = None, n_boot: int = N_BOOTSTRAP, seed: int = 0,
                   progress: bool = True, say: Callable[[str], None] = log.info,
                   measure: Optional[Callable[[list[str]], list]] = None) -> dict[str, Any]:
    """Search every ECG of a LabelSet and score the kNN estimates (see the module doc); `measure`
    as criteria_aurocs takes it."""
    from e2r.metrics.classification import binary_metrics
    from e2r.metrics.knn import VOTE_K
    from e2r.progress import progress_bar
    from e2r.util import UNEXPECTED_READ_NOTE

    k = k or VOTE_K
    t0 = time.perf_counter()
    skipped: Counter[str] = Counter()
    examples: list[str] = []
    present = []
    for item in labels.items:
        if _exists(item.path):
            present.append(item)
        else:
            skipped["missing_file"] += 1
            if len(examples) < 5:
                examples.append(f"{item.path}: no such record")
    scores: dict[str, list[tuple[int, float]]] = {t: [] for t in TARGETS}
    lvh_scored: list[tuple[int, str]] = []  # (LVH label, path) of every ECG searched: the criteria's set
    no_estimate: Counter[str] = Counter()
    scored = 0
    # search_many answers every path once, but not in order (failures come first within a batch):
    # match answers to items by path, a path listed twice taking its items in turn.
    waiting: dict[str, deque] = {}
    for item in present:
        waiting.setdefault(item.path, deque()).append(item)
    found = searcher.search_many([it.path for it in present], top_k=1, k=k)
    for path, result, error in progress_bar(found, total=len(present), desc="searching", unit="ecg", disable=not progress):
        item = waiting[path].popleft()
        if error:
            skipped["unexpected_error" if UNEXPECTED_READ_NOTE in error else "unreadable"] += 1
            if len(examples) < 5:
                examples.append(error)
            continue
        scored += 1
        if item.lvh is not None:
            lvh_scored.append((int(item.lvh), item.path))
        for target, key in TARGETS.items():
            label = getattr(item, target)
            if label is None:
                continue
            prob = result.estimate.get(key)
            if prob is None:
                no_estimate[target] += 1
            else:
                scores[target].append((int(label), float(prob)))
    for msg in examples:
        say(f"skipped: {msg}")
    targets: dict[str, Any] = {}
    for target in TARGETS:
        labelled = sum(getattr(it, target) is not None for it in labels.items)
        if not labelled:
            continue
        y = np.array([s[0] for s in scores[target]], dtype=np.int64)
        p = np.array([s[1] for s in scores[target]], dtype=np.float64)
        entry = {"name": TARGET_NAMES[target], "labelled": labelled, "scored": int(y.size),
                 "no_estimate": no_estimate[target], **bootstrap_auroc(y, p, n_boot, seed)}
        if y.size and entry["auroc"] is not None:
            m = binary_metrics(y, p)
            entry.update({"auprc": m["auprc"], "prevalence": m["prevalence"]})
        if target == "lvh" and lvh_scored:
            entry["criteria"] = criteria_aurocs(lvh_scored, n_boot, seed, measure)
        targets[target] = entry
    scorable = [t for t, e in targets.items() if e["auroc"] is not None]
    if not scorable:
        why = "; ".join(f"{TARGET_NAMES[t]}: " + (e.get("note") or f"{e['scored']} scored") for t, e in targets.items())
        if not targets:
            why = "no ECG carries an LVH or LVEF<=45 label"
        raise DataError(f"{labels.source}: nothing to score ({scored} of {len(labels.items)} ECGs searched, "
                        f"{sum(skipped.values())} skipped; {why}); check the labels and that the ECG files are there")
    return {
        "kind": "ecg_labels",
        "labels": {"source": labels.source, "format": labels.format, "listed": len(labels.items),
                   "rows_left_out": labels.skipped, "notes": list(labels.notes)},
        "collection": searcher.collection, "model_hash": searcher.model_hash, "k": k,
        "bootstrap": {"resamples": n_boot, "seed": seed, "ci_level": CI_LEVEL, "method": "percentile, ECGs resampled"},
        "ecgs": {"listed": len(labels.items), "scored": scored, "skipped": dict(skipped)},
        "targets": targets,
        "wall_time_s": round(time.perf_counter() - t0, 3),
    }


def render_labelled_markdown(res: dict[str, Any]) -> str:
    """report.md: what was scored, the AUROC table, what was left out."""
    lab = res["labels"]
    lines = [f"# External validation on labelled ECGs ({lab['format']})", "",
             f"Labels: `{Path(lab['source']).name}` ({lab['format']}); collection `{res['collection']}`, model "
             f"{res['model_hash']}; kNN vote of the {res['k']} nearest labelled studies.", ""]
    lines += [f"- {n}" for n in lab["notes"]]
    lines += ["", "| target | AUROC | 95 % CI | AUPRC | positives | negatives | no estimate |",
              "|---|---|---|---|---|---|---|"]
    for t in res["targets"].values():
        ci = f"{t['ci_low']:.3f}-{t['ci_high']:.3f}" if t["ci_low"] is not None else "n/a"
        auroc = f"{t['auroc']:.3f}" if t["auroc"] is not None else "n/a"
        auprc = f"{t['auprc']:.3f}" if t.get("auprc") is not None else "n/a"
        lines.append(f"| {t['name']} | {auroc} | {ci} | {auprc} | {t['positives']} | {t['negatives']} | "
                     f"{t['no_estimate']} |")
    crit = res["targets"].get("lvh", {}).get("criteria")
    if crit:
        lines += ["", "Beside it, the clinical voltage rules on the same ECGs (no e2r: SV1 + max(RV5, RV6) and "
                  "RaVL + SV3 in mV on a median beat, e2r.ecg.criteria, the voltage itself as the score; "
                  f"{crit['unmeasured']} ECGs without a detectable beat left out):", "",
                  "| LVH score | AUROC | 95 % CI | positives | negatives |", "|---|---|---|---|---|"]
        for key, name in CRITERIA_NAMES.items():
            c = crit[key]
            ci = f"{c['ci_low']:.3f}-{c['ci_high']:.3f}" if c["ci_low"] is not None else "n/a"
            auroc = f"{c['auroc']:.3f}" if c["auroc"] is not None else "n/a"
            lines.append(f"| {name} | {auroc} | {ci} | {c['positives']} | {c['negatives']} |")
    for t in res["targets"].values():
        if t.get("note"):
            lines.append(f"\n{t['name']}: {t['note']}.")
    b, e = res["bootstrap"], res["ecgs"]
    lines += ["", f"CI: {b['method']}, {b['resamples']} resamples, seed {b['seed']}.",
              f"ECGs: {e['listed']} listed, {e['scored']} scored; skipped: "
              + (", ".join(f"{k} {v}" for k, v in sorted(e["skipped"].items())) or "none") + ".",
              "Label rows left out: " + (", ".join(f"{k} {v}" for k, v in sorted(lab["rows_left_out"].items()))
                                         or "none") + ".", ""]
    return "\n".join(lines)


def write_labelled_report(res: dict[str, Any], out_dir: str | Path,
                          render: Optional[Callable[[dict[str, Any]], str]] = None) -> list[str]:
    """Write results.json and report.md (`render`, default render_labelled_markdown) atomically into
    out_dir; the paths written."""
    render = render or render_labelled_markdown
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "results.json", out / "report.md"]
    atomic_write(files[0], lambda f: f.write(json.dumps(jsonable(res), indent=2, allow_nan=False).encode()))
    atomic_write(files[1], lambda f: f.write(render(res).encode()))
    return [str(p) for p in files]


def run_labelled_eval(searcher: Any, labels: Any, out_dir: str | Path, k: Optional[int] = None,
                      n_boot: int = N_BOOTSTRAP, seed: int = 0, progress: bool = True,
                      say: Callable[[str], None] = log.info) -> LabelledEvalResult:
    """Score a LabelSet against a Searcher's collection and write the report."""
    for msg in labels.errors:
        say(f"label row left out: {msg}")
    res = score_labelled(searcher, labels, k, n_boot, seed, progress, say)
    return LabelledEvalResult(res, write_labelled_report(res, out_dir))
