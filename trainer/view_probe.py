"""What each echo view carries, read through a frozen echo tower (issue 21, item 5).

For every labelled clip of a cohort's train and val splits the frozen tower's encoder gives one
feature vector. A linear probe (ridge, the penalty chosen by leave-one-out on the train split)
fitted on the train split and scored on the val split then says how much of each phenotype a
view holds:

- one probe per view: fitted on that view's train clips, scored on its val clips;
- `clip`: one probe on every clip whatever its view (what a single clip of a study tells);
- `study`: one probe on the mean of each study's clip features (what the whole study tells).

The same probe reads the tower's own fields and the wall-motion score index (`wmsi`), which the
tower is not trained on, so every cell of the table is comparable. `view_expectations` checks
the table against the published ordering (issue 21): EchoPrime's per-view MIL weights, the ASE
chamber-quantification views, and the study-over-clip gain of EchoPrime / PanEcho features.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from e2r.phantom.check import CheckFigure

log = logging.getLogger(__name__)

VIEW_ORDER = ("A4C", "A2C", "PSAX", "PLAX")  # the phantom's views; other labels follow, sorted
CLIP, STUDY = "clip", "study"                # the two pooled rows of the table
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-2, 4, 13))  # on standardised features
MIN_CLIPS = 5                                # fewer train or val clips of a view: no cell

# Published figures the table is checked against (issue 21).
# LV and wall motion: EchoPrime MIL weights A2C 1.00, A4C 0.65, PSAX 0.71, PLAX 0.49; WM 1.00, 0.49,
# 0.48, 0.29; the ASE measures LVEF and volumes biplane from A4C + A2C.
LV_FIELDS = ("lvedv", "lvesv", "lvef", "wmsi")
WALL_FIELDS = ("ivsd", "lvpwd")              # ASE: IVSd from PLAX; LVH from PLAX, A4C, PSAX
LA_WELL_ABOVE = 0.2   # LA: EchoPrime A4C 1.00, A2C 0.67 vs PSAX 0.21, PLAX 0.01; "well above" = r margin
RV_ALMOST_NOTHING = 0.3  # RV: EchoPrime A2C 0.09 of A4C's 0.71; |r| below this is "almost nothing"
# Averaging a study's clips raised LVEF R2 from about 0.56 to 0.67-0.68 (EchoPrime and PanEcho
# features): a gain of about +0.115. "Of the published order" = within half to twice that.
STUDY_GAIN_PUBLISHED = 0.115
STUDY_GAIN_BAND = (0.5 * STUDY_GAIN_PUBLISHED, 2.0 * STUDY_GAIN_PUBLISHED)


@dataclass(frozen=True)
class ViewProbe:
    """The probe table: per row (a view, `clip`, `study`) and field, val Pearson r and R2."""

    fields: tuple[str, ...]
    rows: tuple[str, ...]
    r: dict[str, dict[str, float]]          # row -> field -> Pearson r on the val split (NaN = no cell)
    r2: dict[str, dict[str, float]]         # row -> field -> R2 on the val split
    n_val: dict[str, int]                   # row -> val clips (studies for `study`)
    n_train: dict[str, int]
    head_r: dict[str, dict[str, float]] = field(default_factory=dict)  # the tower's own head, per row
    summary: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class RidgeFit:
    """A fitted linear probe: prediction = ((x - mean) / sd) @ coef + intercept."""

    coef: np.ndarray       # (E,) on the standardised features
    intercept: float
    mean: np.ndarray       # (E,) train feature mean
    sd: np.ndarray         # (E,) train feature SD (1 where constant)
    alpha: float           # the penalty leave-one-out chose

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.sd) @ self.coef + self.intercept  # (n,)


def fit_ridge(x_train: np.ndarray, y_train: np.ndarray, alphas: Sequence[float] = RIDGE_ALPHAS) -> RidgeFit:
    """Ridge on standardised features (n, E) -> y (n,), the penalty by efficient leave-one-out
    (scikit-learn's RidgeCV) over `alphas`."""
    from sklearn.linear_model import RidgeCV

    mean, sd = x_train.mean(axis=0), x_train.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    model = RidgeCV(alphas=list(alphas)).fit((x_train - mean) / sd, y_train)
    return RidgeFit(np.asarray(model.coef_), float(model.intercept_), mean, sd, float(model.alpha_))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r, NaN when either side is constant or too short."""
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def r_squared(pred: np.ndarray, truth: np.ndarray) -> float:
    """1 - SSE / SST on the scored split (can be negative)."""
    sst = float(((truth - truth.mean()) ** 2).sum())
    return 1.0 - float(((truth - pred) ** 2).sum()) / sst if sst > 0 else float("nan")


def probe_cell(x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray) -> tuple[float, float]:
    """(r, R2) of a ridge probe fitted on (x_tr, y_tr) and scored on (x_va, y_va); NaN targets
    are left out; NaN when either side has fewer than MIN_CLIPS examples."""
    ok_tr, ok_va = np.isfinite(y_tr), np.isfinite(y_va)
    if ok_tr.sum() < MIN_CLIPS or ok_va.sum() < MIN_CLIPS:
        return float("nan"), float("nan")
    pred = fit_ridge(x_tr[ok_tr], y_tr[ok_tr]).predict(x_va[ok_va])
    return pearson(pred, y_va[ok_va]), r_squared(pred, y_va[ok_va])


def study_means(features: np.ndarray, targets: np.ndarray, study: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per study (index 0..max): the mean of its clips' features, and its targets (one row)."""
    n = int(study.max()) + 1 if len(study) else 0
    x = np.stack([features[study == k].mean(axis=0) for k in range(n)]) if n else features[:0]
    y = np.stack([targets[study == k][0] for k in range(n)]) if n else targets[:0]
    return x, y


def probe_table(f_tr: np.ndarray, y_tr: np.ndarray, views_tr: Sequence[str], study_tr: np.ndarray,
                f_va: np.ndarray, y_va: np.ndarray, views_va: Sequence[str], study_va: np.ndarray,
                fields: Sequence[str]) -> ViewProbe:
    """The table from per-clip features (n, E), targets (n, K; NaN = missing), view labels and
    study indices of the train and val clips."""
    vtr, vva = np.asarray(views_tr), np.asarray(views_va)
    present = set(vtr) & set(vva)
    views = [v for v in VIEW_ORDER if v in present] + sorted(present - set(VIEW_ORDER))
    sets = {v: (vtr == v, vva == v) for v in views}
    sets[CLIP] = (np.ones(len(vtr), bool), np.ones(len(vva), bool))
    r: dict[str, dict[str, float]] = {}
    r2: dict[str, dict[str, float]] = {}
    n_val, n_train = {}, {}
    for row, (str_, sva) in sets.items():
        cells = [probe_cell(f_tr[str_], y_tr[str_, j], f_va[sva], y_va[sva, j]) for j in range(len(fields))]
        r[row] = {f: c[0] for f, c in zip(fields, cells)}
        r2[row] = {f: c[1] for f, c in zip(fields, cells)}
        n_train[row], n_val[row] = int(str_.sum()), int(sva.sum())
    xs_tr, ys_tr = study_means(f_tr, y_tr, study_tr)
    xs_va, ys_va = study_means(f_va, y_va, study_va)
    cells = [probe_cell(xs_tr, ys_tr[:, j], xs_va, ys_va[:, j]) for j in range(len(fields))]
    r[STUDY] = {f: c[0] for f, c in zip(fields, cells)}
    r2[STUDY] = {f: c[1] for f, c in zip(fields, cells)}
    n_train[STUDY], n_val[STUDY] = len(xs_tr), len(xs_va)
    return ViewProbe(tuple(fields), (*views, CLIP, STUDY), r, r2, n_val, n_train)


def probe_views(tower_dir: str | Path, cohort: str | Path, cache_dir: str | Path, workers: int = 2,
                progress: bool = False, batch_size: int = 64) -> ViewProbe:
    """The probe table of a cohort (pairs CSV + phenotypes.csv + archive, as `e2r train-echo`
    reads it) under a frozen tower; `wmsi` joins the tower's fields when the CSV carries it."""
    import torch

    from e2r.echo_tower import load_echo_tower
    from e2r.encode import encode_videos
    from trainer.config import make_train_config
    from trainer.echo_pretrain import ECHO_DEFAULTS, load_echo_data

    tower, meta = load_echo_tower(tower_dir)
    tower_fields = tuple(meta["fields"])
    cfg = make_train_config(cohort, cache_dir, defaults=ECHO_DEFAULTS, cache_dir=str(cache_dir),
                            workers=workers, progress=progress)
    data = load_echo_data(cfg, tower.cfg, (*tower_fields, "wmsi"), min_studies=2)  # wmsi dropped if absent

    rows = np.unique(np.concatenate([data.train_rows, data.val_rows]))  # sorted: the memmap reads in order
    feats = np.concatenate([encode_videos(tower.encoder, tower.cfg,
                                          [np.asarray(data.videos[i]) for i in rows[k:k + batch_size]],
                                          batch_size=batch_size)
                            for k in range(0, len(rows), batch_size)]) if len(rows) else np.zeros((0, 1))
    at = {int(row): i for i, row in enumerate(rows)}
    f_tr = feats[[at[int(i)] for i in data.train_rows]]
    f_va = feats[[at[int(i)] for i in data.val_rows]]
    table = probe_table(f_tr, data.train_targets, data.train_views, data.train_study,
                        f_va, data.val_targets, data.val_views, data.val_study, data.fields)

    # The tower's own head on the same clips (what `e2r train-echo` reports per view), for reference.
    with torch.no_grad():
        head = tower.head(torch.from_numpy(f_va)).numpy()  # (n_val, len(tower_fields)) z-scored
    cols = [(f, tower_fields.index(f), data.fields.index(f)) for f in tower_fields if f in data.fields]
    views_va = np.asarray(data.val_views)
    head_r = {}
    for row in table.rows[:-1]:
        sel = np.ones(len(views_va), bool) if row == CLIP else views_va == row
        head_r[row] = {}
        for f, jh, jd in cols:
            ok = sel & np.isfinite(data.val_targets[:, jd])
            head_r[row][f] = pearson(head[ok, jh], data.val_targets[ok, jd])
    summary = {"tower": str(tower_dir), "tower_hash": meta["hash"], "cohort": str(cohort),
               "train_studies": data.summary.get("train_studies"), "val_studies": data.summary.get("val_studies"),
               "probe": f"ridge on standardised {feats.shape[1]}-d tower features, alpha by leave-one-out "
                        f"over {RIDGE_ALPHAS[0]:g}..{RIDGE_ALPHAS[-1]:g}, fitted on train, scored on val"}
    return ViewProbe(table.fields, table.rows, table.r, table.r2, table.n_val, table.n_train, head_r, summary)


def _r(table: ViewProbe, row: str, f: str) -> float:
    return table.r.get(row, {}).get(f, float("nan"))


def _fmt(table: ViewProbe, f: str, views: Sequence[str]) -> str:
    return ", ".join(f"{v} {_r(table, v, f):.2f}" for v in views)


def view_expectations(table: ViewProbe) -> list[CheckFigure]:
    """The table against the published ordering (module doc), one figure per expectation. The
    value is the margin by which it holds (negative: by how much it fails); a missing view or
    field fails with NaN."""
    out: list[CheckFigure] = []
    apical = ("A4C", "A2C")
    for f in (x for x in LV_FIELDS if x in table.fields):
        a4c, a2c, psax, plax = (_r(table, v, f) for v in VIEW_ORDER)
        margin = min(max(a4c, a2c) - psax, psax - plax, min(a4c, a2c) - plax)
        out.append(CheckFigure(f"views {f}: A2C/A4C > PSAX > PLAX", margin, "> 0", bool(margin > 0),
                               _fmt(table, f, VIEW_ORDER)))
    for f in (x for x in WALL_FIELDS if x in table.fields):
        margin = max(_r(table, "PLAX", f), _r(table, "PSAX", f)) - max(_r(table, v, f) for v in apical)
        out.append(CheckFigure(f"views {f}: PLAX/PSAX best", margin, "> 0", bool(margin > 0),
                               _fmt(table, f, VIEW_ORDER)))
    if "la_volume" in table.fields:
        f = "la_volume"
        a4c, a2c, psax, plax = (_r(table, v, f) for v in VIEW_ORDER)
        margin = min(a4c - a2c, min(a4c, a2c) - max(psax, plax) - LA_WELL_ABOVE)
        out.append(CheckFigure(f"views {f}: A4C > A2C >> PSAX/PLAX", margin,
                               f"> 0 (apical {LA_WELL_ABOVE:g} above)", bool(margin > 0), _fmt(table, f, VIEW_ORDER)))
    if "rv_diameter" in table.fields:
        f = "rv_diameter"
        a4c, a2c, psax, plax = (_r(table, v, f) for v in VIEW_ORDER)
        margin = min(a4c - max(psax, plax), RV_ALMOST_NOTHING - abs(a2c))
        out.append(CheckFigure(f"views {f}: A4C > PSAX/PLAX, A2C ~ 0", margin,
                               f"> 0 (|A2C| < {RV_ALMOST_NOTHING:g})", bool(margin > 0), _fmt(table, f, VIEW_ORDER)))
    if "lvef" in table.fields:
        clip, study = table.r2.get(CLIP, {}).get("lvef", np.nan), table.r2.get(STUDY, {}).get("lvef", np.nan)
        gain = study - clip
        lo, hi = STUDY_GAIN_BAND
        out.append(CheckFigure("study over one clip: lvef R2 gain", gain, f"{lo:.3f}..{hi:.3f}",
                               bool(lo <= gain <= hi),
                               f"clip R2 {clip:.2f} -> study R2 {study:.2f} (published 0.56 -> 0.67-0.68)"))
    return out


def format_table(table: ViewProbe, values: Optional[dict[str, dict[str, float]]] = None) -> list[dict[str, Any]]:
    """Rows for e2r.cli.common.print_table: one per view / clip / study, a column per field."""
    values = table.r if values is None else values
    out = []
    for row in table.rows:
        if row not in values:
            continue
        cells = {f: (f"{v:.2f}" if np.isfinite(v := values[row].get(f, np.nan)) else "-") for f in table.fields}
        out.append({"row": row, "val n": table.n_val.get(row, 0), **cells})
    return out
