"""Does a written cohort mean what it claims? Measure the files, correlate with the phenotypes.

Reads only what is on disk (WFDB via wfdb, DICOM via pydicom, the two CSVs): the figures are what
any reader of the cohort would find, not properties of the generator's internals.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from e2r.errors import DataError
from e2r.phantom.measure import (
    EchoGeometry,
    fractional_area_change,
    lv_function_by_view,
    measure_ecg,
    plax_septum_mm,
    pool_area_near,
)
from e2r.phantom.qwaves import FACING_LEADS, measure_qwaves

log = logging.getLogger(__name__)
_CANON = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")
# Where a reader looks for the RV (lateral, depth from the probe, cm): left of the septum in A4C,
# anterior-left of the LV in PSAX; A2C and PLAX are probed at the A4C position.
_RV_TARGET_CM = {"A4C": (-3.0, 6.0), "PSAX": (-1.5, 5.0), "A2C": (-3.0, 6.0), "PLAX": (-3.0, 6.0)}


@dataclass(frozen=True)
class CheckFigure:
    """One figure of the report: its value, the bar it must pass, and whether it does."""

    name: str
    value: float
    threshold: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class CohortCheck:
    """All figures, with the sample sizes they rest on."""

    out_dir: str
    n_ecgs: int
    n_videos: int
    figures: tuple[CheckFigure, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        """True when something was measured and every figure passes its bar."""
        return bool(self.figures) and all(f.passed for f in self.figures)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {"out_dir": self.out_dir, "n_ecgs": self.n_ecgs, "n_videos": self.n_videos,
                "passed": self.passed, "figures": [asdict(f) for f in self.figures]}


def cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """Standardised mean difference with the pooled SD."""
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    return float((a.mean() - b.mean()) / pooled)


def _spearman(x: list[float], y: list[float]) -> tuple[float, int]:
    """Rank correlation over the finite pairs: robust to the odd clip where segmentation slips."""
    from scipy.stats import spearmanr

    a, b = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 5:
        return float("nan"), int(ok.sum())
    return float(spearmanr(a[ok], b[ok]).statistic), int(ok.sum())


def read_canonical_wfdb(path: Path) -> tuple[np.ndarray, float]:
    """A WFDB record as (12, T) mV in canonical lead order (reordered by lead name)."""
    import wfdb

    rec = wfdb.rdrecord(str(path.with_suffix("")))
    names = [n.lower() for n in rec.sig_name]
    missing = [c for c in _CANON if c not in names]
    if missing:
        raise DataError(f"{path}: leads {missing} missing; the phantom writes all 12")
    sig = rec.p_signal.T[[names.index(c) for c in _CANON]]
    return sig, float(rec.fs)


def check_cohort(out_dir: str | Path, max_ecgs: int | None = None, max_videos: int | None = None,
                 progress: bool = False) -> CohortCheck:
    """Measure the cohort in out_dir and return the figures (see module docstring)."""
    import pydicom

    from e2r.phenotypes import read_phenotypes
    from e2r.progress import progress_bar

    out = Path(out_dir)
    if not (out / "phenotypes.csv").is_file() or not (out / "pairs.csv").is_file():
        raise DataError(f"{out}: no phenotypes.csv/pairs.csv; run `e2r synth {out}` first")
    phen, _ = read_phenotypes(out / "phenotypes.csv")
    with (out / "pairs.csv").open(newline="") as fh:
        pairs = [r for r in csv.DictReader(fh) if r["ecg_path"]]
    pairs = pairs[:max_ecgs] if max_ecgs else pairs

    ecg_rows, q_rows = [], []
    for row in progress_bar(pairs, desc="check ECGs", disable=not progress):
        sig, fs = read_canonical_wfdb(out / row["ecg_path"])
        p = phen[row["study_uid"]]
        ecg_rows.append((measure_ecg(sig, fs), p))
        if p.get("territory"):  # generator version 2: does the ECG see the infarct?
            q_rows.append((measure_qwaves(sig, fs), p["territory"]))

    files = sorted((out / "echo").rglob("*.dcm"))
    files = files[:max_videos] if max_videos else files
    echo: dict[str, list[tuple[float, float]]] = {}
    for path in progress_bar(files, desc="check videos", disable=not progress):
        ds = pydicom.dcmread(path)
        region = ds.SequenceOfUltrasoundRegions[0]
        geo = EchoGeometry(float(region.ReferencePixelX0), float(region.ReferencePixelY0), float(region.PhysicalDeltaX))
        frames = ds.pixel_array
        view, p = str(ds.SeriesDescription), phen[str(ds.StudyInstanceUID)]
        rec = {"view": view, "lvef": p["lvef"], "ivsd": p["ivsd"], "rv": p["rv_diameter"],
               "rv_pool": pool_area_near(frames, geo, _RV_TARGET_CM.get(view, (-3.0, 6.0)))}
        if view in ("A4C", "A2C", "PSAX"):
            rec["fac"] = fractional_area_change(frames, view, geo)
        if view == "PLAX":
            rec["septum_mm"] = plax_septum_mm(frames, geo)
        if p.get("territory"):           # generator version 2: wall motion by territory
            rec["territory"] = p["territory"]
            rec["lv_function"] = rec["fac"] if "fac" in rec else lv_function_by_view(frames, view, geo)
        echo.setdefault(view, []).append(rec)  # type: ignore[arg-type]

    figures = _ecg_figures(ecg_rows) + _qwave_figures(q_rows) + _echo_figures(echo)
    return CohortCheck(out_dir=str(out), n_ecgs=len(ecg_rows), n_videos=len(files), figures=tuple(figures))


def _ecg_figures(rows: list) -> list[CheckFigure]:
    figs: list[CheckFigure] = []
    if not rows:
        return figs
    sl = np.array([m.sokolow_lyon_mv for m, _ in rows])
    lvh = np.array([bool(p["lvh"]) for _, p in rows])
    d = cohens_d(sl[lvh], sl[~lvh])
    figs.append(CheckFigure(
        "sokolow_lyon_cohens_d", d, "> 0.8", bool(d > 0.8),
        f"SV1+RV5/6 {sl[lvh].mean():.2f} mV with wall>=13 mm (n={lvh.sum()}) vs {sl[~lvh].mean():.2f} mV (n={(~lvh).sum()})"
        if lvh.any() and (~lvh).any() else "one group empty"))
    qrs = np.array([m.qrs_ms for m, _ in rows])
    red = np.array([p["lvef"] < 40 for _, p in rows])
    diff = float(qrs[red].mean() - qrs[~red].mean()) if red.any() and (~red).any() else float("nan")
    figs.append(CheckFigure(
        "qrs_ms_lvef_lt40_minus_rest", diff, "> 10 ms", bool(diff > 10),
        f"QRS {qrs[red].mean():.0f} ms with LVEF<40 (n={red.sum()}) vs {qrs[~red].mean():.0f} ms (n={(~red).sum()})"
        if red.any() and (~red).any() else "one group empty"))
    af = np.array([p["rhythm"] == "af" for _, p in rows])
    cons = np.array([m.p_consistency for m, _ in rows])
    rr_cv = np.array([m.rr_cv for m, _ in rows])
    if af.any() and (~af).any():
        no_p = float(np.mean(cons[af] < 0.7))
        p_sinus = float(np.mean(cons[~af] >= 0.7))
        figs.append(CheckFigure("af_records_without_p", no_p, ">= 0.9", no_p >= 0.9,
                                f"{af.sum()} AF records; sinus records with P waves: {p_sinus:.2f}"))
        figs.append(CheckFigure(
            "af_rr_cv_median", float(np.median(rr_cv[af])), "> 2x sinus", bool(np.median(rr_cv[af]) > 2 * np.median(rr_cv[~af])),
            f"RR CV median {np.median(rr_cv[af]):.3f} in AF vs {np.median(rr_cv[~af]):.3f} in sinus"))
    figs += _ecg_learnability(rows)
    return figs


def _qwave_figures(rows: list) -> list[CheckFigure]:
    """Generator version 2: for each infarcted territory, the share of its ECGs with pathological
    Q waves in two contiguous facing leads (qwaves.FACING_LEADS) minus the share with them in the
    other territories' leads. Single-territory infarcts only; PTB-XL's labelled infarcts give
    0.27-0.49 facing against <= 0.14 elsewhere (docs/phantom.md)."""
    figs: list[CheckFigure] = []
    for t in FACING_LEADS:
        ms = [m for m, terr in rows if terr == t]
        if len(ms) < 10:  # fewer infarcts than that: a rate too noisy to judge
            continue
        facing = float(np.mean([t in m.groups for m in ms]))
        others = [u for u in FACING_LEADS if u != t]
        other = float(np.mean([[u in m.groups for u in others] for m in ms]))
        none = [m for m, terr in rows if terr == "none"]
        base = f"; no infarct: {np.mean([t in m.groups for m in none]):.2f} (n={len(none)})" if none else ""
        figs.append(CheckFigure(
            f"ecg_q_{t}_facing_minus_other_leads", facing - other, "> 0.05", bool(facing - other > 0.05),
            f"{t} infarcts (n={len(ms)}): Q in its facing leads {facing:.2f}, in the other groups {other:.2f}{base}"))
    return figs


def _ecg_learnability(rows: list) -> list[CheckFigure]:
    """Cross-validated AUROC of a logistic regression on the downsampled median beat: a floor on
    what a small model can learn from these ECGs."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    feats = []
    for m, _ in rows:
        beat = m.median_beat
        idx = np.linspace(0, beat.shape[1] - 1, 45).astype(int)
        feats.append(np.r_[beat[:, idx].ravel(), m.qrs_ms / 100, m.rr_cv * 10, m.p_consistency])
    x = np.nan_to_num(np.array(feats))
    figs = []
    for name, y in (("lvef_le45", [p["lvef_le45"] for _, p in rows]), ("lvh", [p["lvh"] for _, p in rows])):
        y = np.asarray(y, int)
        if len(y) < 40 or min(y.sum(), (1 - y).sum()) < 8:
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))
        cv = StratifiedKFold(5, shuffle=True, random_state=0)
        prob = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
        auc = float(roc_auc_score(y, prob))
        figs.append(CheckFigure(f"ecg_auroc_{name}", auc, "> 0.65", auc > 0.65,
                                f"5-fold logistic regression on median beats, n={len(y)}, positives={y.sum()}"))
    return figs


