"""Real labelled ECGs in every benchmark run: each embedding arm's kNN P(LVH) on real records.

The benchmark trains and indexes every arm on the synthetic phantom only. When a folder of real
labelled ECGs is there (by default `../shared/data/ecg/ptbxl`, PTB-XL's layout; or
`e2r eval --benchmark --real-ecgs DIR`), each embedding arm's index of phantom studies is searched
with every real record, exactly as `e2r eval --ecg-labels` does it
(queries.eval.labelled.score_labelled over a queries.search.Searcher): the real ECGs are queries
only, never indexed or fitted on. The arm's kNN P(LVH) is scored against the labels (AUROC with a
bootstrap CI, ECGs resampled), and beside it the clinical voltage rules (Sokolow-Lyon, Cornell)
on the same records, measured once per run and shared by the arms.

The labels come from reading the ECG (PTB-XL's cardiologists: voltage criteria and the report),
not from echo, while e2r's estimate is a vote of echo-measured walls; the section's title says
what it is: real ECGs, ECG-read labels, model trained on synthetic data only.

Beside the vote, every arm that reads ECGs (the SSL baseline, the supervised ceiling and the
criteria too) gets the linear probe of `e2r eval --protocol linear` on the same records
(`RealECGScorer.bundle` / `.criteria`, queries.eval.probes.probe_targets): LVH, and MI against
NORM, fitted and scored on the real ECGs themselves (PTB-XL's strat_fold 1-8 / 9 / 10, or the
repeated stratified k-fold when fold 10 holds too few positives), on the frozen pooled features
(the criteria: Sokolow-Lyon, Cornell, QRS duration, LBBB); AUROC with the bootstrap CI.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from e2r.errors import DataError
from queries.eval.labelled import N_BOOTSTRAP

log = logging.getLogger(__name__)

REAL_ECGS_TITLE = "Real ECGs, ECG-read labels, model trained on synthetic data only"
DEFAULT_REAL_ECGS = Path("../shared/data/ecg/ptbxl")  # relative to the working directory (the checkout)
PTBXL_DATABASE = "ptbxl_database.csv"
# What one arm's run keeps of score_labelled's LVH entry (the criteria are kept once per section).
_RUN_KEYS = ("auroc", "ci_low", "ci_high", "auprc", "positives", "negatives", "scored", "no_estimate")
# What one arm's run keeps of each linear-probe target entry (queries.eval.probes.probe_targets).
_PROBE_KEYS = ("name", "auroc", "ci_low", "ci_high", "auprc", "positives", "negatives", "labelled", "scored", "note")


def read_real_labels(path: str | Path) -> Any:
    """The labelled ECGs of `path` (an e2r.datasets.ecg_labels.LabelSet): a folder holding
    PTB-XL's ptbxl_database.csv (every strat_fold: nothing is fitted on these records), a folder of
    CinC 2021 records, or a labels CSV. DataError naming the path when there is nothing to read."""
    from e2r.datasets.ecg_labels import read_ecg_labels

    path = Path(path)
    if not path.exists():
        raise DataError(f"--real-ecgs {path}: no such folder; give PTB-XL's folder (with {PTBXL_DATABASE}), a "
                        "folder of CinC 2021 records or a labels CSV")
    if path.is_dir() and (path / PTBXL_DATABASE).is_file():
        return read_ecg_labels(path / PTBXL_DATABASE, "ptbxl", None)
    return read_ecg_labels(path, None, None)


class RealECGScorer:
    """`scorer(model_dir, collection)`: the kNN P(LVH) of the arm indexed in `collection` on the
    real labelled ECGs (BenchmarkSteps.score_real_ecgs). The voltage rules are measured on the
    first call and reused by every later arm."""

    def __init__(self, store: Any, labels: Any, k: Optional[int] = None, n_boot: int = N_BOOTSTRAP, seed: int = 0,
                 progress: bool = False, say: Callable[[str], None] = log.info):
        self.store, self.labels, self.k, self.n_boot, self.seed = store, labels, k, n_boot, seed
        self.progress, self.say = progress, say
        self._criteria: dict[str, Any] = {}
        self._inputs: dict[str, tuple[np.ndarray, list[str], int]] = {}
        self._plans: dict = {}  # the probes' split plans, shared by the arms (probes.probe_targets)

    def describe(self) -> dict[str, Any]:
        """What the section scores (for the benchmark's context): source, format, counts."""
        lvh = [it.lvh for it in self.labels.items if it.lvh is not None]
        return {"title": REAL_ECGS_TITLE, "source": self.labels.source, "format": self.labels.format,
                "listed": len(self.labels.items), "lvh_labelled": len(lvh), "lvh_positives": int(sum(lvh)),
                "rows_left_out": dict(self.labels.skipped), "bootstrap": self.n_boot, "seed": self.seed}

    def measure(self, paths: Sequence[str]) -> list:
        """e2r.ecg.criteria of each path, measured once per path over the whole run."""
        from queries.eval.criteria_arm import measure_rows

        todo = [p for p in dict.fromkeys(paths) if p not in self._criteria]
        if todo:
            self._criteria.update(zip(todo, measure_rows(todo)))
        return [self._criteria[p] for p in paths]

    def __call__(self, model_dir: Path, collection: str) -> dict[str, Any]:
        from queries.eval.labelled import score_labelled
        from queries.search import Searcher

        t0 = time.perf_counter()
        try:
            res = score_labelled(Searcher(self.store, collection), self.labels, self.k, self.n_boot, self.seed,
                                 self.progress, self.say, measure=self.measure)
        except DataError as err:  # e.g. no indexed study carries an LVH label: a note, not a failed benchmark
            return {"note": str(err), "wall_s": time.perf_counter() - t0}
        lvh = res["targets"].get("lvh") or {}
        out = {key: lvh.get(key) for key in _RUN_KEYS}
        out.update({"k": res["k"], "ecgs": res["ecgs"], "criteria": lvh.get("criteria"),
                    "wall_s": time.perf_counter() - t0})
        if lvh.get("note"):
            out["note"] = lvh["note"]
        return out


    def bundle(self, model_dir: Path) -> dict[str, Any]:
        """The linear probe on the pooled features of the bundle's ECG encoder (every arm that has one)."""
        from e2r.bundle import load_model
        from e2r.encode import encode_ecg_features

        loaded = load_model(model_dir)
        x, paths, unreadable = self.inputs(loaded.preset.ecg_preprocess)
        vectors = dict(zip(paths, encode_ecg_features(loaded, x)[0])) if paths else {}
        return self._probe(vectors, "pooled features of the ECG encoder", unreadable)

    def criteria(self) -> dict[str, Any]:
        """The linear probe on the criteria arm's vectors (queries.eval.features.CRITERIA_VECTOR) of each
        record; a record without a detectable beat is left out."""
        from queries.eval.criteria_arm import criteria_matrix
        from queries.eval.features import CRITERIA_VECTOR

        paths = [it.path for it in self.labels.items]
        measured = self.measure(paths)
        vectors = {p: criteria_matrix([c], CRITERIA_VECTOR)[0] for p, c in zip(paths, measured) if c is not None}
        return self._probe(vectors, "the clinical criteria (" + ", ".join(CRITERIA_VECTOR) + ")",
                           sum(c is None for c in measured))

    def inputs(self, preprocess_cfg: Any) -> tuple[np.ndarray, list[str], int]:
        """(preprocessed records (N, 12, T), their paths, how many could not be read), read once per
        preprocessing setting over the whole run and shared by the arms."""
        from e2r.ecg import read_for_model
        from e2r.errors import E2RError

        key = repr(preprocess_cfg)
        if key not in self._inputs:
            arrays, paths, bad = [], [], 0
            for path in dict.fromkeys(it.path for it in self.labels.items):
                try:
                    arrays.append(read_for_model(path, preprocess_cfg)[1].signal.astype(np.float32))
                    paths.append(path)
                except (E2RError, OSError, ValueError) as err:
                    bad += 1
                    log.warning("real ECGs: %s left out of the probe (%s)", path, err)
            x = np.stack(arrays) if arrays else np.zeros((0, 12, preprocess_cfg.n_samples), np.float32)
            self._inputs[key] = (x, paths, bad)
        return self._inputs[key]

    def _probe(self, vectors: dict[str, np.ndarray], what: str, left_out: int) -> dict[str, Any]:
        from queries.eval.probes import probe_targets

        t0 = time.perf_counter()
        targets = probe_targets(self.labels.items, vectors, "linear", n_boot=self.n_boot, seed=self.seed,
                                plans=self._plans)
        return {"vectors": what, "left_out": left_out, "wall_s": time.perf_counter() - t0,
                "targets": {t: {**{k: e.get(k) for k in _PROBE_KEYS}, "split": (e.get("split") or {}).get("rule"),
                                "C": e.get("C", e.get("C_chosen"))} for t, e in targets.items()}}


def aggregate_real_ecgs(arm_info: Mapping[str, Sequence[Mapping[str, Any]]],
                        context: Optional[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
    """results.json's `real_ecgs`: per arm the per-seed AUROC [CI] and mean +/- SD over seeds, the
    seconds scoring took per run, and the voltage rules once; None when the run had no section
    (context None: it was not asked for, e.g. `e2r eval --model`)."""
    if context is None:
        return None
    arms: dict[str, Any] = {}
    criteria = None
    for arm, runs in arm_info.items():
        scored = [(r.get("seed"), r["real_ecgs"], r.get("real_ecgs_s")) for r in runs if "real_ecgs" in r]
        if not scored:
            continue
        aurocs = np.array([s["auroc"] for _, s, _ in scored if s.get("auroc") is not None], dtype=np.float64)
        arms[arm] = {
            "per_seed": [{"seed": seed, **{k: v for k, v in s.items() if k != "criteria"}} for seed, s, _ in scored],
            "auroc": ([float(aurocs.mean()), float(aurocs.std(ddof=1)) if aurocs.size > 1 else 0.0]
                      if aurocs.size else None),
            "seconds_per_run": float(np.mean([t for _, _, t in scored if t is not None] or [0.0])),
        }
        criteria = criteria or next((s.get("criteria") for _, s, _ in scored if s.get("criteria")), None)
    return {**dict(context), "criteria": criteria, "arms": arms, "probe": aggregate_real_probe(arm_info)}


def aggregate_real_probe(arm_info: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """results.json's `real_ecgs.probe`: per arm that was probed, each seed's targets, the AUROC mean and
    SD over seeds per target (None where no seed could score it) and the seconds per run."""
    out: dict[str, Any] = {}
    for arm, runs in arm_info.items():
        probed = [(r.get("seed"), r["real_ecg_probe"], r.get("real_ecg_probe_s")) for r in runs if "real_ecg_probe" in r]
        if not probed:
            continue
        names = list(dict.fromkeys(t for _, p, _ in probed for t in p["targets"]))
        auroc = {}
        for t in names:
            v = np.array([p["targets"][t]["auroc"] for _, p, _ in probed
                          if p["targets"].get(t, {}).get("auroc") is not None], dtype=np.float64)
            auroc[t] = [float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0] if v.size else None
        out[arm] = {"vectors": probed[0][1]["vectors"], "auroc": auroc,
                    "per_seed": [{"seed": seed, **p} for seed, p, _ in probed],
                    "seconds_per_run": float(np.mean([t for _, _, t in probed if t is not None] or [0.0]))}
    return out
