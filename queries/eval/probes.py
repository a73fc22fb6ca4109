"""Probes on labelled ECGs: `e2r eval --ecg-labels LABELS --protocol knn|linear --model M`.

The ECG encoder is frozen: every labelled ECG (e2r.datasets.ecg_labels) is embedded on the search's
encode path (e2r.embed.embed_ecg_batches), and a probe is fitted on some ECGs and scored on others:

- `knn` (the paper's protocol): scikit-learn KNeighborsClassifier, k = 5, cosine distance on the
  L2-normalised vectors, fitted on the training ECGs; the score is the fraction of positive
  neighbours.
- `linear`: StandardScaler + LogisticRegression (liblinear, L2); C from C_GRID is the one with the best
  AUROC on the validation ECGs (ties: the smaller C), the model fitted on the training ECGs with it
  is scored on the test ECGs.

Vectors (`array`): `embedding`, the L2-normalised shared ECG-echo space `e2r search` queries with
(default: what the model was trained to make comparable to echo), or `features`, the encoder's
pooled output before the projection head.

Splits, per label (every split is train / validation / test; kNN uses train only):
- `ptbxl_strat_fold`: PTB-XL's strat_fold 1-8 train, 9 validation, 10 test (patient-disjoint by
  PTB-XL's construction).
- `stratified_holdout` (CinC / CSV): a seeded stratified split, 20 % test, then 25 % of the rest
  validation (60/20/20); patient-disjoint (StratifiedGroupKFold) where patient ids exist.
- `repeated_kfold`, the fallback when the test part of the rule above holds fewer than
  MIN_TEST_CLASS positives or negatives: stratified 5-fold x 5 repeats (RepeatedStratifiedKFold;
  StratifiedGroupKFold per repeat, seed + repeat, where patient ids exist), each outer training part
  split again 3:1 into train and validation. Every ECG is scored once per repeat by a probe that
  never saw it; its score is the mean over repeats, and the AUROC / CI / AUPRC are on those scores;
  the spread is the per-fold AUROC mean and SD over the 25 test folds.

Reported per label: AUROC with the percentile bootstrap CI of queries.eval.labelled, AUPRC
(average_precision_score), positives and negatives scored, the split rule with n per split, and k
or C. Outputs hold counts and figures only, never record paths or patient ids.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from e2r.errors import DataError
from queries.eval.labelled import CI_LEVEL, N_BOOTSTRAP, bootstrap_auroc

log = logging.getLogger(__name__)

PROTOCOLS = ("cross-modal", "knn", "linear")
PROBE_TARGETS = {"lvh": "LVH", "mi": "MI (vs NORM)", "lvef_le45": "LVEF <= 45 %"}
KNN_K = 5  # the paper's k
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)  # LogisticRegression's inverse regularisation, chosen on validation
MIN_TEST_CLASS = 10  # fewer positives or negatives than this in the test part -> repeated k-fold
N_SPLITS, N_REPEATS = 5, 5
PTBXL_TRAIN, PTBXL_VAL, PTBXL_TEST = frozenset(range(1, 9)), frozenset({9}), frozenset({10})


@dataclass(frozen=True)
class Split:
    """Row indices of one train / validation / test partition."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class SplitPlan:
    """The splits of one label: one (fixed rules) or N_SPLITS x N_REPEATS (repeated_kfold)."""

    rule: str
    splits: tuple[Split, ...]
    repeats: int = 1


# -- the splits ------------------------------------------------------------------------------------
def _groups_or_none(groups: Optional[Sequence[Optional[str]]]) -> Optional[np.ndarray]:
    """Patient ids as an array (a missing one: its own group), or None when every ECG is its own patient."""
    if groups is None:
        return None
    g = np.array([x if x else f"#row{i}" for i, x in enumerate(groups)], dtype=object)
    return g if len(set(g)) < len(g) else None


def _first_fold(y: np.ndarray, groups: Optional[np.ndarray], n_splits: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held-out) indices: the first fold of a seeded stratified (group) k-fold."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if groups is None:
        cv = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
        return next(cv.split(np.zeros(len(y)), y))
    cv = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
    return next(cv.split(np.zeros(len(y)), y, groups))


