"""`e2r eval`: the benchmark (`--benchmark`, on the phantom cohort) or the same metrics for a user's
own model and paired data (`--model MODEL_DIR --pairs PAIRS.csv`).

The protocol lives in queries.benchmark; this command wires the real training (trainer.loop.train),
indexing (indexer.pipeline.index_archive) and the supervised ceiling (trainer.supervised) into it.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from e2r.cli.common import ApiKeyOpt, CollectionOpt, DataDirOpt, JsonOpt, QdrantUrlOpt, handle_errors, print_json, print_table


@dataclass(frozen=True)
class RunSize:
    """How big a benchmark run is (the --quick and default presets of `e2r eval --benchmark`)."""

    patients: int
    epochs: int
    seeds: int
    video_size: int  # phantom cine loop rows = columns (the model decodes to its own size anyway)


QUICK = RunSize(patients=120, epochs=2, seeds=1, video_size=64)
DEFAULT = RunSize(patients=300, epochs=10, seeds=3, video_size=128)
COHORT_SEED = 0


def register(app: typer.Typer) -> None:
    app.command("eval")(handle_errors(eval_command))


def eval_command(
    benchmark: bool = typer.Option(False, "--benchmark", help="Run the benchmark on a phantom cohort: every arm trained, indexed and evaluated."),
    quick: bool = typer.Option(False, "--quick", help=f"Small benchmark for CI ({QUICK.patients} patients, {QUICK.epochs} epochs, 1 seed; a few minutes on 2 cores)."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help=f"Seeds per arm (0..N-1; default {DEFAULT.seeds}, --quick 1)."),
    patients: Optional[int] = typer.Option(None, "--patients", help=f"Phantom patients (default {DEFAULT.patients}, --quick {QUICK.patients})."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help=f"Training epochs of every trained arm (default {DEFAULT.epochs}, --quick {QUICK.epochs})."),
    preset: str = typer.Option("tiny", "--preset", help="Model preset of the benchmark's arms (tiny on CPU; base on a GPU)."),
    cohort: Optional[Path] = typer.Option(None, "--cohort", help="Use this phantom cohort folder instead of generating one in --workdir."),
    workdir: Path = typer.Option(Path("e2r-bench"), "--workdir", help="Benchmark folder: cohort, models, caches, store (reused on re-runs)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Evaluate this model bundle on your own paired data (with --pairs)."),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Pairs CSV (ecg_path, study_uid, patient_id, days, split) of your data; its test split is evaluated."),
    archive: Optional[Path] = typer.Option(None, "--archive", help="Echo DICOM archive of --pairs (default: the echo/ folder beside the CSV)."),
    phenotypes: Optional[Path] = typer.Option(None, "--phenotypes", help="Phenotype CSV of the studies (default: phenotypes.csv beside the pairs CSV)."),
    collection: str = CollectionOpt,
    out: Path = typer.Option(Path("results"), "--out", help="Folder for results.json, report.md and the plots."),
    data_dir: Optional[Path] = DataDirOpt,
    qdrant_url: Optional[str] = QdrantUrlOpt,
    api_key: Optional[str] = ApiKeyOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Measure retrieval and phenotype classification against baselines; write results.json, report.md, plots.

    `--benchmark` generates (or reuses) a synthetic phantom cohort and compares, on the same
    splits: chance, a random-init encoder, single-view, mean-pooling and attention-pooling
    (Echo2ECG) alignment, and a supervised ECG->phenotype ceiling, as mean ± SD over seeds.
    `--model M --pairs P.csv` reports the same metrics for your model on your data's test split.
    """
    from e2r.errors import ConfigError

    if benchmark == (model is not None):
        raise ConfigError("choose one: --benchmark (phantom cohort, every arm) or --model MODEL_DIR --pairs PAIRS.csv")
    for flag, value in (("--seeds", seeds), ("--patients", patients), ("--epochs", epochs)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} {value}: must be at least 1")
    say = (lambda msg: None) if as_json else (lambda msg: typer.echo(msg, err=True))
    command = "e2r " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "e2r eval"
    if benchmark:
        size = QUICK if quick else DEFAULT
        result = _run_phantom_benchmark(size, seeds, patients, epochs, preset, cohort, workdir, out, data_dir,
                                        qdrant_url, api_key, say, command, progress=not as_json)
    else:
        for flag, value in (("--quick", quick), ("--cohort", cohort)):
            if value:
                raise ConfigError(f"{flag} belongs to --benchmark; drop it when evaluating --model")
        if pairs is None:
            raise ConfigError("--model needs --pairs PAIRS.csv (your paired ECG/echo data with a test split)")
        result = _run_model_eval(model, pairs, archive, phenotypes, collection, workdir, out, data_dir, qdrant_url,
                                 api_key, say, command, progress=not as_json)
    _print_result(result, as_json)


