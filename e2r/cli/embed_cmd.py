"""`e2r embed`: ECGs -> a file of their embeddings (e2r.embed.write_embeddings)."""

from __future__ import annotations

from pathlib import Path

import typer

from e2r.cli.common import JsonOpt, handle_errors, print_json


def register(app: typer.Typer) -> None:
    app.command("embed")(handle_errors(embed))


def embed(
    ecgs: list[Path] = typer.Argument(..., help="ECG records (WFDB by any of its names, or DICOM ECG), folders of them, or .txt lists of them."),
    model: Path = typer.Option(..., "--model", help="Model bundle folder (from `e2r train`)."),
    out: Path = typer.Option(..., "--out", help="Embeddings file, ending in .npz; OUT.csv, OUT.errors.csv and OUT.json go beside it."),
    batch_size: int = typer.Option(64, "--batch-size", help="ECGs read and encoded per batch."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an --out made by another model (or not by `e2r embed`) instead of refusing it."),
    as_json: bool = JsonOpt,
) -> None:
    """Write the Echo2ECG embeddings of ECGs to a file numpy and pandas load in one line.

    One row per readable ECG, encoded exactly as `e2r search` encodes its query. OUT.npz holds
    `embedding` (N, D), the shared ECG-echo space the search queries with, and `features` (N, C), the
    ECG encoder's pooled output before the projection head, with `path`, `record`, `fs`,
    `duration_s` and `fingerprint` per row and the model hash and preprocessing in `meta`. OUT.csv
    has the same rows for pandas, OUT.json the meta.

    Unreadable ECGs are skipped and listed with their reason in OUT.errors.csv. A re-run reuses the
    rows whose files and model have not changed, so a large set can be embedded in pieces.
    """
    from e2r.bundle import load_ecg_encoder
    from e2r.embed import write_embeddings

    loaded = load_ecg_encoder(model)
    summary = write_embeddings(ecgs, loaded, out, batch_size=batch_size, overwrite=overwrite,
                               progress=not as_json)
    if as_json:
        print_json(summary.to_dict())
        return
    skipped = f"; {summary.skipped} skipped, reasons in {summary.files['errors']}" if summary.skipped else ""
    typer.echo(f"{summary.rows} ECGs in {out} ({summary.encoded} encoded, {summary.reused} reused){skipped}")
