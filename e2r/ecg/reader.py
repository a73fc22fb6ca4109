"""`read_ecg`: a 12-lead ECG from a WFDB record or a DICOM 12-lead ECG Waveform Storage file.

It returns an `ECGRecord` (e2r.ecg.record): float32 (12, T) in mV, leads in canonical order
matched by name, the source sampling rate, and which limb leads were derived from I and II. Every
problem a user can cause (missing or truncated files, headers that are not WFDB, too few leads,
leads without signal) is an `ECGReadError` whose message names the file and what to do.
"""

from __future__ import annotations

from pathlib import Path

from e2r.ecg.record import WHAT_TO_GIVE, ECGRecord, build_record
from e2r.errors import ConfigError, ECGReadError
from e2r.util import one_line, sniff_dicom

# What a folder scan counts as one ECG record: a WFDB header (the record is named without it) or a DICOM file.
ECG_SUFFIXES = {".hea", ".dcm"}


def list_ecg_records(path: str | Path) -> list[str]:
    """What `e2r search` and `e2r embed` take as ECG input: one record (returned as named), every
    record in a folder (sorted; WFDB records by their name without `.hea`), or the non-empty lines
    of a `.txt` list. ConfigError for a folder without any record."""
    path = Path(path)
    if path.is_dir():
        found = sorted({str(p.with_suffix("")) if p.suffix == ".hea" else str(p)
                        for p in path.rglob("*") if p.suffix.lower() in ECG_SUFFIXES})
        if not found:
            raise ConfigError(f"{path}: no ECG records (.hea or .dcm) in this folder")
        return found
    if path.suffix == ".txt" and path.is_file():
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [str(path)]


def read_ecg(path: str | Path) -> ECGRecord:
    """Read a 12-lead ECG from a WFDB record named by any of its files (`rec`, `rec.hea`,
    `rec.dat`, `rec.mat`; formats 16, 212, 16 with byte offset, ...) or from a DICOM 12-lead ECG
    Waveform Storage file (detected by its DICM preamble, whatever its extension)."""
    named = Path(path)
    try:
        kind, target = _locate(named)
        if kind == "dicom":
            from e2r.ecg.dicom import read_dicom_waveform  # pydicom is only needed for DICOM

            wave = read_dicom_waveform(named)
            return build_record(
                named, wave.record_name, wave.fs, wave.source_leads, wave.match_names,
                wave.signal_mv, wave.notes,
            )
        from e2r.ecg.wfdb import read_wfdb

        return read_wfdb(named, target)
    except OSError as exc:  # permissions, I/O errors
        raise ECGReadError(
            f"{named}: cannot be read ({one_line(exc)}); check the file and its permissions"
        ) from exc


def _locate(path: Path) -> tuple[str, Path]:
    """("dicom", file) or ("wfdb", header file) for the path a user named."""
    if path.is_dir():
        raise ECGReadError(f"{path}: is a folder, not an ECG file; {WHAT_TO_GIVE}")
    if path.is_file():
        if path.stat().st_size == 0:
            raise ECGReadError(f"{path}: file is empty (0 bytes); {WHAT_TO_GIVE}")
        if sniff_dicom(path)[0]:
            return "dicom", path
        if path.suffix == ".hea":
            return "wfdb", path
        candidates = [path.with_suffix(".hea"), Path(f"{path}.hea")] if path.suffix else [Path(f"{path}.hea")]
        for header in candidates:
            if header.is_file():
                return "wfdb", header
        header = candidates[0]
        if path.suffix.lower() in (".dat", ".mat"):
            raise ECGReadError(
                f"{path}: signal file without its WFDB header {header.name}; "
                f"put the .hea file next to it"
            )
        if path.suffix.lower() == ".dcm":
            raise ECGReadError(f"{path}: not a DICOM file (no DICM preamble); {WHAT_TO_GIVE}")
        raise ECGReadError(
            f"{path}: not a WFDB record or DICOM ECG (no {header.name}, no DICM preamble); "
            f"{WHAT_TO_GIVE}"
        )
    header = Path(f"{path}.hea")
    if header.is_file():
        return "wfdb", header
    if path.suffix.lower() in (".hea", ".dat", ".mat", ".dcm"):
        raise ECGReadError(f"{path}: no such file; check the path")
    raise ECGReadError(f"{path}: no such file (nor {header.name}); check the path")
