"""The benchmark protocol: every arm on the same data and splits, seeds, aggregation, the report.

Arms (../shared/SPEC.md, "Evaluation protocol"):

- `chance`: a random similarity for retrieval, the train split's class priors for classification;
- `criteria`: the clinical ECG criteria (Sokolow-Lyon, Cornell, QRS duration, LBBB) measured on
  the raw mV records, one logistic model per target fitted on the train split, and the raw
  voltage rules (queries.eval.criteria_arm); classification only, deterministic, run once;
- `random-init`: an untrained Echo2ECG of the same preset (seeded), indexed and searched like a
  trained one;
- `ssl`: the same ECG encoder trained on the same training ECGs for the same epochs with SimCLR
  between two augmented views of one ECG (trainer.ssl), no echo at all: the paper's unimodal
  baseline; it has no echo side, so it is scored as a feature extractor only;
- `echo-tower`: the frozen echo tower alone (pretrained on the train split's measurements):
  echo -> echo phenotype-aware retrieval and kNN, the ceiling of what the ECG can inherit;
- `single-view`, `mean`, `attention`: Echo2ECG aligned with that study aggregation to the seed's
  frozen tower (one tower per seed, shared by the three; `attention` is Echo2ECG's multi-view
  alignment);
- `supervised`: the same ECG encoder trained directly on the phenotypes (the ceiling;
  classification only, retrieval does not apply);
- `model`: a user's own model bundle (`e2r eval --model`).

Every arm that reads ECGs is also scored as a feature extractor (queries.eval.features: the kNN and
linear probes on the frozen pooled features of the train / test ECGs; the criteria arm's vectors are
its criteria), and, when real labelled ECGs are there, by the linear probe on them
(`BenchmarkSteps.probe_real_ecgs`, queries.eval.real_ecgs).

This module holds the protocol only. Tower pretraining, training, indexing and supervised
training are injected as callables (`BenchmarkSteps`) because queries/ must not import trainer/
or indexer/; the CLI (e2r/cli/eval_cmd.py) wires the real ones in. So is the scoring of real
labelled ECGs against each embedding arm's index (`score_real_ecgs`, queries.eval.real_ecgs).
`BenchmarkSpec.ecg_normalise` picks the ECG input of every arm that reads ECGs (the trained
arms, random-init, the supervised ceiling), so that one benchmark per choice is an ablation. Each embedding arm is indexed into its own
collection of the real store, its study vectors are read back from the store, and its test ECGs
are encoded with e2r.encode, so the numbers measure the path `e2r index` / `e2r search` take.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from e2r.errors import ConfigError, DataError
from queries.eval.data import LoadedECGs, Splits, load_ecgs, read_splits
from queries.eval.arms import (
    ArmEval,
    evaluate_tower,
    EmbeddingSet,
    EvalSettings,
    PhenotypePredictions,
    evaluate_chance,
    evaluate_direct,
    evaluate_embeddings,
    relevance_sd,
)
from queries.eval.aggregate import mean_sd

log = logging.getLogger(__name__)

ARMS = ("chance", "criteria", "random-init", "ssl", "echo-tower", "single-view", "mean", "attention", "supervised")
ALIGNMENT_ARMS = ("single-view", "mean", "attention")  # arm name == trainer aggregation mode
SINGLE_RUN_ARMS = ("criteria",)  # deterministic: one run, not one per seed
ARM_LABELS = {
    "chance": "Chance",
    "criteria": "Clinical ECG criteria (no e2r)",
    "random-init": "Random-init Echo2ECG",
    "ssl": "ECG-only SSL (SimCLR)",
    "echo-tower": "Echo tower alone (echo -> echo)",
    "single-view": "Single-view alignment",
    "mean": "Mean-pooling alignment",
    "attention": "Echo2ECG (attention pooling)",
    "supervised": "Supervised ECG->phenotype (ceiling)",
    "model": "Your model",
}


@dataclass(frozen=True)
class ECGTrainingTask:
    """What an ECG-only arm (the supervised ceiling, the SSL baseline) trains and predicts on:
    preprocessed ECG windows (N, 12, T) and the phenotype rows of their paired studies (the SSL arm
    reads them for its validation kNN only)."""

    train_x: np.ndarray
    train_rows: Sequence[Optional[Mapping[str, Any]]]
    val_x: np.ndarray
    val_rows: Sequence[Optional[Mapping[str, Any]]]
    test_x: np.ndarray
    preset: Any  # the ModelPreset (the benchmark's, with its ECG input)
    seed: int
    out_dir: Path


@dataclass(frozen=True)
class BenchmarkSteps:
    """The injected work. `pretrain_tower(seed, out_dir)` pretrains the seed's echo tower and
    returns a dict with at least "tower_dir"; `train(arm, seed, out_dir, tower_dir)` aligns an arm
    (arm is the aggregation mode; tower_dir None without a pretrain step) and returns a dict with
    at least "model_dir"; `tower_studies(tower_dir)` gives {study_uid: (V, E) per-video
    embeddings} of every archive study; `index(model_dir, collection)` indexes the archive into
    that collection of `store` and returns its summary dict; `train_supervised(task)` returns
    (test predictions, info dict; its "model_dir", when there, an ECG-only bundle of the ceiling's
    encoder, scored as a feature extractor); `train_ssl(task)` trains the SSL arm into task.out_dir
    and returns a dict with at least "model_dir"."""

    store: Any
    index: Callable[[Path, str], Mapping[str, Any]]
    train: Optional[Callable[[str, int, Path, Optional[Path]], Mapping[str, Any]]] = None
    pretrain_tower: Optional[Callable[[int, Path], Mapping[str, Any]]] = None
    tower_studies: Optional[Callable[[Path], Mapping[str, np.ndarray]]] = None
    train_supervised: Optional[Callable[[ECGTrainingTask], tuple[PhenotypePredictions, Mapping[str, Any]]]] = None
    train_ssl: Optional[Callable[[ECGTrainingTask], Mapping[str, Any]]] = None
    random_init: Optional[Callable[[Any, int, Path], Path]] = None  # (ModelPreset, seed, out); default: make_random_bundle
    # (model_dir, collection) -> the arm's kNN P(LVH) on real labelled ECGs (queries.eval.real_ecgs)
    score_real_ecgs: Optional[Callable[[Path, str], Mapping[str, Any]]] = None
    # the linear probe on real labelled ECGs: .bundle(model_dir) and .criteria() (queries.eval.real_ecgs.RealECGScorer)
    probe_real_ecgs: Optional[Any] = None


@dataclass(frozen=True)
class BenchmarkSpec:
    """What to run and where (everything here goes into results.json)."""

    pairs_csv: Path
    phenotypes_csv: Path
    workdir: Path                  # models of every arm and seed
    out_dir: Path                  # results.json, report.md, plots
    preset: str = "tiny"
    ecg_normalise: Optional[str] = None  # ECG input of the ECG arms (e2r.ecg.preprocess.NORMALISE_MODES); None: the preset's
    towers_dir: Optional[Path] = None    # echo towers (default: workdir); shared by runs that differ in the ECG input only
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[str, ...] = ARMS
    settings: EvalSettings = field(default_factory=EvalSettings)
    models: Mapping[str, str] = field(default_factory=dict)       # fixed bundles by arm (--model)
    collections: Mapping[str, str] = field(default_factory=dict)  # collection by arm (default bench-ARM-seedS)
    drop_stale_collections: bool = True  # benchmark-owned collections built with another model are dropped
    data_label: str = "synthetic phantom cohort"
    synthetic: bool = True
    context: Mapping[str, Any] = field(default_factory=dict)       # cohort manifest, command, training settings

    def validate(self) -> "BenchmarkSpec":
        """ConfigError naming the setting when the spec cannot run."""
        known = set(ARMS) | set(self.models)
        unknown = [a for a in self.arms if a not in known]
        if unknown:
            raise ConfigError(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
        if not self.seeds:
            raise ConfigError("--seeds: at least one seed is needed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds {self.seeds} repeat a value; give distinct seeds")
        check_ecg_normalise(self.ecg_normalise)
        return self

    def model_preset(self) -> Any:
        """The arms' ModelPreset: `preset` with `ecg_normalise` applied."""
        from e2r.presets import get_preset, with_overrides

        preset = get_preset(self.preset)
        if self.ecg_normalise and self.ecg_normalise != preset.ecg_preprocess.normalise:
            preset = with_overrides(preset, ecg_preprocess__normalise=self.ecg_normalise)
        return preset