def _inner(idx: np.ndarray, y: np.ndarray, groups: Optional[np.ndarray], seed: int) -> Split:
    """Split the indices `idx` 3:1 into train and validation; test left empty."""
    g = groups[idx] if groups is not None else None
    fit, val = _first_fold(y[idx], g, N_SPLITS - 1, seed)
    return Split(idx[fit], idx[val], np.zeros(0, np.int64))


def plan_splits(y: np.ndarray, folds: Optional[Sequence[Optional[int]]] = None,
                groups: Optional[Sequence[Optional[str]]] = None, seed: int = 0) -> SplitPlan:
    """The splits of 0/1 labels `y` (see the module doc). `folds`: PTB-XL's strat_fold per ECG
    (used when every ECG has one); `groups`: patient ids (None entries: ECGs of unknown patient)."""
    y = np.asarray(y, dtype=np.int64)
    g = _groups_or_none(groups)
    if folds is not None and len(folds) and all(f is not None for f in folds):
        f = np.asarray(folds)
        split = Split(*(np.flatnonzero(np.isin(f, list(s))) for s in (PTBXL_TRAIN, PTBXL_VAL, PTBXL_TEST)))
        rule = "ptbxl_strat_fold"
    else:
        rest, test = _first_fold(y, g, N_SPLITS, seed)
        inner = _inner(rest, y, g, seed)
        split = Split(inner.train, inner.val, test)
        rule = "stratified_holdout"
    yt = y[split.test]
    if min(int(yt.sum()), int((1 - yt).sum())) >= MIN_TEST_CLASS:
        return SplitPlan(rule, (split,))
    from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedGroupKFold

    if g is None:
        outer = RepeatedStratifiedKFold(n_splits=N_SPLITS, n_repeats=N_REPEATS, random_state=seed).split(np.zeros(len(y)), y)
    else:
        outer = (s for r in range(N_REPEATS)
                 for s in StratifiedGroupKFold(N_SPLITS, shuffle=True, random_state=seed + r).split(np.zeros(len(y)), y, g))
    splits = []
    for train, test in outer:
        inner = _inner(train, y, g, seed)
        splits.append(Split(inner.train, inner.val, test))
    return SplitPlan("repeated_kfold", tuple(splits), N_REPEATS)