def _echo_figures(echo: dict[str, list[dict]]) -> list[CheckFigure]:
    figs: list[CheckFigure] = []
    apical = echo.get("A4C", []) + echo.get("A2C", [])
    if apical:
        r, n = _spearman([v["fac"] for v in apical], [v["lvef"] for v in apical])
        figs.append(CheckFigure("a4c_a2c_area_change_vs_lvef_spearman", r, "> 0.7", bool(r > 0.7),
                                f"LV fractional area change from pixels, n={n} videos"))
    if echo.get("PLAX"):
        plax = echo["PLAX"]
        r, n = _spearman([v["septum_mm"] for v in plax], [v["ivsd"] for v in plax])
        figs.append(CheckFigure("plax_septum_vs_ivsd_spearman", r, "> 0.6", bool(r > 0.6),
                                f"septal thickness between the LV and RVOT pools in PLAX, n={n} videos"))
    rv = {}
    for view in ("A4C", "PSAX", "A2C", "PLAX"):
        if echo.get(view):
            rv[view] = _spearman([v["rv_pool"] for v in echo[view]], [v["rv"] for v in echo[view]])
    detail = ", ".join(f"{k} r={v[0]:.2f} (n={v[1]})" for k, v in rv.items())
    shown = [rv[v][0] for v in ("A4C", "PSAX") if v in rv]
    hidden = [abs(rv[v][0]) for v in ("A2C", "PLAX") if v in rv]
    if shown and hidden:
        gap = float(min(shown) - max(hidden))
        figs.append(CheckFigure("rv_visible_minus_hidden_spearman", gap, "> 0.25", bool(gap > 0.25),
                                f"area of the blood pool where the RV sits vs RV diameter: {detail}"))
    figs += _regional_figures(echo)
    return figs