def _run_phantom_benchmark(size: RunSize, seeds: Optional[int], patients: Optional[int], epochs: Optional[int],
                           preset: str, cohort: Optional[Path], workdir: Path, out: Path, data_dir: Optional[Path],
                           qdrant_url: Optional[str], api_key: Optional[str], say, command: str, progress: bool):
    from e2r.presets import get_preset
    from queries.benchmark import ARMS, BenchmarkSpec, BenchmarkSteps, run_benchmark

    get_preset(preset)  # PresetError naming the choices, before any work
    n_patients = patients or size.patients
    n_epochs = epochs or size.epochs
    n_seeds = seeds or size.seeds
    workdir.mkdir(parents=True, exist_ok=True)
    cohort_dir, manifest = _ensure_cohort(cohort, workdir, n_patients, size.video_size, say)
    home = Path(data_dir) if data_dir else workdir / "home"
    models = workdir / f"models-{preset}-e{n_epochs}"
    spec = BenchmarkSpec(
        pairs_csv=cohort_dir / "pairs.csv", phenotypes_csv=cohort_dir / "phenotypes.csv", workdir=models,
        out_dir=out, preset=preset, seeds=tuple(range(n_seeds)), arms=ARMS,
        context={"command": command, "patients": manifest.get("counts", {}).get("patients"),
                 "cohort": str(cohort_dir), "cohort_manifest": manifest,
                 "training": {"preset": preset, "epochs": n_epochs, "supervised epochs": n_epochs,
                              "batch size": get_preset(preset).train.batch_size, "lr": get_preset(preset).train.lr}},
    ).validate()
    with _open_store(home, qdrant_url, api_key) as store:
        steps = BenchmarkSteps(
            store=store,
            index=_index_step(cohort_dir / "echo", cohort_dir / "phenotypes.csv", store, home, progress),
            train=_train_step(cohort_dir, workdir / "cache", preset, n_epochs, progress),
            train_supervised=_supervised_step(n_epochs),
        )
        return run_benchmark(spec, steps, say)


def _run_model_eval(model: Path, pairs: Path, archive: Optional[Path], phenotypes: Optional[Path], collection: str,
                    workdir: Path, out: Path, data_dir: Optional[Path], qdrant_url: Optional[str],
                    api_key: Optional[str], say, command: str, progress: bool):
    from e2r.bundle import load_model
    from e2r.cli.store_opts import home_dir
    from e2r.errors import DataError
    from queries.benchmark import BenchmarkSpec, BenchmarkSteps, run_benchmark

    loaded = load_model(model)  # BundleError with one line when it is not a bundle
    archive = archive or pairs.parent / "echo"
    phenotypes = phenotypes or pairs.parent / "phenotypes.csv"
    if not archive.is_dir():
        raise DataError(f"--archive {archive}: not a folder; point it at the echo DICOM archive of --pairs")
    home = home_dir(data_dir)
    spec = BenchmarkSpec(
        pairs_csv=pairs, phenotypes_csv=phenotypes, workdir=workdir, out_dir=out, preset=loaded.preset.name,
        seeds=(0,), arms=("chance", "model"), models={"model": str(model)}, collections={"model": collection},
        drop_stale_collections=False, data_label=f"your data ({pairs})", synthetic=False,
        context={"command": command, "model_hash": loaded.hash, "archive": str(archive)},
    ).validate()
    with _open_store(home, qdrant_url, api_key) as store:
        steps = BenchmarkSteps(store=store, index=_index_step(archive, phenotypes, store, home, progress))
        return run_benchmark(spec, steps, say)