# -- the probes ------------------------------------------------------------------------------------
def knn_scores(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, k: int = KNN_K) -> np.ndarray:
    """P(positive) of each test row: the fraction of positives among its k nearest training rows
    (cosine distance on L2-normalised rows)."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=min(k, len(y_train)), metric="cosine", algorithm="brute")
    knn.fit(_l2(x_train), y_train)
    return _positive_proba(knn, _l2(x_test))


def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                 x_test: np.ndarray, grid: Sequence[float] = C_GRID) -> tuple[np.ndarray, float, dict[float, Optional[float]]]:
    """(test scores, the C chosen, validation AUROC per C): StandardScaler + LogisticRegression fitted
    on train for every C of `grid`; the best validation AUROC wins (ties: the smaller C; a
    validation set with one class: C = 1)."""
    proba, classes, best, val_auroc = linear_probe_proba(x_train, y_train, x_val, y_val, x_test, grid)
    return (proba[:, classes.index(1)] if 1 in classes else np.zeros(len(x_test))), best, val_auroc


def linear_probe_proba(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                       x_test: np.ndarray, grid: Sequence[float] = C_GRID
                       ) -> tuple[np.ndarray, list, float, dict[float, Optional[float]]]:
    """`linear_probe` for two or more classes: (test probabilities (N, K), their K classes = the sorted
    training labels, the C chosen, validation AUROC per C). The validation AUROC is the positive
    class's for two classes (labels 0/1), else the macro one-vs-rest AUROC over the classes the
    validation rows hold (both present and absent); none such: C = 1."""
    fitted, val_auroc = {}, {}
    scorable = _scorable_classes(np.asarray(y_train), np.asarray(y_val))
    multiclass = len(set(np.asarray(y_train).tolist())) > 2
    for c in grid if scorable else (1.0,):
        fitted[c] = make_linear(c, multiclass).fit(x_train, y_train)
        val_auroc[c] = _val_auroc(fitted[c], x_val, np.asarray(y_val), scorable) if scorable else None
    best = max(grid, key=lambda c: (val_auroc[c], -c)) if scorable else 1.0
    model = fitted[best]
    return model.predict_proba(x_test), list(model.classes_), best, val_auroc


def _scorable_classes(y_train: np.ndarray, y_val: np.ndarray) -> list:
    """Training classes whose validation AUROC exists (some validation rows are, some are not, of the
    class); for 0/1 labels only the positive class."""
    classes = sorted(set(y_train.tolist()))
    ok = [c for c in classes if 0 < int(np.sum(y_val == c)) < len(y_val)]
    if len(classes) == 2 and set(classes) == {0, 1}:
        return [1] if 1 in ok else []
    return ok


def _val_auroc(model: Any, x_val: np.ndarray, y_val: np.ndarray, scorable: Sequence) -> float:
    from sklearn.metrics import roc_auc_score

    proba = model.predict_proba(x_val)
    classes = list(model.classes_)
    return float(np.mean([roc_auc_score(y_val == c, proba[:, classes.index(c)]) for c in scorable]))


def make_linear(c: float, multiclass: bool = False):
    """The linear probe's estimator for one C (more than two classes: one-vs-rest, one probe per class,
    probabilities normalised over the classes)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # liblinear: the same L2-penalised logistic loss (its intercept is penalised too), deterministic for
    # this primal problem, and ~10x faster than lbfgs on these few-hundred-row fits with scipy 1.17.
    lr = LogisticRegression(C=c, solver="liblinear", max_iter=5000, random_state=0)
    return make_pipeline(StandardScaler(), OneVsRestClassifier(lr) if multiclass else lr)


def _positive_proba(est: Any, x: np.ndarray) -> np.ndarray:
    classes = list(est.classes_)
    return est.predict_proba(x)[:, classes.index(1)] if 1 in classes else np.zeros(len(x))


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


