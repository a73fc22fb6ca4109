"""`e2r inspect PATH`: say what e2r sees in an ECG record, an echo video, or an echo archive folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from e2r.cli.common import GroupByOpt, JsonOpt, handle_errors, print_json, print_table

_WAVEFORM_SOP_PREFIX = "1.2.840.10008.5.1.4.1.1.9."  # DICOM waveform storage classes (ECG, ...)
_MAX_STUDY_ROWS = 50
_EXAMPLES_PER_REASON = 3


def register(app: typer.Typer) -> None:
    app.command("inspect")(handle_errors(inspect))


def inspect(
    path: Path = typer.Argument(..., help="An ECG (WFDB record or DICOM ECG), a DICOM echo video, or an archive folder."),
    workers: int = typer.Option(1, "--workers", min=1, help="Threads reading DICOM headers when PATH is a folder."),
    group_by: str = GroupByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Show what e2r reads from PATH: leads, rate and signal ranges of an ECG; header of an echo
    video; studies, videos, views, frames and skipped files (with reasons) of an archive folder."""
    kind = detect_kind(path)
    if kind == "archive":
        report = archive_report(path, workers=workers, group_by=group_by)
    elif kind == "ecg":
        report = ecg_report(path)
    else:
        report = video_report(path)
    if as_json:
        print_json(report)
    else:
        _PRINTERS[kind](report)


def detect_kind(path: Path) -> str:
    """"archive" for a folder, "ecg" for WFDB names or a DICOM waveform, else "echo"."""
    from e2r.errors import DataError

    if path.is_dir():
        return "archive"
    if not path.exists():
        if Path(f"{path}.hea").is_file():
            return "ecg"
        raise DataError(f"{path}: no such file or folder; check the path.")
    if path.suffix.lower() in (".hea", ".dat", ".mat"):
        return "ecg"
    if (path.suffix and path.with_suffix(".hea").is_file()) or Path(f"{path}.hea").is_file():
        return "ecg"
    from e2r.echo import is_dicom_file

    if is_dicom_file(path) and _is_dicom_waveform(path):
        return "ecg"
    return "echo"  # read_video_header explains what is wrong with anything else


def _is_dicom_waveform(path: Path) -> bool:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True,
                             specific_tags=["Modality", "SOPClassUID", "WaveformSequence"])
        modality = str(ds.get("Modality", "") or "").upper()
        sop = str(ds.get("SOPClassUID", "") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", "")
                  or "")
    except Exception:  # unreadable headers are reported by the echo reader with a reason
        return False
    if not modality and not sop:  # untagged: what it holds decides, as for read_ecg, which reads any waveform
        return "WaveformSequence" in ds
    return modality in ("ECG", "HD") or sop.startswith(_WAVEFORM_SOP_PREFIX)


def ecg_report(path: Path) -> dict[str, Any]:
    """Leads, sampling rate, duration, derived leads and per-lead signal ranges of one ECG."""
    import numpy as np

    from e2r.ecg import read_ecg

    rec = read_ecg(path)
    leads = []
    for name, row in zip(rec.leads, rec.signal):
        finite = row[np.isfinite(row)]
        leads.append({
            "lead": name,
            "derived": name in rec.derived,
            "min_mv": float(finite.min()) if finite.size else None,
            "max_mv": float(finite.max()) if finite.size else None,
            "std_mv": float(finite.std()) if finite.size else None,
            "missing_fraction": float(1.0 - finite.size / max(row.size, 1)),
        })
    return {
        "kind": "ecg",
        "path": str(path),
        "record_name": rec.record_name,
        "fs_hz": float(rec.fs),
        "n_samples": int(rec.signal.shape[1]),
        "duration_s": float(rec.duration_s),
        "source_leads": list(rec.source_leads),
        "derived": list(rec.derived),
        "warnings": list(rec.warnings),
        "leads": leads,
    }


def video_report(path: Path) -> dict[str, Any]:
    """Header of one echo video, after decoding it exactly as `e2r index` does with the default
    (tiny) preset's settings: "decodes" means the indexer can read it."""
    from e2r.echo import decode_video, read_video_header
    from e2r.presets import get_preset

    info = read_video_header(path)
    clip = decode_video(info, **get_preset("tiny").echo.decode_kwargs())
    return {"kind": "echo", **_video_dict(info),
            "duration_s": info.n_frames * info.frame_time_ms / 1000.0 if info.frame_time_ms else None,
            "decodes": True, "decoded_frames": int(clip.shape[0]), "first_frame_mean": float(clip[0].mean())}


