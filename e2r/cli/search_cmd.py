"""`e2r search`: ECG -> the most similar echo studies + the kNN phenotype estimate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from e2r.cli.common import (
    ApiKeyOpt, CollectionOpt, DataDirOpt, JsonOpt, QdrantUrlOpt, handle_errors, print_json, print_table,
)
from e2r.cli.store_opts import open_cli_store


def register(app: typer.Typer) -> None:
    app.command("search")(handle_errors(search))


def search(
    ecg: Path = typer.Argument(..., help="ECG record (WFDB by any of its names, or DICOM ECG); a folder or a .txt list for batch search."),
    top_k: int = typer.Option(10, "--top-k", help="Neighbours to list."),
    k: int = typer.Option(50, "--k", help="Labelled neighbours that vote in the phenotype estimate."),
    filters: Optional[list[str]] = typer.Option(
        None, "--filter", help="Payload filter, repeatable: 'lvef<40', 'study_date>=20200101', 'views=PLAX'."),
    weighting: str = typer.Option("softmax", "--weighting", help="Neighbour weights: softmax (of similarity / 0.1), similarity, uniform."),
    out: Optional[Path] = typer.Option(None, "--out", help="Batch mode: write one JSON line per ECG here."),
    collection: str = CollectionOpt,
    data_dir: Optional[Path] = DataDirOpt,
    qdrant_url: Optional[str] = QdrantUrlOpt,
    api_key: Optional[str] = ApiKeyOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Find the echo studies most similar to an ECG and estimate its phenotypes from them."""
    from e2r.ecg import list_ecg_records
    from e2r.errors import ConfigError, E2RError
    from e2r.store import parse_filter
    from queries.search import Searcher

    if top_k < 1 or k < 1:
        raise ConfigError(f"--top-k {top_k} / --k {k}: both must be >= 1")
    flt = parse_filter(filters) if filters else None
    paths = list_ecg_records(ecg)
    with open_cli_store(data_dir, qdrant_url, api_key) as store:
        searcher = Searcher(store, collection)
        if len(paths) == 1 and out is None and not ecg.is_dir():
            result = searcher.search(paths[0], top_k=top_k, k=k, filter=flt, weighting=weighting)
            if as_json:
                print_json(result.to_dict())
            else:
                _print_result(result)
            return
        if out is None:
            raise ConfigError(f"{ecg}: {len(paths)} ECGs; batch search needs --out results.jsonl")
        from e2r.progress import progress_bar
        from e2r.util import atomic_write, jsonable

        n_ok = n_bad = 0
        lines: list[str] = []
        # Written once, complete (atomic_write): a failed run never leaves a partial or empty file.
        for path, result, error in progress_bar(
            searcher.search_many(paths, top_k=top_k, k=k, filter=flt, weighting=weighting),
            total=len(paths), desc="searching", unit="ecg", disable=as_json,
        ):
            line: dict[str, Any] = {"path": path}
            if error:
                n_bad += 1
                line["error"] = error
                typer.echo(f"skipped: {error}", err=True)
            else:
                n_ok += 1
                line.update(result.to_dict())
            lines.append(json.dumps(jsonable(line), allow_nan=False) + "\n")
        atomic_write(out, lambda fh: fh.write("".join(lines).encode()))
    summary = {"searched": n_ok, "unreadable": n_bad, "out": str(out)}
    if as_json:
        print_json(summary)
    else:
        typer.echo(f"{n_ok} ECGs searched, {n_bad} unreadable; results in {out}")
    if n_ok == 0:
        raise E2RError(f"{ecg}: no readable ECG among {len(paths)} records")


def _print_result(result: Any) -> None:
    rows = []
    for n in result.neighbours:
        p = n.phenotypes
        rows.append({
            "rank": n.rank, "sim": round(n.similarity, 3), "study_uid": n.study_uid, "date": n.study_date,
            "views": list(n.views), "LVEF%": p.get("lvef"), "EDV": p.get("lvedv"), "ESV": p.get("lvesv"),
            "IVSd": p.get("ivsd"), "LVPWd": p.get("lvpwd"), "LA": p.get("la_volume"), "RV": p.get("rv_diameter"),
        })
    typer.echo(f"ECG {result.ecg['path']} ({result.ecg['fs']:g} Hz, {result.ecg['duration_s']:g} s)")
    print_table(rows)
    typer.echo("")
    typer.echo(format_estimate(result.estimate))
    for note in (*result.ecg.get("notes", ()), *result.notes):
        typer.echo(f"note: {note}")


def format_estimate(est: dict[str, Any]) -> str:
    """A human summary of the kNN phenotype estimate dict."""
    if not est.get("n_neighbours"):
        return "phenotype estimate: none (no labelled neighbours)"
    lines = [f"phenotype estimate from {est['n_neighbours']} labelled neighbours:"]
    probs = est.get("lvef_class_probs") or {}
    if probs:
        lines.append("  LVEF class   " + "  ".join(f"{c} {p:.2f}" for c, p in probs.items()))
    if est.get("lvef") is not None:
        lo, hi = est.get("lvef_interval") or (None, None)
        span = f" (interval {lo:.1f}-{hi:.1f})" if lo is not None else ""
        lines.append(f"  LVEF         {est['lvef']:.1f} %{span}")
    for key, label in (("p_lvef_le45", "LVEF <= 45%"), ("p_lvh", "LV wall >= 13 mm")):
        if est.get(key) is not None:
            lines.append(f"  P({label}) {est[key]:.2f}")
    return "\n".join(lines)
