"""`e2r demo`: the whole path on a fresh machine — phantom archive, tiny training, index, search."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Optional

import typer

from e2r.cli.common import JsonOpt, handle_errors, print_json

DEMO_COLLECTION = "demo"


def register(app: typer.Typer) -> None:
    app.command("demo")(handle_errors(demo))


def demo(
    workdir: Path = typer.Option(Path("e2r-demo"), "--workdir", help="Folder for the demo's cohort, model and store (reused on re-runs)."),
    patients: int = typer.Option(240, "--patients", help="Phantom patients to generate."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Training epochs (default: the tiny preset's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the cohort and of training."),
    as_json: bool = JsonOpt,
) -> None:
    """Run e2r end to end on a synthetic (phantom) cohort: synth -> train tiny -> index -> search.

    Each step reuses what a previous run left in --workdir, so a second run only searches.
    """
    from e2r.bundle import load_model
    from e2r.phantom import write_cohort
    from e2r.store import open_store
    from indexer.config import IndexConfig
    from indexer.pipeline import index_archive
    from queries.search import Searcher
    from trainer.config import make_train_config
    from trainer.loop import train

    say = (lambda msg: None) if as_json else (lambda msg: typer.echo(msg, err=True))
    cohort, model_dir, home = workdir / "cohort", workdir / "model", workdir / "home"

    if (cohort / "manifest.json").is_file():
        say(f"[1/4] phantom cohort: reusing {cohort}")
    else:
        say(f"[1/4] phantom cohort: writing {patients} synthetic patients to {cohort}")
        write_cohort(cohort, patients=patients, seed=seed)

    if (model_dir / "bundle.json").is_file():
        say(f"[2/4] model: reusing {model_dir}")
    else:
        say(f"[2/4] model: training the tiny preset into {model_dir}")
        train(make_train_config(cohort, model_dir, preset="tiny", epochs=epochs, seed=seed, progress=not as_json))
    loaded = load_model(model_dir)

    with open_store(home) as store:
        say(f"[3/4] index: embedding the echo archive into the embedded store at {home}")
        summary = index_archive(
            IndexConfig(archive=cohort / "echo", model_dir=model_dir, phenotypes=cohort / "phenotypes.csv",
                        collection=DEMO_COLLECTION, salt_path=home / "patient_salt", progress=not as_json),
            store, loaded,
        )
        ecg_path, truth_uid = _held_out_ecg(cohort)
        say(f"[4/4] search: held-out test ECG {ecg_path}")
        result = Searcher(store, DEMO_COLLECTION, model=loaded).search(ecg_path, top_k=10, k=25)
    truth = _phenotypes_of(cohort / "phenotypes.csv", truth_uid)
    paired_rank = next((n.rank for n in result.neighbours if n.study_uid == truth_uid), None)

    if as_json:
        print_json({"index": summary.to_dict(), "search": result.to_dict(), "truth": truth,
                    "paired_study_uid": truth_uid, "paired_study_rank_in_top10": paired_rank})
        return
    from e2r.cli.search_cmd import _print_result

    typer.echo(f"indexed {summary.total_in_collection} studies ({summary.indexed} new, {summary.unchanged} unchanged)")
    _print_result(result)
    typer.echo("")
    typer.echo(
        "truth (this ECG's paired echo, synthetic): "
        + ", ".join(f"{k} {truth.get(k)}" for k in ("lvef", "lvef_class", "lvedv", "lvesv", "ivsd", "lvpwd", "la_volume", "rv_diameter"))
    )
    typer.echo(f"paired study rank: {paired_rank if paired_rank else 'not in the top 10'} of {summary.total_in_collection}")
    typer.echo("All data above are synthetic (e2r's phantom cohort), not patients.")


def _held_out_ecg(cohort: Path) -> tuple[Path, str]:
    """The first test-split ECG of the pairs CSV and its paired study UID."""
    from e2r.errors import DataError

    with (cohort / "pairs.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("split") == "test" and row.get("ecg_path"):
                return cohort / row["ecg_path"], row["study_uid"]
    raise DataError(f"{cohort / 'pairs.csv'}: no test-split ECG; delete {cohort} and run the demo again")


def _phenotypes_of(csv_path: Path, study_uid: str) -> dict[str, Any]:
    from e2r.phenotypes import read_phenotypes

    rows, _ = read_phenotypes(csv_path)
    return rows.get(study_uid, {})