def archive_report(path: Path, workers: int = 1, group_by: str = "uid") -> dict[str, Any]:
    """Studies, videos, views, frame counts and skipped files (by reason) of an archive folder."""
    from collections import Counter

    import numpy as np

    from e2r.echo import scan_archive

    scan = scan_archive(path, progress=sys.stderr.isatty(), workers=workers, group_by=group_by)
    frames = [v.n_frames for s in scan.studies for v in s.videos]
    examples: dict[str, list[dict[str, str]]] = {}
    for file, reason, message in scan.skipped_files:
        if len(examples.setdefault(reason, [])) < _EXAMPLES_PER_REASON:
            examples[reason].append({"path": file, "message": message})
    return {
        "kind": "archive",
        "path": str(path),
        "n_files": scan.n_files,
        "n_studies": len(scan.studies),
        "n_videos": len(frames),
        "n_skipped": sum(scan.skipped.values()),
        "views": dict(Counter(view for s in scan.studies for view in s.views).most_common()),
        "frames": {"total": int(sum(frames)), "min": min(frames), "median": float(np.median(frames)),
                   "max": max(frames)} if frames else {"total": 0, "min": None, "median": None, "max": None},
        "skipped": dict(scan.skipped),
        "skipped_examples": examples,
        "studies": [{
            "study_uid": s.study_uid,
            "patient_id": s.patient_id,
            "study_date": s.study_date,
            "n_videos": len(s.videos),
            "views": list(s.views),
            "videos": [_video_dict(v) for v in s.videos],
        } for s in scan.studies],
    }


def _video_dict(info: Any) -> dict[str, Any]:
    from dataclasses import asdict

    d = asdict(info)
    d["region"] = list(info.region) if info.region else None
    d["fps"] = info.fps
    return d


def _print_ecg(r: dict[str, Any]) -> None:
    typer.echo(f"ECG {r['path']} (record {r['record_name']})")
    typer.echo(f"  sampling rate {r['fs_hz']:g} Hz, {r['n_samples']} samples, {r['duration_s']:.2f} s")
    typer.echo(f"  leads in file: {', '.join(r['source_leads'])}")
    typer.echo(f"  derived from I and II: {', '.join(r['derived']) or 'none'}")
    for w in r["warnings"]:
        typer.echo(f"  warning: {w}")
    print_table([{k: v for k, v in lead.items()} for lead in r["leads"]],
                ["lead", "derived", "min_mv", "max_mv", "std_mv", "missing_fraction"])


def _print_echo(r: dict[str, Any]) -> None:
    typer.echo(f"Echo video {r['path']}")
    fields = ["study_uid", "series_uid", "sop_uid", "patient_id", "study_date", "view", "n_frames",
              "frame_time_ms", "fps", "duration_s", "rows", "cols", "photometric", "transfer_syntax",
              "region", "decodes"]
    print_table([{"field": f, "value": r.get(f)} for f in fields], ["field", "value"])
    for note in r.get("notes") or ():
        typer.echo(f"  note: {note}")


def _print_archive(r: dict[str, Any]) -> None:
    typer.echo(f"Archive {r['path']}: {r['n_files']} files, {r['n_studies']} studies, "
               f"{r['n_videos']} videos, {r['n_skipped']} skipped")
    if r["n_videos"]:
        f = r["frames"]
        typer.echo(f"  frames per video: min {f['min']}, median {f['median']:g}, max {f['max']} "
                   f"({f['total']} in all)")
        typer.echo("  views: " + ", ".join(f"{k} {n}" for k, n in r["views"].items()))
        rows = [{"study_uid": s["study_uid"], "patient_id": s["patient_id"], "date": s["study_date"],
                 "videos": s["n_videos"], "views": s["views"],
                 "frames": sum(v["n_frames"] for v in s["videos"])}
                for s in r["studies"][:_MAX_STUDY_ROWS]]
        typer.echo("")
        print_table(rows)
        if r["n_studies"] > _MAX_STUDY_ROWS:
            typer.echo(f"... and {r['n_studies'] - _MAX_STUDY_ROWS} more studies (--json lists all)")
    if r["skipped"]:
        typer.echo("")
        typer.echo("Skipped files by reason:")
        rows = []
        for reason, count in r["skipped"].items():
            ex = r["skipped_examples"].get(reason, [])
            rows.append({"reason": reason, "files": count, "example": ex[0]["message"] if ex else ""})
        print_table(rows, ["reason", "files", "example"])


_PRINTERS = {"ecg": _print_ecg, "echo": _print_echo, "archive": _print_archive}
