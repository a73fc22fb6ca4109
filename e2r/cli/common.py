"""What every command shares: error handling, JSON output, and options defined once."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from e2r.errors import E2RError

DEFAULT_COLLECTION = "echo_studies"


def default_home() -> Path:
    """Where the embedded store and caches live when `--data-dir` / E2R_HOME are not given."""
    from e2r.util import DEFAULT_HOME

    return DEFAULT_HOME


# Options shared by several commands (typer reads the env vars here, at the CLI edge only).
JsonOpt = typer.Option(False, "--json", help="Print one JSON document instead of a table.")
DataDirOpt = typer.Option(
    None, "--data-dir", envvar="E2R_HOME",
    help="Folder of the embedded Qdrant store (default ~/.e2r; env E2R_HOME).",
)
QdrantUrlOpt = typer.Option(
    None, "--qdrant-url", envvar="E2R_QDRANT_URL",
    help="Qdrant server or cluster URL; when set, the embedded store is not used (env E2R_QDRANT_URL).",
)
ApiKeyOpt = typer.Option(
    None, "--api-key", envvar="E2R_QDRANT_API_KEY",
    help="API key for the Qdrant server (env E2R_QDRANT_API_KEY).",
)
CollectionOpt = typer.Option(DEFAULT_COLLECTION, "--collection", help="Collection name in the store.")
# Training commands (train, train-echo).
DataOpt = typer.Option(..., "--data", help="Cohort folder holding pairs.csv and phenotypes.csv (e.g. from `e2r synth`), "
                       "or a pairs CSV (ecg_path, study_uid, patient_id, days, split; split by patient).")
ArchiveOpt = typer.Option(None, "--archive", help="Echo DICOM archive (default: `COHORT/echo`).")
SeedOpt = typer.Option(0, "--seed", help="Random seed (model init, data order, augmentations).")
DeviceOpt = typer.Option("auto", "--device", help="auto (CUDA + bf16 when present), cpu or cuda.")
CacheDirOpt = typer.Option(None, "--cache-dir", envvar="E2R_CACHE",
                           help="Cache of decoded videos, preprocessed ECGs and tower embeddings, shared by "
                                "train-echo and train (default $E2R_HOME/cache; env E2R_CACHE).")
ResumeOpt = typer.Option(False, "--resume", help="Continue from `OUT/checkpoints/last.pt` after an interruption.")
GroupByOpt = typer.Option(
    "uid", "--group-by",
    help="Group videos into studies by DICOM StudyInstanceUID (uid) or by the folder holding them (folder: the "
         "folder name is the study key, e.g. MIMIC-IV-ECHO's s<study_id>; use it everywhere once `e2r pair` says the "
         "UIDs are not one per folder).")
QuietOpt = typer.Option(False, "--quiet", help="No progress bars.")
# The ECG input of a trained model (train, eval --benchmark); the choices are
# e2r.ecg.preprocess.NORMALISE_MODES, spelled out here so that `--help` imports nothing.
EcgNormaliseOpt = typer.Option(
    None, "--ecg-normalise",
    help="ECG input normalisation (default: the preset's, mv_softclip, chosen by the issue-22 ablation): mv_softclip "
         "(mV on a fixed scale, tanh soft limit at 5 mV, keeps the QRS voltage), lead_groups (the Echo2ECG paper's "
         "z-score per lead group), lead_groups_logscale (the z-score times "
         "each group's compressed voltage), lead, record or none (mV as is). The bundle records it; index, search and "
         "embed use the bundle's.")


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn user errors into `Error: ...` on stderr and exit code 1; Ctrl-C into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except E2RError as err:
            typer.echo(f"Error: {err}", err=True)
            raise typer.Exit(1) from None
        except ModuleNotFoundError as err:
            if err.name != "torch":
                raise
            # The serving install (pyproject's serve-onnx group) leaves torch out on purpose.
            typer.echo("Error: this command needs torch, which this install of e2r leaves out (the serving "
                       "install runs search, serve, embed and eval --ecg-labels on a bundle with an ONNX graph); "
                       "install e2r with torch (pip install e2r) to run it", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("Interrupted; work done so far is kept.", err=True)
            raise typer.Exit(130) from None

    return wrapper


def print_json(obj: Any) -> None:
    """Print a JSON document with stable key order (e2r.util.jsonable makes the values plain)."""
    from e2r.util import jsonable

    sys.stdout.write(json.dumps(jsonable(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")


def print_table(rows: list[dict[str, Any]], columns: Optional[list[str]] = None) -> None:
    """Print rows as a plain aligned text table."""
    if not rows:
        typer.echo("(none)")
        return
    columns = columns or list(rows[0].keys())
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    typer.echo("  ".join("-" * w for w in widths))
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}"
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)