def _open_store(home: Path, url: Optional[str], api_key: Optional[str]):
    from e2r.store import open_store

    return open_store(url=url, api_key=api_key) if url else open_store(data_dir=home)


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
    try:
        return json.loads((cohort / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def _train_step(cohort: Path, cache_dir: Path, preset: str, epochs: int, progress: bool):
    """train(arm, seed, out_dir): Echo2ECG with the arm's aggregation; a finished bundle with the same
    settings is reused; the decoded data are loaded once and shared by every arm and seed."""
    from trainer.config import make_train_config
    from trainer.data import load_paired_data
    from trainer.loop import resolve_preset, train

    shared: dict[str, Any] = {}

    def run(arm: str, seed: int, out_dir: Path) -> dict[str, Any]:
        cfg = make_train_config(cohort, out_dir, preset=preset, aggregation=arm, epochs=epochs, seed=seed,
                                cache_dir=str(cache_dir), progress=progress)
        if _finished_bundle(out_dir, cfg):
            return {"model_dir": out_dir, "reused": True}
        if out_dir.exists():
            shutil.rmtree(out_dir)  # benchmark-owned: an old or interrupted run of other settings
        if "data" not in shared:
            shared["data"] = load_paired_data(cfg, resolve_preset(cfg))
        r = train(cfg, data=shared["data"])
        return {"model_dir": out_dir, "reused": False, "train_time_s": r.train_time_s, "epochs": r.epochs,
                "best_epoch": r.best_epoch, "pairs_per_s": r.pairs_per_s, "params": r.params,
                "best_val": {k: r.best_metrics.get(k) for k in ("val_loss", "recall@1", "recall@5", "mean_rank",
                                                                "chance_mean_rank")},
                "train_pairs": r.data_summary.get("train_pairs"), "val_pairs": r.data_summary.get("val_pairs")}

    return run


def _finished_bundle(out_dir: Path, cfg: Any) -> bool:
    try:
        meta = json.loads((out_dir / "bundle.json").read_text())
    except (OSError, ValueError):
        return False
    tc = meta.get("train_config", {})
    return all(tc.get(k) == getattr(cfg, k) for k in ("data", "preset", "aggregation", "epochs", "seed", "batch_size", "lr"))


def _index_step(archive: Path, phenotypes: Path, store: Any, home: Path, progress: bool):
    from e2r.bundle import load_model
    from indexer.config import IndexConfig
    from indexer.pipeline import index_archive

    def run(model_dir: Path, collection: str) -> dict[str, Any]:
        cfg = IndexConfig(archive=archive, model_dir=model_dir, phenotypes=phenotypes if phenotypes.is_file() else None,
                          collection=collection, salt_path=home / "patient_salt", progress=progress)
        return index_archive(cfg, store, load_model(model_dir)).to_dict()

    return run


def _supervised_step(epochs: int):
    from queries.bench_eval import PhenotypePredictions
    from trainer.supervised import SupervisedConfig, train_supervised

    def run(task) -> tuple[Any, dict[str, Any]]:
        model = train_supervised(task.train_x, task.train_rows, task.val_x, task.val_rows, task.preset,
                                 SupervisedConfig(epochs=epochs, seed=task.seed), out_dir=task.out_dir)
        return PhenotypePredictions(**model.predict(task.test_x)), model.info()

    return run


def _print_result(result: Any, as_json: bool) -> None:
    from queries.report import jsonable, markdown_summary

    res = result.results
    if as_json:
        print_json(jsonable({**res, "out_files": result.out_files}))
        return
    print_table(markdown_summary(res))
    typer.echo("")
    for c in res.get("claims", []):
        verdict = {True: "holds", False: "does NOT hold", None: "not measured"}[c["holds"]]
        typer.echo(f"{c['check']}: {verdict}")
    label = "synthetic phantom data" if res.get("synthetic") else res.get("data")
    typer.echo(f"\n{label}; wall time {res['wall_time_s']:.0f} s; written: {', '.join(result.out_files)}")
