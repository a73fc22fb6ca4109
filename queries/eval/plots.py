"""The benchmark's PNG plots (matplotlib, Agg backend, no display needed):

- roc_lvef_le45.png: ROC curves for LVEF <= 45 % per arm, the test predictions of all seeds pooled
  (cross-modal kNN for embedding arms, priors for chance, direct for the supervised ceiling);
- recall_at_k.png: ECG -> echo Recall@K (exact pair and phenotype-aware), mean over seeds;
- lvef_pred_vs_true.png: LVEF estimate vs measured LVEF per arm (first seed).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# Which prediction of an arm the plots show, in order of preference.
_METHODS = ("cross_modal_knn", "direct", "prior")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _prediction(ev: Any):
    for m in _METHODS:
        if m in ev.raw:
            return m, ev.raw[m]
    return None, None


def write_plots(result: Any, out_dir: Path) -> list[str]:
    """Write the three plots; returns their paths."""
    plt = _pyplot()
    labels = {a: result.results["arms"][a]["label"] for a in result.evals}
    synthetic = " (synthetic phantom data)" if result.results.get("synthetic") else ""
    paths = [
        _roc(plt, result.evals, labels, out_dir / "roc_lvef_le45.png", synthetic),
        _recall(plt, result.evals, labels, out_dir / "recall_at_k.png", synthetic),
        _scatter(plt, result.evals, labels, out_dir / "lvef_pred_vs_true.png", synthetic),
    ]
    return [str(p) for p in paths]


def _roc(plt, evals, labels, path: Path, note: str) -> Path:
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(5.5, 5))
    for arm, runs in evals.items():
        ys, ps = [], []
        for ev in runs:
            _, pred = _prediction(ev)
            if pred is None:
                continue
            ys.append(ev.raw["truth"]["le45"])
            ps.append(pred.p_le45)
        if not ys:
            continue
        y, p = np.concatenate(ys), np.concatenate(ps)
        keep = np.isfinite(y) & np.isfinite(p)
        y, p = y[keep], p[keep]
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=f"{labels[arm]} (AUROC {roc_auc_score(y, p):.2f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"LVEF <= 45 %, test ECGs{note}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")
    fig.text(0.01, 0.01, "seeds pooled", fontsize=6, color="grey")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _recall(plt, evals, labels, path: Path, note: str) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, rel, title in zip(axes, ("exact", "phenotype"), ("exact pair", "phenotype-aware")):
        for arm, runs in evals.items():
            curves = [ev.curves.get(f"ecg_to_echo/{rel}") for ev in runs]
            curves = [c for c in curves if c]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            mean = np.nanmean(np.array([c[:n] for c in curves]), axis=0)
            ax.plot(np.arange(1, n + 1), mean, label=labels[arm])
        ax.set(xlabel="K", title=f"ECG -> echo Recall@K, {title}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Recall@K (mean over seeds)")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Gallery: test studies{note}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _scatter(plt, evals, labels, path: Path, note: str) -> Path:
    shown = [(arm, runs[0]) for arm, runs in evals.items() if runs and _prediction(runs[0])[1] is not None]
    n = max(1, len(shown))
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    for ax, (arm, ev) in zip(axes.flat, shown):
        method, pred = _prediction(ev)
        y = ev.raw["truth"]["lvef"]
        ax.scatter(y, pred.lvef, s=10, alpha=0.7)
        lo = float(np.nanmin(np.concatenate([y, pred.lvef]))) if np.isfinite(y).any() else 0.0
        hi = float(np.nanmax(np.concatenate([y, pred.lvef]))) if np.isfinite(y).any() else 80.0
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls=":")
        ax.set(title=f"{labels[arm]}\n({method.replace('_', ' ')})", xlabel="measured LVEF (%)",
               ylabel="estimated LVEF (%)")
        ax.title.set_fontsize(8)
    fig.suptitle(f"LVEF estimate vs measured, test ECGs, first seed{note}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
