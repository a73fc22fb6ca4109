"""`e2r demo`: the whole path on a fresh machine — phantom archive, echo tower, alignment, index, search."""

from __future__ import annotations

import csv
import dataclasses
import shlex
from pathlib import Path
from typing import Any, Optional

import typer

from e2r.cli.common import DEFAULT_COLLECTION, JsonOpt, handle_errors, print_json



def register(app: typer.Typer) -> None:
    app.command("demo")(handle_errors(demo))


def demo(
    workdir: Path = typer.Option(Path("e2r-demo"), "--workdir", help="Folder for the demo's cohort, tower, model and store (reused on re-runs)."),
    patients: int = typer.Option(240, "--patients", help="Phantom patients to generate."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Alignment epochs (default: the tiny preset's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the cohort and of training."),
    as_json: bool = JsonOpt,
) -> None:
    """Run e2r end to end on a synthetic (phantom) cohort: synth -> echo tower -> align -> index -> search.

    The echo tower is pretrained on the cohort's measured phenotypes (train split), frozen, and the
    tiny ECG encoder is aligned to it. Each step reuses what a previous run left in --workdir, so
    a second run only searches. Prints the search command to try next.
    """
    from e2r.bundle import load_model
    from e2r.errors import DataError
    from e2r.phantom import write_cohort
    from e2r.store import open_store
    from indexer.config import IndexConfig
    from indexer.pipeline import index_archive
    from queries.search import Searcher
    from trainer.align import train
    from trainer.config import make_train_config
    from trainer.echo_pretrain import ECHO_DEFAULTS, train_echo_tower

    say = (lambda msg: None) if as_json else (lambda msg: typer.echo(msg, err=True))
    cohort, tower_dir, model_dir, home = workdir / "cohort", workdir / "echo-tower", workdir / "model", workdir / "home"
    cache = str(workdir / "cache")

    if (cohort / "manifest.json").is_file():
        say(f"[1/5] phantom cohort: reusing {cohort}")
    else:
        say(f"[1/5] phantom cohort: writing {patients} synthetic patients to {cohort}")
        write_cohort(cohort, patients=patients, seed=seed)

    if (tower_dir / "tower.json").is_file():
        say(f"[2/5] echo tower: reusing {tower_dir}")
    else:
        say(f"[2/5] echo tower: pretraining the video encoder on the measured phenotypes into {tower_dir}")
        try:
            train_echo_tower(make_train_config(cohort, tower_dir, preset="tiny", defaults=ECHO_DEFAULTS, seed=seed,
                                               cache_dir=cache, workers=2, progress=not as_json))
        except DataError as err:
            raise DataError(f"{err} (for the demo: delete {workdir} and run it with more --patients, e.g. 240)") from None

    if (model_dir / "bundle.json").is_file():
        say(f"[3/5] model: reusing {model_dir}")
    else:
        say(f"[3/5] model: aligning the tiny ECG encoder to the frozen tower into {model_dir}")
        train(make_train_config(cohort, model_dir, preset="tiny", epochs=epochs, seed=seed, cache_dir=cache,
                                echo_encoder=str(tower_dir), progress=not as_json))
    loaded = load_model(model_dir)

    with open_store(home) as store:
        say(f"[4/5] index: embedding the echo archive into the embedded store at {home}")
        summary = index_archive(
            IndexConfig(archive=cohort / "echo", model_dir=model_dir, phenotypes=cohort / "phenotypes.csv",
                        collection=DEFAULT_COLLECTION, salt_path=home / "patient_salt", progress=not as_json),
            store, loaded,
        )
        ecg_path, truth_uid = _held_out_ecg(cohort)
        say(f"[5/5] search: held-out test ECG {ecg_path}")
        # Every study is ranked so the paired study's rank is known; the table shows the top 10.
        full = Searcher(store, DEFAULT_COLLECTION, model=loaded).search(ecg_path, top_k=summary.total_in_collection, k=25)
    result = dataclasses.replace(full, neighbours=full.neighbours[:10])
    truth = _phenotypes_of(cohort / "phenotypes.csv", truth_uid)
    paired_rank = next((n.rank for n in full.neighbours if n.study_uid == truth_uid), None)
    est_lvef = result.estimate.get("lvef")
    lvef_error = abs(est_lvef - truth["lvef"]) if est_lvef is not None and truth.get("lvef") is not None else None
    next_cmd = f"e2r search {shlex.quote(str(ecg_path))} --data-dir {shlex.quote(str(home))}"

    if as_json:
        print_json({"index": summary.to_dict(), "search": result.to_dict(), "truth": truth,
                    "paired_study_uid": truth_uid, "paired_study_rank": paired_rank,
                    "studies": summary.total_in_collection, "lvef_estimate_error": lvef_error,
                    "next_command": next_cmd})
        return
    from e2r.cli.search_cmd import _print_result

    typer.echo(f"indexed {summary.total_in_collection} studies ({summary.indexed} new, {summary.unchanged} unchanged)")
    _print_result(result)
    typer.echo("")
    typer.echo(
        "truth (this ECG's paired echo, synthetic): "
        + ", ".join(f"{k} {truth.get(k)}" for k in ("lvef", "lvef_class", "lvedv", "lvesv", "ivsd", "lvpwd", "la_volume", "rv_diameter"))
    )
    typer.echo(f"paired study rank: {paired_rank} of {summary.total_in_collection}")
    if lvef_error is not None:
        typer.echo(f"LVEF estimate {est_lvef:.1f} % vs measured {truth['lvef']:.1f} %: error {lvef_error:.1f} points")
    typer.echo("All data above are synthetic (e2r's phantom cohort), not patients.")
    typer.echo(f"\nnext: {next_cmd}")


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
