"""`e2r pair mimic`: pairs.csv from MIMIC-IV-ECG + MIMIC-IV-ECHO's own lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from e2r.cli.common import JsonOpt, handle_errors, print_json, print_table

pair_app = typer.Typer(help="Pair ECGs with echo studies of the same patient into a pairs CSV.",
                       no_args_is_help=True)

WindowOpt = typer.Option((14.0, 14.0), "--window-days", metavar="BEFORE AFTER",
                         help="Use an ECG at most BEFORE days before and AFTER days after the echo (default 14 14).")
UidCheckOpt = typer.Option("ends", "--uid-check",
                           help="Read the StudyInstanceUID of the first and last DICOM of each study folder "
                                "(ends) or of every file (all) to check it is one per folder.")


def register(app: typer.Typer) -> None:
    """Add `pair` (with `pair mimic`) to the app."""
    pair_app.command("mimic")(handle_errors(pair_mimic))
    app.add_typer(pair_app, name="pair")


def print_key_report(report: Any) -> None:
    """One line on how study keys were chosen (shared with `e2r phenotypes import mimic-iv-echo`)."""
    r = report
    line = (f"study UIDs: {r.folders_read} of {r.folders} study folders read ({r.files_read} files); "
            f"{len(r.mixed_uid_folders)} folder(s) with more than one StudyInstanceUID, "
            f"{r.uid_in_several_folders} UID(s) in several folders")
    typer.echo(line, err=True)
    if r.group_by == "folder":
        why = "no DICOM files were readable" if not r.folders_read else "the UIDs are not one per folder"
        typer.echo(f"study key = folder name (s<study_id>) because {why}: index with `e2r index --group-by folder`"
                   + (f" (e.g. {', '.join(r.mixed_uid_folders[:3])})" if r.mixed_uid_folders else ""), err=True)


def pair_mimic(
    ecg_root: Path = typer.Option(..., "--ecg-root", help="MIMIC-IV-ECG root (holds record_list.csv and files/)."),
    echo_root: Path = typer.Option(..., "--echo-root", help="MIMIC-IV-ECHO root (holds echo-record-list.csv, "
                                   "echo-study-list.csv and files/)."),
    out: Path = typer.Option(..., "--out", help="Pairs CSV to write (ecg_path relative to its folder)."),
    window_days: tuple[float, float] = WindowOpt,
    seed: int = typer.Option(0, "--seed", help="Seed of the patient-level split hash (same seed, same split)."),
    uid_check: str = UidCheckOpt,
    as_json: bool = JsonOpt,
) -> None:
    """For each MIMIC-IV-ECHO study, the nearest MIMIC-IV-ECG ECG of the same subject in the window.

    Writes ECG-echo pairs and, for studies without an ECG in the window, archive rows (empty
    ecg_path); the split is by patient from a seeded hash. Prints pairs, patients, the
    histogram of days (ECG minus echo) and what was dropped and why.
    """
    from e2r.datasets.columns import RowErrors, write_atomically
    from e2r.datasets.mimic_ecg import read_record_list as read_ecgs
    from e2r.datasets.mimic_echo import (
        find_record_list, find_study_list, merge_studies, read_record_list, read_study_list, study_keys,
    )
    from e2r.datasets.pairing import pair_studies
    from e2r.errors import ConfigError
    from e2r.pairs import write_pairs

    before, after = window_days
    if before < 0 or after < 0:
        raise ConfigError(f"--window-days {before:g} {after:g}: both must be >= 0 (days before and after the echo)")
    if uid_check not in ("ends", "all"):
        raise ConfigError(f"--uid-check {uid_check!r}: must be ends or all")
    errors = RowErrors()
    folders = read_record_list(find_record_list(echo_root), errors)
    studies = read_study_list(find_study_list(echo_root), errors)
    dropped: dict[str, int] = {}
    studies = merge_studies(studies, folders, lambda r: dropped.__setitem__(r, dropped.get(r, 0) + 1))
    ecgs = read_ecgs(ecg_root, errors, {s.subject_id for s in studies.values()}, dropped)
    keys, key_report = study_keys(echo_root, folders, uid_check, progress=not as_json)
    rows, summary = pair_studies(ecgs, studies, keys, ecg_root, out, (before, after), seed)
    for reason, n in dropped.items():
        summary.drop(reason, n)
    for reason, n in errors.counts.items():
        summary.drop(f"bad_row:{reason}", n)
    write_atomically(out, lambda tmp: write_pairs(tmp, rows))
    doc = {"out": str(out), "pairs": summary.pairs, "archive_rows": summary.archive_rows,
           "patients_paired": summary.patients, "patients": summary.patients_total, "splits": summary.splits,
           "window_days": [before, after], "seed": seed, "group_by": key_report.group_by,
           "days_histogram": summary.days_histogram, "dropped": dict(sorted(summary.dropped.items())),
           "bad_row_examples": errors.examples, "key_check": vars(key_report)}
    if as_json:
        print_json(doc)
        return
    print_key_report(key_report)
    typer.echo(f"{out}: {summary.pairs} pairs of {summary.patients} patients, {summary.archive_rows} archive "
               f"studies without an ECG in [-{before:g}, +{after:g}] days; patients per split {summary.splits}")
    typer.echo("days (ECG minus echo):")
    print_table(summary.days_histogram)
    if summary.dropped:
        typer.echo("dropped / not paired: " + ", ".join(f"{k}={v}" for k, v in sorted(summary.dropped.items())))
    for example in errors.examples[:10]:
        typer.echo(f"bad row: {example}", err=True)
