"""`e2r synth`: write the phantom cohort; `e2r synth-report`: measure one that exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from e2r.cli.common import CacheDirOpt, DataDirOpt, JsonOpt, handle_errors, print_json, print_table


def _print_check(report: Any) -> None:
    rows = [{"figure": f.name, "value": round(f.value, 3), "bar": f.threshold,
             "ok": "yes" if f.passed else "NO", "detail": f.detail} for f in report.figures]
    typer.echo(f"\nCohort check (synthetic data): {report.n_ecgs} ECGs, {report.n_videos} videos")
    print_table(rows, ["figure", "value", "bar", "ok", "detail"])


def register(app: typer.Typer) -> None:
    """Add `synth` and `synth-report` to the app."""
    app.command("synth")(handle_errors(synth))
    app.command("synth-report")(handle_errors(synth_report))


def synth(
    out: Path = typer.Argument(..., help="Output folder (new or empty)."),
    patients: int = typer.Option(200, "--patients", "-n", help="Number of patients."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed writes the same cohort."),
    uncompressed: bool = typer.Option(False, "--uncompressed", help="Store echo pixels uncompressed instead of JPEG baseline."),
    size: int = typer.Option(128, "--size", help="Echo video rows = columns (pixels)."),
    frames: int = typer.Option(32, "--frames", help="Frames per echo video."),
    workers: int = typer.Option(2, "--workers", help="Worker processes."),
    version: int = typer.Option(1, "--version", help="Phantom generator version. 1 (the default) writes the "
                                "original phantom, byte-identical to earlier e2r; the benchmark figures in the "
                                "README were measured on it. 2 adds regional LV function (each heart's 17 AHA "
                                "segments scored on the ASE scale in coronary territories, LVEF following from "
                                "them, wmsi and territory in phenotypes.csv) and archive-like studies (repeated "
                                "views, off-axis and poor clips, missing views); the benchmark has not run on it "
                                "yet, so it is opt-in."),
    check: bool = typer.Option(False, "--check", help="Measure the written cohort and print the check figures."),
    layout: str = typer.Option("e2r", "--layout", help="e2r (OUT/echo, OUT/ecg, pairs.csv, phenotypes.csv) or mimic "
                               "(MIMIC-IV-ECG + MIMIC-IV-ECHO folders and CSVs, for `e2r pair mimic` and "
                               "`e2r phenotypes import mimic-iv-echo`)."),
    as_json: bool = JsonOpt,
) -> None:
    """Write a synthetic (phantom) cohort of paired ECGs and multi-view echo studies.

    Writes OUT/echo (DICOM studies), OUT/ecg (WFDB records), OUT/phenotypes.csv,
    OUT/pairs.csv and OUT/manifest.json (--layout mimic: OUT/mimic-iv-ecg, OUT/mimic-iv-echo in the
    datasets' own layouts). All data are synthetic.
    """
    from e2r.errors import ConfigError
    from e2r.phantom import write_cohort

    if layout not in ("e2r", "mimic"):
        raise ConfigError(f"--layout {layout!r}: must be e2r or mimic")
    if layout == "mimic" and check:
        raise ConfigError("--check measures the e2r layout; run `e2r synth` without --layout mimic to check a cohort")
    if layout == "mimic":
        from e2r.phantom.mimic_layout import write_mimic_cohort as write_cohort  # noqa: F811

    summary = write_cohort(out, patients, seed, compressed=not uncompressed, size=size,
                           frames=frames, workers=workers, progress=not as_json, version=version)
    report = None
    if check:
        from e2r.phantom.check import check_cohort

        report = check_cohort(out, progress=not as_json)
    if as_json:
        doc = {"summary": summary.as_dict()}
        if report is not None:
            doc["check"] = report.as_dict()
        print_json(doc)
    else:
        s = summary
        print_table([{
            "patients": s.patients, "studies": s.studies, "unpaired": s.unpaired_studies,
            "videos": s.videos, "ecgs": s.ecgs, "mean_dcm_kb": round(s.dicom_bytes_mean / 1024, 1),
            "max_dcm_kb": round(s.dicom_bytes_max / 1024, 1), "seconds": round(s.seconds, 1),
            "patients_per_s": round(s.patients_per_s, 2),
        }])
        typer.echo(f"Synthetic cohort (generator {s.generator_version}) written to {s.out_dir} "
                   f"(views: {s.views}; splits: {s.splits})")
        if report is not None:
            _print_check(report)
    if report is not None and not report.passed:
        raise typer.Exit(2)


def synth_report(
    out: Path = typer.Argument(..., help="A cohort folder written by `e2r synth`."),
    max_ecgs: int = typer.Option(0, "--max-ecgs", help="Measure at most this many ECGs (0 = all)."),
    max_videos: int = typer.Option(0, "--max-videos", help="Measure at most this many videos (0 = all)."),
    tower: Optional[Path] = typer.Option(
        None, "--tower", help="An echo tower (`e2r train-echo --data OUT`) to read the views through: adds the "
        "per-view table (a ridge probe on the frozen tower's clip features, fitted on the train split, val r "
        "per view, per clip and per study, wmsi included) and checks it against the published ordering."),
    cache_dir: Optional[Path] = CacheDirOpt,
    data_dir: Optional[Path] = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Measure a phantom cohort's files and print whether it carries the morphology it claims.

    Exit code 2 when a figure misses its bar (small cohorts can: use a few hundred patients).
    """
    from e2r.phantom.check import check_cohort

    report = check_cohort(out, max_ecgs=max_ecgs or None, max_videos=max_videos or None,
                          progress=not as_json)
    views, expectations = None, []
    if tower is not None:
        from e2r.cli.store_opts import home_dir
        from trainer.view_probe import probe_views, view_expectations

        views = probe_views(tower, out, cache_dir or home_dir(data_dir) / "cache", progress=not as_json)
        expectations = view_expectations(views)
    if as_json:
        doc = report.as_dict()
        if views is not None:
            doc["views"] = {**views.as_dict(), "passed": all(f.passed for f in expectations),
                            "expectations": [vars(f) for f in expectations]}
        print_json(doc)
    else:
        _print_check(report)
        if views is not None:
            _print_views(views, expectations)
    if not report.passed or not all(f.passed for f in expectations):
        raise typer.Exit(2)


def _print_views(views: Any, expectations: list) -> None:
    from trainer.view_probe import format_table

    typer.echo(f"\nWhat each view carries: val Pearson r of a linear probe on the frozen tower ({views.summary['probe']}; "
               f"{views.summary['train_studies']} train / {views.summary['val_studies']} val studies)")
    print_table(format_table(views), ["row", "val n", *views.fields])
    rows = [{"expectation": f.name, "margin": round(f.value, 3), "bar": f.threshold,
             "ok": "yes" if f.passed else "NO", "detail": f.detail} for f in expectations]
    typer.echo("\nAgainst the published ordering (issue 21)")
    print_table(rows, ["expectation", "margin", "bar", "ok", "detail"])