def regional_function_table(echo: dict[str, list[dict]]) -> dict[tuple[str, str], tuple[float, int]]:
    """(territory, view) -> (relative drop of the median LV function against hearts with no
    wall-motion abnormality, n clips), over single-territory studies: area change in A4C / A2C /
    PSAX, fractional shortening in PLAX (measure.lv_function_by_view)."""
    from e2r.phantom.regional import TERRITORIES

    table = {}
    for view, recs in echo.items():
        by_t: dict[str, list[float]] = {}
        for r in recs:
            if r.get("territory") and np.isfinite(r.get("lv_function", np.nan)):
                by_t.setdefault(r["territory"], []).append(r["lv_function"])
        if len(by_t.get("none", [])) < 3:
            continue
        ref = float(np.median(by_t["none"]))
        for t in TERRITORIES:
            if len(by_t.get(t, [])) >= 3:
                table[(t, view)] = (1 - float(np.median(by_t[t])) / ref, len(by_t[t]))
    return table


def _regional_figures(echo: dict[str, list[dict]]) -> list[CheckFigure]:
    """An infarct lowers the LV function only in the views that cut its territory: the mean drop
    over the (territory, view) cells whose view cuts a segment of the territory minus the mean over
    those whose does not (LCx in A2C, RCA in PLAX; regional.VIEW_SEGMENTS)."""
    from e2r.phantom.regional import TERRITORY_SEGMENTS, VIEW_SEGMENTS

    table = regional_function_table(echo)
    cut = [d for (t, v), (d, _) in table.items() if set(TERRITORY_SEGMENTS[t]) & set(VIEW_SEGMENTS[v])]
    uncut = [d for (t, v), (d, _) in table.items() if not set(TERRITORY_SEGMENTS[t]) & set(VIEW_SEGMENTS[v])]
    if not cut or not uncut:
        return []
    gap = float(np.mean(cut) - np.mean(uncut))
    detail = ", ".join(f"{t}/{v} {d:+.2f} (n={n})" for (t, v), (d, n) in sorted(table.items()))
    return [CheckFigure("regional_drop_cut_minus_uncut_views", gap, "> 0.1", bool(gap > 0.1),
                        f"relative drop of area change (PLAX: FS) against no infarct: {detail}")]
