"""`e2r phenotypes import ...`: phenotypes.csv from MIMIC-IV-ECHO, EchoNet-Dynamic or any CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from e2r.cli.common import JsonOpt, handle_errors, print_json, print_table
from e2r.cli.pair_cmd import UidCheckOpt, WindowOpt, print_key_report

phenotypes_app = typer.Typer(help="Build the phenotype CSV (one row per echo study) from a dataset's own files.",
                             no_args_is_help=True)
import_app = typer.Typer(help="Import phenotypes from MIMIC-IV-ECHO, EchoNet-Dynamic or any CSV into phenotypes.csv.",
                         no_args_is_help=True)
OutOpt = typer.Option(..., "--out", help="Phenotype CSV to write (written atomically: all or nothing).")


def register(app: typer.Typer) -> None:
    """Add `phenotypes import {mimic-iv-echo, echonet, csv}` to the app."""
    import_app.command("mimic-iv-echo")(handle_errors(import_mimic))
    import_app.command("echonet")(handle_errors(import_echonet))
    import_app.command("csv")(handle_errors(import_csv))
    phenotypes_app.add_typer(import_app, name="import")
    app.add_typer(phenotypes_app, name="phenotypes")


def _write(out: Path, rows: list[dict[str, Any]]) -> None:
    from e2r.datasets.columns import write_atomically
    from e2r.phenotypes import write_phenotypes

    write_atomically(out, lambda tmp: write_phenotypes(tmp, rows))


def _report(out: Path, summary: Any, as_json: bool, extra: Optional[dict[str, Any]] = None) -> None:
    from e2r.datasets.values import PLAUSIBLE

    s = summary
    doc = {"out": str(out), "studies": s.studies, "values": s.values, "rejected": s.rejected,
           "plausible_range": {k: list(v) for k, v in PLAUSIBLE.items()}, "result_kinds": s.result_kinds,
           "unit_converted_cm_to_mm": s.unit_converted, "rows_read": s.rows_read, "rows_used": s.rows_used,
           "rows_skipped": s.rows_skipped, "bad_rows": s.bad_rows.counts, "bad_row_examples": s.bad_rows.examples,
           **(extra or {})}
    if as_json:
        print_json(doc)
        return
    typer.echo(f"{out}: {s.studies} studies")
    table = []
    for fld, n in s.values.items():
        rej = s.rejected.get(fld, {})
        table.append({"field": fld, "studies_with_value": n, "share": round(n / s.studies, 3) if s.studies else 0.0,
                      "rejected": ", ".join(f"{r}={c}" for r, c in sorted(rej.items())) or "-"})
    print_table(table)
    if s.unit_converted:
        typer.echo("cm -> mm by value: " + ", ".join(f"{k}={v}" for k, v in sorted(s.unit_converted.items())))
    if s.result_kinds:
        typer.echo("result strings: " + ", ".join(f"{k}={v}" for k, v in sorted(s.result_kinds.items())))
    if s.bad_rows.total:
        typer.echo(f"{s.bad_rows.total} row(s) not parsed: " + ", ".join(f"{k}={v}" for k, v in sorted(s.bad_rows.counts.items())))
        for example in s.bad_rows.examples[:10]:
            typer.echo(f"  {example}", err=True)


def import_mimic(
    measurements: Path = typer.Option(..., "--measurements", help="structured_measurement.csv.gz (underscore or hyphen; "
                                      "gzip or plain), or the folder holding it."),
    studies: Path = typer.Option(..., "--studies", help="echo-study-list.csv (joins measurement_id to study_id), or its folder."),
    out: Path = OutOpt,
    echo_root: Optional[Path] = typer.Option(None, "--echo-root", help="MIMIC-IV-ECHO root with echo-record-list.csv and "
                                             "files/, to key rows by StudyInstanceUID as `e2r pair` does (default: "
                                             "the folder of --studies when it holds echo-record-list.csv)."),
    ecg_root: Optional[Path] = typer.Option(None, "--ecg-root", help="MIMIC-IV-ECG root: fill `rhythm` from the nearest "
                                            "ECG's machine report (AF/flutter or sinus) within --window-days."),
    window_days: tuple[float, float] = WindowOpt,
    uid_check: str = UidCheckOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Turn MIMIC-IV-ECHO's long-format structured measurements into phenotypes.csv.

    Streams the gzip (bounded memory), keeps tte rows, parses result strings (%, <, >, ranges),
    normalises units (walls and LV diameter in cm or mm by value), rejects implausible values
    (counted per field and reason) and prints how many studies got each field.
    """
    from e2r.datasets.columns import RowErrors
    from e2r.datasets.mimic_echo import (
        RECORD_LIST_NAMES, find_measurements, find_record_list, find_study_list, folder_key, import_mimic_echo,
        merge_studies, read_record_list, read_study_list, study_keys,
    )

    errors = RowErrors()
    meas = find_measurements(measurements) if measurements.is_dir() else measurements
    study_csv = find_study_list(studies) if studies.is_dir() else studies
    study_rows = read_study_list(study_csv, errors)
    root = echo_root
    if root is None and any((study_csv.parent / n).is_file() for n in RECORD_LIST_NAMES):
        root = study_csv.parent
    extra: dict[str, Any] = {}
    if root is not None:
        folders = read_record_list(find_record_list(root), errors)
        study_rows = merge_studies(study_rows, folders, lambda r: None)
        keys, report = study_keys(root, folders, uid_check, progress=not as_json)
        extra["group_by"] = report.group_by
        if not as_json:
            print_key_report(report)
    else:
        keys = {sid: folder_key(sid) for sid in study_rows}
        extra["group_by"] = "folder"
        if not as_json:
            typer.echo("no echo-record-list.csv: rows keyed by folder name (s<study_id>); index with "
                       "`e2r index --group-by folder`, or give --echo-root", err=True)
    rhythm = None
    if ecg_root is not None:
        from e2r.datasets.pairing import rhythm_lookup

        by_study = rhythm_lookup(ecg_root, study_rows, window_days, errors)
        rhythm = lambda s: by_study.get(s.study_id)  # noqa: E731
    rows, summary = import_mimic_echo(meas, study_rows, keys, rhythm=rhythm, progress=not as_json)
    for reason, n in errors.counts.items():
        summary.bad_rows.counts[reason] = summary.bad_rows.counts.get(reason, 0) + n
    summary.bad_rows.examples[:0] = errors.examples
    _write(out, rows)
    _report(out, summary, as_json, extra)


def import_echonet(
    filelist: Path = typer.Option(..., "--filelist", help="EchoNet-Dynamic FileList.csv."),
    out: Path = OutOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Turn EchoNet-Dynamic's FileList.csv into phenotypes.csv (lvef = EF, lvesv = ESV, lvedv = EDV;
    one study per video, keyed by FileName)."""
    from e2r.datasets.phenotype_import import import_echonet as run

    rows, summary = run(filelist)
    _write(out, rows)
    _report(out, summary, as_json)


def import_csv(
    file: Path = typer.Argument(..., help="Any CSV with one row per echo study."),
    map_: str = typer.Option("", "--map", help="field=COLUMN[:unit],... e.g. study_uid=StudyUID,lvef=EF,ivsd=IVSd:cm "
                             "(units: mm, cm, %, fraction, ml, l, g, bpm); unmapped fields use a column of their own name."),
    out: Path = OutOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Turn any CSV into phenotypes.csv through a column map, with unit conversion and plausibility checks."""
    from e2r.datasets.phenotype_import import import_mapped_csv, parse_map

    rows, summary = import_mapped_csv(file, parse_map(map_))
    _write(out, rows)
    _report(out, summary, as_json)
