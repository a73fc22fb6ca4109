"""The evaluation's composition: trains, pretrains, indexes and evaluates every arm of `e2r eval`.

queries.eval.protocol holds the protocol and takes its work as injected steps; this module builds
those steps from the real echo-tower pretraining (trainer.echo_pretrain), alignment
(trainer.align), supervised ceiling (trainer.supervised), ECG-only SSL baseline (trainer.ssl) and
indexer (indexer.pipeline). It is the one module of queries/ that the import rules (pyproject.toml,
import-linter) allow to import trainer/ and indexer/; e2r.cli.eval_cmd calls `run_phantom_benchmark`
or `run_model_eval`.

Everything a run makes lives in its workdir and is reused by a later run with the same settings:
the phantom cohort, the decoded-video and embedding caches, each seed's tower and each arm's model.
A run with another ECG input (`ecg_normalise`) keeps its models in a folder of its own and shares
the towers, which never see an ECG. Real labelled ECGs (queries.eval.real_ecgs), when their folder
is there, are scored against every embedding arm's index, and every arm that reads ECGs gets the
linear probe on them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Optional

from e2r.store import open_store
from e2r.util import DEFAULT_HOME
from queries.eval.arms import PhenotypePredictions
from queries.eval.protocol import ARMS, BenchmarkSpec, BenchmarkSteps, check_ecg_normalise, run_benchmark
from queries.eval.sizes import COHORT_SEED, RunSize


def run_phantom_benchmark(size: RunSize, seeds: Optional[int], patients: Optional[int], epochs: Optional[int],
                           preset: str, cohort: Optional[Path], workdir: Path, out: Path, data_dir: Optional[Path],
                           qdrant_url: Optional[str], api_key: Optional[str], say, command: str, progress: bool,
                           ecg_normalise: Optional[str] = None, real_ecgs: Optional[Path] = None,
                           score_real: bool = True, arms: Optional[tuple[str, ...]] = None):
    """The benchmark on the phantom cohort. `ecg_normalise`: the ECG input of every ECG arm (None:
    the preset's). Real labelled ECGs are scored when `score_real`: from `real_ecgs`, or from
    queries.eval.real_ecgs.DEFAULT_REAL_ECGS when that folder is there (the report says when not).
    `arms`: the arms to run, in ARMS order (None: all)."""
    from e2r.presets import get_preset

    base = get_preset(preset)  # PresetError naming the choices, before any work
    if ecg_normalise == base.ecg_preprocess.normalise:
        ecg_normalise = None  # the preset's own: the same models as a run without the option
    check_ecg_normalise(ecg_normalise)  # ConfigError naming the choices, before any work
    n_patients = patients or size.patients
    n_epochs = epochs or size.epochs
    n_seeds = seeds or size.seeds
    real_labels, real_context = _real_labels(real_ecgs, score_real, say)
    workdir.mkdir(parents=True, exist_ok=True)
    cohort_dir, manifest = _ensure_cohort(cohort, workdir, n_patients, size.video_size, say)
    home = Path(data_dir) if data_dir else workdir / "home"
    towers = workdir / f"models-{preset}-e{n_epochs}"
    spec = BenchmarkSpec(
        pairs_csv=cohort_dir / "pairs.csv", phenotypes_csv=cohort_dir / "phenotypes.csv",
        workdir=towers.with_name(f"{towers.name}-{ecg_normalise}") if ecg_normalise else towers, towers_dir=towers,
        out_dir=out, preset=preset, ecg_normalise=ecg_normalise, seeds=tuple(range(n_seeds)), arms=arms or ARMS,
        context={"command": command, "patients": manifest.get("counts", {}).get("patients"),
                 "cohort": str(cohort_dir), "cohort_manifest": manifest,
                 "training": {"preset": preset, "epochs": n_epochs, "supervised epochs": n_epochs,
                              "echo-tower epochs": size.tower_epochs, "batch size": base.train.batch_size,
                              "lr": base.train.lr},
                 **({"real_ecgs": real_context} if real_context is not None else {})},
    ).validate()
    spec.context["training"]["ECG input"] = spec.model_preset().ecg_preprocess.describe()
    cache = workdir / "cache"
    with open_store(data_dir=home, url=qdrant_url, api_key=api_key) as store:
        scorer = None
        if real_labels is not None:
            from queries.eval.real_ecgs import RealECGScorer

            scorer = RealECGScorer(store, real_labels, progress=progress, say=say)
            spec.context["real_ecgs"].update(scorer.describe())
        steps = BenchmarkSteps(
            store=store,
            index=_index_step(cohort_dir / "echo", cohort_dir / "phenotypes.csv", store, home, progress),
            train=_train_step(cohort_dir, cache, preset, n_epochs, progress, ecg_normalise),
            pretrain_tower=_tower_step(cohort_dir, cache, preset, size.tower_epochs, progress),
            tower_studies=_tower_studies_step(cohort_dir / "echo", cache, progress),
            train_supervised=_supervised_step(n_epochs),
            train_ssl=_ssl_step(n_epochs, progress),
            score_real_ecgs=scorer,
            probe_real_ecgs=scorer,
        )
        return run_benchmark(spec, steps, say)


def _real_labels(path: Optional[Path], score_real: bool, say) -> tuple[Any, Optional[dict]]:
    """(the LabelSet to score, the report's context) for the real-ECG section: (None, None) when it
    is switched off, (None, a note) when the default folder is not there; a given path that is not
    there is a DataError, before any work."""
    from queries.eval.real_ecgs import DEFAULT_REAL_ECGS, REAL_ECGS_TITLE, read_real_labels

    if not score_real:
        return None, None
    if path is None and not DEFAULT_REAL_ECGS.is_dir():
        return None, {"title": REAL_ECGS_TITLE, "note": f"Not scored: {DEFAULT_REAL_ECGS} is not there (run from the "
                      "checkout beside ../shared, or give --real-ecgs DIR, PTB-XL's folder)."}
    labels = read_real_labels(path or DEFAULT_REAL_ECGS)
    say(f"real ECGs: {len(labels.items)} labelled records in {labels.source}, scored against every arm's index")
    return labels, {}


def run_model_eval(model: Path, pairs: Path, archive: Optional[Path], phenotypes: Optional[Path], collection: str,
                    workdir: Path, out: Path, data_dir: Optional[Path], qdrant_url: Optional[str],
                    api_key: Optional[str], say, command: str, progress: bool, group_by: str = "uid"):
    from e2r.bundle import load_model
    from e2r.errors import DataError

    loaded = load_model(model)  # BundleError with one line when it is not a bundle
    archive = archive or pairs.parent / "echo"
    phenotypes = phenotypes or pairs.parent / "phenotypes.csv"
    if not archive.is_dir():
        raise DataError(f"--archive {archive}: not a folder; point it at the echo DICOM archive of --pairs")
    home = Path(data_dir).expanduser() if data_dir else DEFAULT_HOME
    spec = BenchmarkSpec(
        pairs_csv=pairs, phenotypes_csv=phenotypes, workdir=workdir, out_dir=out, preset=loaded.preset.name,
        seeds=(0,), arms=("chance", "model"), models={"model": str(model)}, collections={"model": collection},
        drop_stale_collections=False, data_label=f"your data ({pairs})", synthetic=False,
        context={"command": command, "model_hash": loaded.hash, "archive": str(archive)},
    ).validate()
    with open_store(data_dir=home, url=qdrant_url, api_key=api_key) as store:
        steps = BenchmarkSteps(store=store, index=_index_step(archive, phenotypes, store, home, progress, group_by))
        return run_benchmark(spec, steps, say)


def _ensure_cohort(cohort: Optional[Path], workdir: Path, patients: int, video_size: int, say) -> tuple[Path, dict]:
    """The given cohort, or the phantom cohort of this size in workdir (generated once, then reused)."""
    from e2r.errors import DataError
    from e2r.phantom import write_cohort

    if cohort is not None:
        if not (cohort / "pairs.csv").is_file():
            raise DataError(f"--cohort {cohort}: no pairs.csv; give a folder written by `e2r synth`")
        return cohort, _manifest(cohort)
    path = workdir / f"cohort-{patients}p-s{COHORT_SEED}-{video_size}px"
    if (path / "manifest.json").is_file():
        say(f"phantom cohort: reusing {path}")
        return path, _manifest(path)
    if path.exists():
        shutil.rmtree(path)  # an interrupted generation: it has no manifest
    say(f"phantom cohort: writing {patients} synthetic patients to {path}")
    write_cohort(path, patients=patients, seed=COHORT_SEED, size=video_size)
    return path, _manifest(path)


def _manifest(cohort: Path) -> dict:
    return _read_json(cohort / "manifest.json") or {}


def _train_step(cohort: Path, cache_dir: Path, preset: str, epochs: int, progress: bool,
                ecg_normalise: Optional[str] = None):
    """train(arm, seed, out_dir, tower_dir): Echo2ECG with the arm's aggregation (and the ECG input
    `ecg_normalise`) aligned to the seed's frozen tower; a finished bundle with the same settings is
    reused; the data (cached tower embeddings) are loaded once per tower and shared by the arms of
    that seed."""
    from trainer.align import model_preset, train
    from trainer.config import make_train_config
    from trainer.paired_data import load_paired_data

    shared: dict[Any, Any] = {}

    def run(arm: str, seed: int, out_dir: Path, tower_dir: Optional[Path]) -> dict[str, Any]:
        cfg = make_train_config(cohort, out_dir, preset=preset, aggregation=arm, epochs=epochs, seed=seed,
                                cache_dir=str(cache_dir), progress=progress, ecg_normalise=ecg_normalise,
                                echo_encoder=str(tower_dir) if tower_dir else None)
        tower_hash = (_read_json(tower_dir / "tower.json") or {}).get("hash") if tower_dir else None
        if _finished_bundle(out_dir, cfg, tower_hash):
            return {"model_dir": out_dir, "reused": True}
        _remove_owned(out_dir)
        if tower_dir not in shared:
            from e2r.models import Echo2ECG

            model_p, source = model_preset(cfg)
            embedder = Echo2ECG(model_p)
            if source is not None and source.encoder_state is not None:
                embedder.video_encoder.load_state_dict(source.encoder_state)
            frozen = embedder.video_encoder_frozen
            shared.clear()  # one tower's embeddings at a time
            shared[tower_dir] = load_paired_data(cfg, model_p, embedder=embedder if frozen else None,
                                                 encoder_id=source.hash if source else None)
        r = train(cfg, data=shared[tower_dir])
        return {"model_dir": out_dir, "reused": False, "train_time_s": r.train_time_s, "epochs": r.epochs,
                "best_epoch": r.best_epoch, "select_metric": r.select_metric, "pairs_per_s": r.pairs_per_s,
                "params": r.params,
                "best_val": {k: r.best_metrics.get(k) for k in ("val_loss", "val_pheno_map", "val_knn_le45_auroc",
                                                                "val_knn_lvh_auroc", "val_recall@10")},
                "train_pairs": r.data_summary.get("train_pairs"), "val_pairs": r.data_summary.get("val_pairs")}

    return run


def _tower_step(cohort: Path, cache_dir: Path, preset: str, epochs: int, progress: bool):
    """pretrain_tower(seed, out_dir): the seed's echo tower on the cohort's train split (reused when
    a finished tower with the same settings is there)."""
    from trainer.config import make_train_config
    from trainer.echo_pretrain import ECHO_DEFAULTS, train_echo_tower

    def run(seed: int, out_dir: Path) -> dict[str, Any]:
        cfg = make_train_config(cohort, out_dir, preset=preset, defaults=ECHO_DEFAULTS, epochs=epochs, seed=seed,
                                cache_dir=str(cache_dir), workers=2, progress=progress)
        meta = _read_json(out_dir / "tower.json")
        tc = meta.get("train_config", {}) if meta else {}
        if meta and all(tc.get(k) == getattr(cfg, k) for k in ("data", "preset", "epochs", "seed", "batch_size", "lr")):
            return {"tower_dir": out_dir, "reused": True, "hash": meta.get("hash"), "val_mean_r": meta.get("val_mean_r")}
        _remove_owned(out_dir)
        r = train_echo_tower(cfg)
        return {"tower_dir": out_dir, "reused": False, "hash": r.bundle_hash, "train_time_s": r.train_time_s,
                "best_epoch": r.best_epoch, "val_mean_r": r.best_score, "videos_per_s": r.items_per_s,
                "val_r": {k[6:]: v for k, v in r.best_metrics.items() if k.startswith("val_r_")}}

    return run


def _tower_studies_step(archive: Path, cache_dir: Path, progress: bool):
    from trainer.echo_pretrain import embed_studies

    def run(tower_dir: Path):
        return embed_studies(tower_dir, archive, cache_dir, workers=2, progress=progress)

    return run


def _read_json(path: Path) -> Optional[dict]:
    """A JSON file's object, or None when it is missing; a corrupt one is a clear error."""
    from e2r.errors import DataError

    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: corrupt ({exc}); delete it (the benchmark redoes that step)") from exc
    return obj if isinstance(obj, dict) else None


def _remove_owned(out_dir: Path) -> None:
    """Delete a benchmark-owned model or tower folder of an old or interrupted run."""
    if out_dir.exists():
        shutil.rmtree(out_dir)


def _finished_bundle(out_dir: Path, cfg: Any, tower_hash: Optional[str]) -> bool:
    meta = _read_json(out_dir / "bundle.json")
    if not meta or (meta.get("echo_tower") or {}).get("hash") != tower_hash:
        return False
    tc = meta.get("train_config", {})
    return all(tc.get(k) == getattr(cfg, k) for k in ("data", "preset", "aggregation", "epochs", "seed", "batch_size",
                                                       "lr", "echo_encoder", "ecg_normalise"))


def _index_step(archive: Path, phenotypes: Path, store: Any, home: Path, progress: bool, group_by: str = "uid"):
    from e2r.bundle import load_model
    from indexer.config import IndexConfig
    from indexer.pipeline import index_archive

    def run(model_dir: Path, collection: str) -> dict[str, Any]:
        cfg = IndexConfig(archive=archive, model_dir=model_dir, phenotypes=phenotypes if phenotypes.is_file() else None,
                          collection=collection, salt_path=home / "patient_salt", progress=progress,
                          group_by=group_by)
        return index_archive(cfg, store, load_model(model_dir)).to_dict()

    return run


def _supervised_step(epochs: int):
    """train_supervised(task): the ceiling, its test predictions, and its ECG encoder as an ECG-only
    bundle in <out_dir>/encoder (the arm's feature extractor)."""
    from trainer.ssl import save_encoder_bundle
    from trainer.supervised import SupervisedConfig, train_supervised

    def run(task) -> tuple[Any, dict[str, Any]]:
        model = train_supervised(task.train_x, task.train_rows, task.val_x, task.val_rows, task.preset,
                                 SupervisedConfig(epochs=epochs, seed=task.seed), out_dir=task.out_dir)
        encoder = Path(task.out_dir) / "encoder"
        save_encoder_bundle(model.model.encoder, model.model.preset, encoder,
                            {**model.info(), "objective": "supervised-phenotypes"}, seed=task.seed)
        return PhenotypePredictions(**model.predict(task.test_x)), {**model.info(), "model_dir": str(encoder)}

    return run


def _ssl_step(epochs: int, progress: bool):
    """train_ssl(task): the ECG-only SSL baseline (trainer.ssl) on the task's ECGs with the alignment
    arms' epochs and the preset's recipe, into task.out_dir; a finished bundle trained with the same
    settings on the same ECGs is reused."""
    from trainer.config import make_train_config
    from trainer.ssl import OBJECTIVE, ecg_array_digest, train_ssl

    def run(task) -> dict[str, Any]:
        out_dir = Path(task.out_dir)
        cfg = make_train_config("", out_dir, preset=task.preset.name, epochs=epochs, seed=task.seed, progress=progress)
        meta = _read_json(out_dir / "bundle.json") or {}
        tc, data = meta.get("train_config", {}), meta.get("data_summary", {})
        if (tc.get("objective") == OBJECTIVE and data.get("train_ecgs_sha256") == ecg_array_digest(task.train_x)
                and data.get("val_ecgs_sha256") == ecg_array_digest(task.val_x)
                and all(tc.get(k) == getattr(cfg, k) for k in ("preset", "epochs", "seed", "batch_size", "lr"))):
            return {"model_dir": out_dir, "reused": True}
        _remove_owned(out_dir)
        r = train_ssl(cfg, task.train_x, task.train_rows, task.val_x, task.val_rows, preset=task.preset)
        return {"model_dir": out_dir, "reused": False, "train_time_s": r.train_time_s, "epochs": r.epochs,
                "best_epoch": r.best_epoch, "select_metric": r.select_metric, "ecgs_per_s": r.items_per_s,
                "params": r.params, "train_ecgs": len(task.train_x), "val_ecgs": len(task.val_x),
                "best_val": {k: r.best_metrics.get(k) for k in ("val_loss", "val_knn_auroc_mean", "val_knn_le45_auroc",
                                                                "val_knn_lvh_auroc", "val_feature_sd")}}

    return run