def check_ecg_normalise(value: Optional[str]) -> None:
    """ConfigError naming the valid choices when `value` (--ecg-normalise) is not None or one of them."""
    from e2r.ecg.preprocess import NORMALISE_MODES

    if value is not None and value not in NORMALISE_MODES:
        raise ConfigError(f"--ecg-normalise {value}: choose one of {', '.join(NORMALISE_MODES)}")


@dataclass
class BenchmarkResult:
    """Aggregated numbers (`results`, the results.json document) and per-seed evaluations (plots)."""

    results: dict[str, Any]
    evals: dict[str, list[ArmEval]]
    out_files: list[str] = field(default_factory=list)


def make_random_bundle(preset: Any, seed: int, out_dir: Path) -> Path:
    """The random-init arm's model: an untrained Echo2ECG of `preset` (a ModelPreset or a preset
    name) seeded with `seed`, in out_dir."""
    from e2r.bundle import save_untrained_bundle

    save_untrained_bundle(preset, seed, out_dir, note="benchmark random-init arm")
    return Path(out_dir)


class _ECGCache:
    """Test / train / val ECGs read and preprocessed once per preprocessing setting, their clinical
    criteria measured once (on the records as read, in mV), and encoded once per model (the last)."""

    def __init__(self, splits: Splits):
        self.splits = splits
        self._cache: dict[str, dict[str, LoadedECGs]] = {}
        self._criteria: dict[str, list] = {}
        self._encoded: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}

    def encoded(self, loaded: Any, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(pooled features (N, C), embeddings (N, D)) of the split's ECGs under the bundle `loaded`
        (e2r.encode.encode_ecg_features), computed once; the retrieval and the probes share them."""
        key = (loaded.hash, split)
        if key not in self._encoded:
            from e2r.encode import encode_ecg_features

            if all(k[0] != loaded.hash for k in self._encoded):
                self._encoded.clear()  # one model's arrays at a time: the arms run one after the other
            x = self.get(loaded.preset.ecg_preprocess)[split].x
            self._encoded[key] = (encode_ecg_features(loaded, x) if len(x) else
                                  (np.zeros((0, loaded.preset.ecg.dim), np.float32),
                                   np.zeros((0, loaded.preset.embed_dim), np.float32)))
        return self._encoded[key]

    def criteria(self, split: str) -> list:
        """e2r.ecg.criteria.ECGCriteria (or None) of each ECG of the split, in ecg_rows order."""
        if split not in self._criteria:
            from queries.eval.criteria_arm import measure_rows

            self._criteria[split] = measure_rows([r.ecg_path for r in self.splits.ecg_rows(split)])
        return self._criteria[split]

    def get(self, preprocess_cfg: Any) -> dict[str, LoadedECGs]:
        key = repr(preprocess_cfg)
        if key not in self._cache:
            self._cache[key] = {s: load_ecgs(self.splits.ecg_rows(s), preprocess_cfg) for s in ("train", "val", "test")}
        return self._cache[key]


def run_benchmark(spec: BenchmarkSpec, steps: BenchmarkSteps, say: Callable[[str], None] = log.info) -> BenchmarkResult:
    """Run every arm of `spec` for every seed, aggregate mean +/- SD, write results.json, report.md
    and the plots into spec.out_dir; returns the aggregated results."""
    from queries.eval.report import write_report

    spec.validate()
    t_start = time.perf_counter()
    splits = read_splits(spec.pairs_csv, spec.phenotypes_csv)
    settings = spec.settings
    sd = relevance_sd(splits.phenotypes, settings)
    ecgs = _ECGCache(splits)
    evals: dict[str, list[ArmEval]] = {}
    arm_info: dict[str, list[dict[str, Any]]] = {}
    towers = _Towers(spec, steps, say)
    for arm in spec.arms:
        seeds = (spec.seeds[0],) if arm in spec.models or arm in SINGLE_RUN_ARMS else spec.seeds
        for seed in seeds:
            say(f"[{arm} seed {seed}] start")
            t0 = time.perf_counter()
            ev, info = _run_arm(arm, seed, spec, steps, splits, ecgs, sd, settings, say, towers)
            info["wall_s"] = time.perf_counter() - t0
            info["seed"] = seed
            evals.setdefault(arm, []).append(ev)
            arm_info.setdefault(arm, []).append(info)
            say(f"[{arm} seed {seed}] done in {info['wall_s']:.0f} s")
        if arm != spec.arms[-1]:  # a long run that is interrupted still leaves the arms done so far
            partial = _aggregate(spec, splits, sd, evals, arm_info, time.perf_counter() - t_start, complete=False)
            write_report(BenchmarkResult(partial, evals), spec.out_dir, plots=False)
    results = _aggregate(spec, splits, sd, evals, arm_info, time.perf_counter() - t_start)
    out = BenchmarkResult(results, evals)
    out.out_files = write_report(out, spec.out_dir)
    return out


class _Towers:
    """One pretrained echo tower per seed, made on first use and shared by the arms of that seed."""

    def __init__(self, spec: BenchmarkSpec, steps: BenchmarkSteps, say: Callable[[str], None]):
        self.spec, self.steps, self.say = spec, steps, say
        self.done: dict[int, dict[str, Any]] = {}

    def get(self, seed: int) -> Optional[dict[str, Any]]:
        if self.steps.pretrain_tower is None:
            return None
        if seed not in self.done:
            t0 = time.perf_counter()
            self.say(f"[echo tower seed {seed}] pretraining")
            root = Path(self.spec.towers_dir or self.spec.workdir)
            info = dict(self.steps.pretrain_tower(seed, root / f"echo-tower-seed{seed}"))
            info["pretrain_s"] = time.perf_counter() - t0
            self.done[seed] = info
        return self.done[seed]


def _run_arm(arm: str, seed: int, spec: BenchmarkSpec, steps: BenchmarkSteps, splits: Splits, ecgs: _ECGCache,
             sd: Mapping[str, float], settings: EvalSettings, say: Callable[[str], None],
             towers: _Towers) -> tuple[ArmEval, dict]:
    if arm == "chance":  # needs no ECG signal: the pairs' study UIDs are enough
        test_uids = sorted(u for u, s in splits.study_split().items() if s == "test")
        ev = evaluate_chance([r.study_uid for r in splits.ecg_rows("test")], test_uids,
                             [r.study_uid for r in splits.ecg_rows("train")], splits.phenotypes, sd, settings, seed)
        return ev, {}
    if arm == "criteria":
        from queries.eval.criteria_arm import evaluate_criteria

        train_rows, test_rows = splits.ecg_rows("train"), splits.ecg_rows("test")
        t0 = time.perf_counter()
        train_c, test_c = ecgs.criteria("train"), ecgs.criteria("test")
        measure_s = time.perf_counter() - t0
        ev, info = evaluate_criteria(train_c, [r.study_uid for r in train_rows], test_c,
                                     [r.study_uid for r in test_rows], splits.phenotypes)
        info["measure_s"] = measure_s
        _score_features(ev, info, None, steps, splits, ecgs, settings, say, f"[{arm}]")
        return ev, info
    if arm == "supervised":
        task, (pred, info), train_s = _train_on_ecgs(steps.train_supervised, "train_supervised", spec, ecgs, splits,
                                                     seed, arm)
        info = {**dict(info), "train_s": train_s, "ecg_preprocess": task.preset.ecg_preprocess.describe()}
        test_study = [r.study_uid for r in ecgs.get(task.preset.ecg_preprocess)["test"].rows]
        ev = evaluate_direct(pred, test_study, splits.phenotypes)
        if info.get("model_dir"):  # the ceiling's encoder as an ECG-only bundle
            _score_features(ev, info, Path(info["model_dir"]), steps, splits, ecgs, settings, say, f"[{arm} seed {seed}]")
        return ev, info
    if arm == "ssl":
        task, trained, train_s = _train_on_ecgs(steps.train_ssl, "train_ssl", spec, ecgs, splits, seed, arm)
        trained = dict(trained)
        model_dir = Path(trained.pop("model_dir"))
        info = {"train": trained, "train_s": train_s, "model_dir": str(model_dir),
                "ecg_preprocess": task.preset.ecg_preprocess.describe()}
        ev = ArmEval({})  # no echo side: no retrieval, no cross-modal vote
        _score_features(ev, info, model_dir, steps, splits, ecgs, settings, say, f"[{arm} seed {seed}]")
        return ev, info
    if arm == "echo-tower":
        tower = towers.get(seed)
        if tower is None or steps.tower_studies is None:
            raise ConfigError("the echo-tower arm needs pretrain_tower and tower_studies steps")
        t0 = time.perf_counter()
        views = steps.tower_studies(Path(tower["tower_dir"]))
        info = {"tower": {k: v for k, v in tower.items() if k != "tower_dir"}, "tower_dir": str(tower["tower_dir"]),
                "embed_s": time.perf_counter() - t0}
        test_rows = splits.ecg_rows("test")
        return evaluate_tower(_mean_view(views), [r.study_uid for r in test_rows], splits, sd, settings), info
    # embedding arms: a bundle, indexed into its own collection, evaluated through the store
    info: dict[str, Any] = {}
    t0 = time.perf_counter()
    if arm in spec.models:
        model_dir = Path(spec.models[arm])
    elif arm == "random-init":
        make = steps.random_init or make_random_bundle
        model_dir = Path(make(spec.model_preset(), seed, Path(spec.workdir) / f"random-init-seed{seed}"))
    elif arm in ALIGNMENT_ARMS:
        if steps.train is None:
            raise ConfigError(f"arm {arm} needs a train step")
        tower = towers.get(seed)
        tower_dir = Path(tower["tower_dir"]) if tower else None
        trained = dict(steps.train(arm, seed, Path(spec.workdir) / f"{arm}-seed{seed}", tower_dir))
        model_dir = Path(trained.pop("model_dir"))
        info["train"] = trained
        if tower:
            info["tower_dir"] = str(tower_dir)
    else:
        raise ConfigError(f"arm {arm!r} has no model; give it with --model")
    info["train_s"] = time.perf_counter() - t0
    collection = spec.collections.get(arm) or f"bench-{arm}-seed{seed}"
    emb, index_info = embed_arm(model_dir, collection, spec, steps, splits, ecgs, say)
    info.update(index_info)
    t1 = time.perf_counter()
    ev = evaluate_embeddings(emb, splits.phenotypes, sd, settings)
    info["eval_s"] = time.perf_counter() - t1
    if steps.score_real_ecgs is not None:
        t2 = time.perf_counter()
        info["real_ecgs"] = dict(steps.score_real_ecgs(model_dir, collection))
        info["real_ecgs_s"] = time.perf_counter() - t2
        say(f"[{arm} seed {seed}] real ECGs scored in {info['real_ecgs_s']:.0f} s")
    _score_features(ev, info, model_dir, steps, splits, ecgs, settings, say, f"[{arm} seed {seed}]")
    return ev, info


def _train_on_ecgs(step: Optional[Callable[[ECGTrainingTask], Any]], step_name: str, spec: BenchmarkSpec,
                   ecgs: _ECGCache, splits: Splits, seed: int, arm: str) -> tuple[ECGTrainingTask, Any, float]:
    """Run an ECG-only arm's training step (the supervised ceiling, ECG-only SSL) on the arm's task:
    (the task, what the step returned, its seconds). ConfigError when the step was not given."""
    if step is None:
        raise ConfigError(f"the {arm} arm needs a {step_name} step")
    task = _ecg_task(spec, ecgs, splits, seed, arm)
    t0 = time.perf_counter()
    out = step(task)
    return task, out, time.perf_counter() - t0


def _ecg_task(spec: BenchmarkSpec, ecgs: _ECGCache, splits: Splits, seed: int, arm: str) -> ECGTrainingTask:
    """The training task of an ECG-only arm: the benchmark's preprocessed ECGs of each split."""
    preset = spec.model_preset()
    loaded = ecgs.get(preset.ecg_preprocess)
    ph = splits.phenotypes
    return ECGTrainingTask(
        train_x=loaded["train"].x, train_rows=[ph.get(r.study_uid) for r in loaded["train"].rows],
        val_x=loaded["val"].x, val_rows=[ph.get(r.study_uid) for r in loaded["val"].rows],
        test_x=loaded["test"].x, preset=preset, seed=seed, out_dir=Path(spec.workdir) / f"{arm}-seed{seed}")


def _score_features(ev: ArmEval, info: dict[str, Any], model_dir: Optional[Path], steps: BenchmarkSteps,
                    splits: Splits, ecgs: _ECGCache, settings: EvalSettings, say: Callable[[str], None],
                    tag: str) -> None:
    """The arm as a feature extractor (queries.eval.features), into ev.metrics["feature_extractor"]: the
    pooled features of the bundle in model_dir, or (None) the clinical criteria; and the linear probe
    on the real labelled ECGs into info["real_ecg_probe"] when the run has them."""
    from e2r.bundle import load_model
    from queries.eval.features import FeatureSet, criteria_features, feature_extractor_metrics

    t0 = time.perf_counter()
    if model_dir is None:
        studies = {s: [r.study_uid for r in splits.ecg_rows(s)] for s in ("train", "val", "test")}
        fs = criteria_features({s: ecgs.criteria(s) for s in studies}, studies)
    else:
        loaded = load_model(model_dir)
        sets = ecgs.get(loaded.preset.ecg_preprocess)
        fs = FeatureSet.of({s: ecgs.encoded(loaded, s)[0] for s in sets},
                           {s: [r.study_uid for r in sets[s].rows] for s in sets})
    metrics = feature_extractor_metrics(fs, splits.phenotypes, settings.paper_k)
    if metrics:
        ev.metrics["feature_extractor"] = metrics
    info["features_s"] = time.perf_counter() - t0
    if steps.probe_real_ecgs is not None:
        t1 = time.perf_counter()
        probe = steps.probe_real_ecgs
        info["real_ecg_probe"] = dict(probe.criteria() if model_dir is None else probe.bundle(model_dir))
        info["real_ecg_probe_s"] = time.perf_counter() - t1
        say(f"{tag} linear probe on the real ECGs in {info['real_ecg_probe_s']:.0f} s")


def _mean_view(views: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Study vector of the tower alone: the L2-normalised mean of its per-video embeddings."""
    out = {}
    for uid, v in views.items():
        m = np.asarray(v, dtype=np.float64).mean(axis=0)
        out[uid] = (m / max(np.linalg.norm(m), 1e-12)).astype(np.float32)
    return out


def embed_arm(model_dir: Path, collection: str, spec: BenchmarkSpec, steps: BenchmarkSteps, splits: Splits,
              ecgs: _ECGCache, say: Callable[[str], None] = log.info) -> tuple[EmbeddingSet, dict[str, Any]]:
    """Index the archive with the model into `collection`, read the study vectors back from the
    store and encode the ECGs: the arrays one arm is evaluated on."""
    from e2r.bundle import load_model

    loaded = load_model(model_dir)
    store = steps.store
    if spec.drop_stale_collections and store.collection_exists(collection):
        if store.get_metadata(collection).get("model_hash") != loaded.hash:
            say(f"dropping collection {collection} (built with another model)")
            store.drop_collection(collection)
    t0 = time.perf_counter()
    summary = dict(steps.index(model_dir, collection))
    index_s = time.perf_counter() - t0
    vectors: dict[str, np.ndarray] = {}
    for rec in store.iterate(collection, with_vectors=True):
        uid = rec.payload.get("study_uid")
        if uid and rec.vector is not None:
            vectors[uid] = np.asarray(rec.vector, dtype=np.float32)
    split_of = splits.study_split()
    test_uids = sorted(u for u in vectors if split_of.get(u) == "test")
    archive_uids = sorted(u for u in vectors if split_of.get(u) in ("train", "val"))
    not_listed = sum(1 for u in vectors if u not in split_of)
    if not test_uids:
        raise DataError(f"collection {collection!r} holds none of the test studies of {spec.pairs_csv}; "
                        "index the archive those studies are in (--archive)")
    sets = ecgs.get(loaded.preset.ecg_preprocess)
    test = [i for i, r in enumerate(sets["test"].rows) if r.study_uid in vectors]
    if not test:
        raise DataError(f"no test ECG of {spec.pairs_csv} has its paired study in collection {collection!r}")
    t1 = time.perf_counter()
    test_emb = ecgs.encoded(loaded, "test")[1][test]
    train_emb = ecgs.encoded(loaded, "train")[1]
    emb = EmbeddingSet(
        test_ecg=test_emb, test_ecg_study=[sets["test"].rows[i].study_uid for i in test],
        test_studies=np.stack([vectors[u] for u in test_uids]), test_study_uids=test_uids,
        archive=np.stack([vectors[u] for u in archive_uids]) if archive_uids else np.zeros((0, test_emb.shape[1])),
        archive_uids=archive_uids, train_ecg=train_emb,
        train_ecg_study=[r.study_uid for r in sets["train"].rows])
    info = {
        "model_dir": str(model_dir), "model_hash": loaded.hash, "collection": collection,
        "ecg_preprocess": loaded.preset.ecg_preprocess.describe(),
        "index_s": index_s, "encode_ecg_s": time.perf_counter() - t1,
        "index": {k: summary.get(k) for k in ("studies_found", "indexed", "replaced", "unchanged", "failed",
                                              "videos_indexed", "total_in_collection") if k in summary},
        "test_ecgs": len(test), "test_ecgs_without_indexed_study": len(sets["test"].rows) - len(test),
        "gallery_studies": len(test_uids), "archive_studies": len(archive_uids),
        "indexed_studies_not_in_pairs_csv": not_listed,
        "ecgs_unreadable": sum(len(s.failed) for s in sets.values()),
    }
    return emb, info


def _aggregate(spec: BenchmarkSpec, splits: Splits, sd: Mapping[str, float], evals: Mapping[str, list[ArmEval]],
               arm_info: Mapping[str, list[dict]], wall_s: float, complete: bool = True) -> dict[str, Any]:
    from queries.eval.real_ecgs import aggregate_real_ecgs

    arms: dict[str, Any] = {}
    for arm, runs in evals.items():
        per_seed = [r.metrics for r in runs]
        arms[arm] = {
            "label": ARM_LABELS.get(arm, arm),
            "seeds": [i["seed"] for i in arm_info[arm]],
            "mean_sd": mean_sd(per_seed),
            "per_seed": per_seed,
            "runs": arm_info[arm],
            "wall_s_total": float(sum(i["wall_s"] for i in arm_info[arm])),
        }
    return {
        "complete": complete,  # False while arms are still running (a partial report)
        "synthetic": spec.synthetic,
        "data": spec.data_label,
        "spec": {
            "pairs_csv": str(spec.pairs_csv), "phenotypes_csv": str(spec.phenotypes_csv),
            "workdir": str(spec.workdir), "preset": spec.preset, "seeds": list(spec.seeds),
            "arms": list(spec.arms), "models": dict(spec.models),
            "ecg_normalise": spec.ecg_normalise,  # None: the preset's
            "ecg_preprocess": sorted({r["ecg_preprocess"] for runs in arm_info.values() for r in runs
                                      if r.get("ecg_preprocess")}),
        },
        "settings": {**asdict(spec.settings), "relevance_sd": dict(sd)},
        "context": dict(spec.context),
        "splits": splits.sizes(),
        "versions": versions(),
        "wall_time_s": wall_s,
        "arms": arms,
        "real_ecgs": aggregate_real_ecgs(arm_info, spec.context.get("real_ecgs")),
    }


def versions() -> dict[str, str]:
    """Versions of e2r and the libraries the numbers depend on."""
    import platform

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("e2r", "torch", "numpy", "sklearn", "scipy", "pydicom", "wfdb"):
        try:
            mod = __import__(name)
            out[name] = str(getattr(mod, "__version__", "?"))
        except ImportError:
            out[name] = "not installed"
    try:
        import torch

        out["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU)"
        out["cpu_threads"] = str(torch.get_num_threads())
    except ImportError:
        pass
    return out