# -- one label ------------------------------------------------------------------------------------
def score_probe(protocol: str, x: np.ndarray, y: np.ndarray, plan: SplitPlan, k: int = KNN_K,
                n_boot: int = N_BOOTSTRAP, seed: int = 0) -> dict[str, Any]:
    """Fit and score the probe on every split of `plan`; AUROC + CI, AUPRC, the split and k / C."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if protocol not in ("knn", "linear"):
        raise ValueError(f"protocol {protocol!r}: knn or linear")
    chosen: list[float] = []
    val_auroc: dict[float, Optional[float]] = {}
    test_scores = []
    for s in plan.splits:
        if protocol == "knn":
            p = knn_scores(x[s.train], y[s.train], x[s.test], k)
        else:
            p, c, val_auroc = linear_probe(x[s.train], y[s.train], x[s.val], y[s.val], x[s.test])
            chosen.append(c)
        test_scores.append(p)
    split: dict[str, Any] = {"rule": plan.rule}
    if plan.rule == "repeated_kfold":
        per_ecg = np.zeros((plan.repeats, len(y)))  # (R, N): each ECG is in one test fold per repeat
        fold_auc = []
        per_repeat = len(plan.splits) // plan.repeats
        for i, (s, p) in enumerate(zip(plan.splits, test_scores)):
            per_ecg[i // per_repeat, s.test] = p
            if 0 < y[s.test].sum() < len(s.test):
                fold_auc.append(float(roc_auc_score(y[s.test], p)))
        y_eval, p_eval = y, per_ecg.mean(axis=0)
        split.update({"n_splits": per_repeat, "n_repeats": plan.repeats,
                      "n": {part: [min(len(getattr(s, part)) for s in plan.splits),
                                   max(len(getattr(s, part)) for s in plan.splits)] for part in ("train", "val", "test")},
                      "fold_auroc_mean": float(np.mean(fold_auc)) if fold_auc else None,
                      "fold_auroc_sd": float(np.std(fold_auc, ddof=1)) if len(fold_auc) > 1 else None,
                      "folds_scored": len(fold_auc), "folds_one_class": len(plan.splits) - len(fold_auc)})
    else:
        s = plan.splits[0]
        y_eval, p_eval = y[s.test], test_scores[0]
        split["n"] = {part: {"n": len(getattr(s, part)), "positives": int(y[getattr(s, part)].sum())}
                      for part in ("train", "val", "test")}
    out: dict[str, Any] = {"split": split}
    if protocol == "knn":
        out["k"] = min(k, min(len(s.train) for s in plan.splits))
    elif plan.rule == "repeated_kfold":
        out["C_chosen"] = {f"{c:g}": n for c, n in sorted(Counter(chosen).items())}
    else:
        out["C"] = chosen[0]
        out["val_auroc"] = {f"{c:g}": a for c, a in val_auroc.items()}
    out.update(bootstrap_auroc(y_eval, p_eval, n_boot, seed))
    if out["auroc"] is not None:
        out["auprc"] = float(average_precision_score(y_eval, p_eval))
        out["prevalence"] = float(np.mean(y_eval))
    return out


# -- the labelled set ---------------------------------------------------------------------------------
def embed_labelled(paths: Sequence[str], model: Any, array: str, progress: bool = True
                   ) -> tuple[dict[str, np.ndarray], Counter, list[str]]:
    """Each distinct path -> its vector (`array` of e2r.embed.ARRAYS); the skipped, by reason; a few
    example messages."""
    from e2r.embed import embed_ecg_batches
    from e2r.progress import progress_bar
    from e2r.util import UNEXPECTED_READ_NOTE

    vectors: dict[str, np.ndarray] = {}
    skipped: Counter[str] = Counter()
    examples: list[str] = []
    todo = []
    for path in dict.fromkeys(paths):
        p = Path(path)
        if p.is_file() or p.with_name(p.name + ".hea").is_file():
            todo.append(path)
        else:
            skipped["missing_file"] += 1
            if len(examples) < 5:
                examples.append(f"{path}: no such record")
    with progress_bar(total=len(todo), desc="embedding", unit="ecg", disable=not progress) as bar:
        for rows, bad in embed_ecg_batches(todo, model):
            vectors.update((r.path, getattr(r, array)) for r in rows)
            for _, reason in bad:
                skipped["unexpected_error" if UNEXPECTED_READ_NOTE in reason else "unreadable"] += 1
                if len(examples) < 5:
                    examples.append(reason)
            bar.update(len(rows) + len(bad))
    return vectors, skipped, examples


def probe_targets(items: Sequence[Any], vectors: dict[str, np.ndarray], protocol: str, k: int = KNN_K,
                  n_boot: int = N_BOOTSTRAP, seed: int = 0, plans: Optional[dict] = None) -> dict[str, Any]:
    """The probe's entry per target of PROBE_TARGETS that some labelled item carries (its figures from
    `score_probe`, the counts, the split), or a note saying why it cannot be scored. `vectors`: the
    vector of each item's path; items without one are left out (counted: `labelled` vs `scored`).
    `plans`: a dict that keeps each split plan by target, seed and the items scored, so several models
    probed on the same ECGs plan their splits once (the patient-grouped k-fold is most of a probe's time)."""
    targets: dict[str, Any] = {}
    for target, name in PROBE_TARGETS.items():
        items_t = [it for it in items if getattr(it, target) is not None]
        if not items_t:
            continue
        ok = [it for it in items_t if it.path in vectors]
        y = np.array([getattr(it, target) for it in ok], dtype=np.int64)
        entry: dict[str, Any] = {"name": name, "labelled": len(items_t), "scored": len(ok)}
        n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
        if min(n_pos, n_neg) < N_SPLITS:
            entry.update({"auroc": None, "ci_low": None, "ci_high": None, "positives": n_pos, "negatives": n_neg,
                          "note": f"cannot be scored: {n_pos} positive, {n_neg} negative among {len(y)} embedded "
                                  f"ECGs; a probe needs at least {N_SPLITS} of each"})
            targets[target] = entry
            continue
        x = np.stack([vectors[it.path] for it in ok]).astype(np.float64)
        key = (target, seed, tuple(it.path for it in ok))
        plan = plans.get(key) if plans is not None else None
        if plan is None:
            plan = plan_splits(y, [it.fold for it in ok], [it.group for it in ok], seed)
            if plans is not None:
                plans[key] = plan
        entry["split_groups"] = "patient" if _groups_or_none([it.group for it in ok]) is not None else "none"
        entry.update(score_probe(protocol, x, y, plan, k, n_boot, seed))
        targets[target] = entry
    return targets


def score_probes(labels: Any, model: Any, protocol: str, array: str = "embedding", k: int = KNN_K,
                 n_boot: int = N_BOOTSTRAP, seed: int = 0, progress: bool = True,
                 say: Callable[[str], None] = log.info) -> dict[str, Any]:
    """Embed every ECG of a LabelSet with the frozen encoder and score the probe per label."""
    from e2r.embed import ARRAYS

    if array not in ARRAYS:
        raise DataError(f"--features {array}: choose one of {', '.join(ARRAYS)}")
    t0 = time.perf_counter()
    vectors, skipped, examples = embed_labelled([it.path for it in labels.items], model, array, progress)
    for msg in examples:
        say(f"skipped: {msg}")
    targets = probe_targets(labels.items, vectors, protocol, k, n_boot, seed)
    if not any(e["auroc"] is not None for e in targets.values()):
        why = "; ".join(f"{e['name']}: {e.get('note') or 'one class'}" for e in targets.values()) or \
            "no ECG carries an LVH, MI or LVEF<=45 label"
        raise DataError(f"{labels.source}: nothing to score ({len(vectors)} of {len(labels.items)} ECGs embedded, "
                        f"{sum(skipped.values())} skipped; {why})")
    return {
        "kind": "ecg_labels", "protocol": protocol,
        "labels": {"source": labels.source, "format": labels.format, "listed": len(labels.items),
                   "rows_left_out": labels.skipped, "notes": list(labels.notes)},
        "model_hash": getattr(model, "hash", None),
        "features": {"array": array, "what": ARRAYS[array]},
        "probe": _probe_description(protocol, k),
        "split_rules": {"ptbxl_strat_fold": "PTB-XL strat_fold 1-8 train, 9 validation, 10 test",
                        "stratified_holdout": "seeded stratified 60/20/20 train/validation/test, patient-disjoint "
                                              "where patient ids exist",
                        "repeated_kfold": f"fallback when the test part has < {MIN_TEST_CLASS} positives or negatives: "
                                          f"stratified {N_SPLITS}-fold x {N_REPEATS} repeats (patient-disjoint where "
                                          "patient ids exist), each outer training part split 3:1 into train and "
                                          "validation; scores averaged over repeats"},
        "seed": seed,
        "bootstrap": {"resamples": n_boot, "seed": seed, "ci_level": CI_LEVEL, "method": "percentile, ECGs resampled"},
        "ecgs": {"listed": len(labels.items), "scored": sum(it.path in vectors for it in labels.items),
                 "skipped": dict(skipped)},
        "targets": targets,
        "wall_time_s": round(time.perf_counter() - t0, 3),
    }


def _probe_description(protocol: str, k: int) -> dict[str, Any]:
    if protocol == "knn":
        return {"name": "kNN", "k": k, "metric": "cosine on L2-normalised vectors",
                "score": "fraction of positive neighbours among the training ECGs"}
    return {"name": "logistic regression", "C_grid": list(C_GRID), "standardised": True,
            "selection": "best validation AUROC (ties: smaller C); fitted on the training ECGs"}


def render_probe_markdown(res: dict[str, Any]) -> str:
    """report.md of a probe run."""
    lab, probe = res["labels"], res["probe"]
    what = f"kNN, k = {probe['k']}, cosine" if probe["name"] == "kNN" else \
        "logistic regression (standardised), C chosen on validation AUROC"
    lines = [f"# Probe on labelled ECGs ({lab['format']}): {res['protocol']}", "",
             f"Labels: `{Path(lab['source']).name}`; model {res['model_hash']} frozen; vectors: "
             f"`{res['features']['array']}` ({res['features']['what']}); probe: {what}.", "",
             "| target | AUROC | 95 % CI | AUPRC | positives | negatives | split | n train / val / test | k or C |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t in res["targets"].values():
        lines.append("| " + " | ".join(_row_cells(t)) + " |")
    for t in res["targets"].values():
        if t.get("note"):
            lines.append(f"\n{t['name']}: {t['note']}.")
        sp = t.get("split", {})
        if sp.get("rule") == "repeated_kfold" and sp.get("fold_auroc_mean") is not None:
            sd = f" ± {sp['fold_auroc_sd']:.3f}" if sp.get("fold_auroc_sd") is not None else ""
            lines.append(f"\n{t['name']}: per-fold AUROC {sp['fold_auroc_mean']:.3f}{sd} (mean ± SD over "
                         f"{sp['folds_scored']} test folds).")
    lines += ["", "Split rules:"] + [f"- `{k}`: {v}" for k, v in res["split_rules"].items()]
    b, e = res["bootstrap"], res["ecgs"]
    lines += ["", f"CI: {b['method']}, {b['resamples']} resamples, seed {b['seed']}.",
              f"ECGs: {e['listed']} listed, {e['scored']} embedded; skipped: "
              + (", ".join(f"{k} {v}" for k, v in sorted(e["skipped"].items())) or "none") + ".", ""]
    return "\n".join(lines)


def _row_cells(t: dict[str, Any]) -> list[str]:
    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    sp = t.get("split", {})
    n = sp.get("n", {})
    if sp.get("rule") == "repeated_kfold":
        sizes = " / ".join(f"{lo}-{hi}" for lo, hi in (n[p] for p in ("train", "val", "test")))
        split = f"repeated {sp['n_splits']}-fold x {sp['n_repeats']}"
    elif n:
        sizes = " / ".join(str(n[p]["n"]) for p in ("train", "val", "test"))
        split = sp["rule"]
    else:
        sizes, split = "n/a", "n/a"
    kc = (f"k={t['k']}" if "k" in t else f"C={t['C']:g}" if "C" in t
          else "C: " + ", ".join(f"{c}x{m}" for c, m in t["C_chosen"].items()) if "C_chosen" in t else "n/a")
    ci = f"{t['ci_low']:.3f}-{t['ci_high']:.3f}" if t.get("ci_low") is not None else "n/a"
    return [t["name"], f(t["auroc"]), ci, f(t.get("auprc")), str(t["positives"]), str(t["negatives"]), split, sizes, kc]


def table_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows `e2r eval --protocol knn|linear` prints."""
    cols = ["target", "auroc", "ci", "auprc", "positives", "negatives", "split", "n_train_val_test", "k_or_C"]
    return [dict(zip(cols, _row_cells(t))) for t in res["targets"].values()]


def run_probe_eval(labels: Any, model: Any, out_dir: str | Path, protocol: str, array: str = "embedding",
                   k: int = KNN_K, n_boot: int = N_BOOTSTRAP, seed: int = 0, progress: bool = True,
                   say: Callable[[str], None] = log.info):
    """Score a probe on a LabelSet and write results.json and report.md into out_dir."""
    from queries.eval.labelled import LabelledEvalResult, write_labelled_report

    for msg in labels.errors:
        say(f"label row left out: {msg}")
    res = score_probes(labels, model, protocol, array, k, n_boot, seed, progress, say)
    return LabelledEvalResult(res, write_labelled_report(res, out_dir, render_probe_markdown))
