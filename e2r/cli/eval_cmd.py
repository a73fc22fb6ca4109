"""`e2r eval`: the benchmark (`--benchmark`, on the phantom cohort) or the same metrics for a user's
own model and paired data (`--model MODEL_DIR --pairs PAIRS.csv`).

The protocol lives in queries.eval.protocol and its composition (the real training and indexing)
in queries.eval.run; this command parses the options, calls one of them and prints the result.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from e2r.cli.common import ApiKeyOpt, CollectionOpt, DataDirOpt, JsonOpt, QdrantUrlOpt, handle_errors, print_json, print_table
from queries.eval.sizes import DEFAULT, QUICK


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
    (Echo2ECG) alignment to the seed's frozen echo tower (pretrained on the train split's
    measurements), the tower alone (echo -> echo), and a supervised ECG->phenotype ceiling, as
    mean ± SD over seeds.
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
    from queries.eval.run import run_model_eval, run_phantom_benchmark

    if benchmark:
        size = QUICK if quick else DEFAULT
        result = run_phantom_benchmark(size, seeds, patients, epochs, preset, cohort, workdir, out, data_dir,
                                        qdrant_url, api_key, say, command, progress=not as_json)
    else:
        for flag, value in (("--quick", quick), ("--cohort", cohort)):
            if value:
                raise ConfigError(f"{flag} belongs to --benchmark; drop it when evaluating --model")
        if pairs is None:
            raise ConfigError("--model needs --pairs PAIRS.csv (your paired ECG/echo data with a test split)")
        result = run_model_eval(model, pairs, archive, phenotypes, collection, workdir, out, data_dir, qdrant_url,
                                 api_key, say, command, progress=not as_json)
    _print_result(result, as_json)


def _print_result(result: Any, as_json: bool) -> None:
    from queries.eval.report import markdown_summary

    res = result.results
    if as_json:
        print_json({**res, "out_files": result.out_files})
        return
    print_table(markdown_summary(res))
    typer.echo("")
    for c in res.get("claims", []):
        verdict = {True: "holds", False: "does NOT hold", None: "not measured"}[c["holds"]]
        typer.echo(f"{c['check']}: {verdict}")
    label = "synthetic phantom data" if res.get("synthetic") else res.get("data")
    typer.echo(f"\n{label}; wall time {res['wall_time_s']:.0f} s; written: {', '.join(result.out_files)}")
