"""Read a 12-lead ECG from a WFDB record or a DICOM 12-lead ECG Waveform Storage file.

`read_ecg` returns an `ECGRecord`: float32 (12, T) in mV, leads in canonical order matched by
name, the source sampling rate, and which limb leads were derived from I and II. Every problem a
user can cause (missing or truncated files, headers that are not WFDB, too few leads, leads
without signal) is an `ECGReadError` whose message names the file and what to do.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from e2r.ecg_leads import (
    CANONICAL_LEADS,
    assemble_12_lead,
    lead_quality_warnings,
    missing_leads,
    select_leads,
)
from e2r.errors import ECGReadError

__all__ = ["CANONICAL_LEADS", "ECGRecord", "read_ecg", "units_to_mv"]

log = logging.getLogger(__name__)

_WHAT_TO_GIVE = "give a WFDB record (rec, rec.hea, rec.dat or rec.mat) or a DICOM 12-lead ECG"

# Scale factor to mV by unit name (WFDB units string or UCUM code in DICOM), lower-cased.
_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6}

# Bits per sample of the WFDB storage formats whose file size follows from the header.
_WFDB_BITS = {"8": 8, "80": 8, "16": 16, "61": 16, "160": 16, "24": 24, "32": 32, "212": 12}


@dataclass(frozen=True)
class ECGRecord:
    """A 12-lead ECG in physical units, canonical lead order, at its source sampling rate."""

    signal: np.ndarray  # float32 (12, T), mV, canonical lead order; NaN where the file has no value
    fs: float  # source sampling rate, Hz
    path: str  # file the user named
    record_name: str  # WFDB record name / DICOM SOP Instance UID
    source_leads: tuple[str, ...]  # lead names as written in the file, file order
    derived: tuple[str, ...]  # canonical leads computed from I and II (Einthoven/Goldberger)
    leads: tuple[str, ...] = CANONICAL_LEADS
    warnings: tuple[str, ...] = ()  # NaN-only, flat or partly missing leads, duplicate names

    @property
    def duration_s(self) -> float:
        """Length of the recording in seconds."""
        return self.signal.shape[1] / self.fs


def units_to_mv(unit: str | None, where: str) -> float:
    """Factor that converts values in `unit` to mV (WFDB's default unit, mV, when empty).
    `where` names the file and signal for the error message."""
    key = (unit or "mV").strip().lower()
    if key not in _TO_MV:
        raise ECGReadError(
            f"{where}: unknown signal unit {unit!r}; ECG signals must be in V, mV or uV"
        )
    return _TO_MV[key]


def read_ecg(path: str | Path) -> ECGRecord:
    """Read a 12-lead ECG from a WFDB record named by any of its files (`rec`, `rec.hea`,
    `rec.dat`, `rec.mat`; formats 16, 212, 16 with byte offset, ...) or from a DICOM 12-lead ECG
    Waveform Storage file (detected by its DICM preamble, whatever its extension)."""
    named = Path(path)
    try:
        kind, target = _locate(named)
        if kind == "dicom":
            from e2r.ecg_dicom import read_dicom_waveform  # pydicom is only needed for DICOM

            wave = read_dicom_waveform(named)
            return _build_record(
                named, wave.record_name, wave.fs, wave.source_leads, wave.match_names,
                wave.signal_mv, wave.notes,
            )
        return _read_wfdb(named, target)
    except OSError as exc:  # permissions, I/O errors
        raise ECGReadError(
            f"{named}: cannot be read ({one_line(exc)}); check the file and its permissions"
        ) from exc


def _locate(path: Path) -> tuple[str, Path]:
    """("dicom", file) or ("wfdb", header file) for the path a user named."""
    if path.is_dir():
        raise ECGReadError(f"{path}: is a folder, not an ECG file; {_WHAT_TO_GIVE}")
    if path.is_file():
        if path.stat().st_size == 0:
            raise ECGReadError(f"{path}: file is empty (0 bytes); {_WHAT_TO_GIVE}")
        if _has_dicom_preamble(path):
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
            raise ECGReadError(f"{path}: not a DICOM file (no DICM preamble); {_WHAT_TO_GIVE}")
        raise ECGReadError(
            f"{path}: not a WFDB record or DICOM ECG (no {header.name}, no DICM preamble); "
            f"{_WHAT_TO_GIVE}"
        )
    header = Path(f"{path}.hea")
    if header.is_file():
        return "wfdb", header
    if path.suffix.lower() in (".hea", ".dat", ".mat", ".dcm"):
        raise ECGReadError(f"{path}: no such file; check the path")
    raise ECGReadError(f"{path}: no such file (nor {header.name}); check the path")


def _has_dicom_preamble(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def _read_wfdb(named: Path, header_path: Path) -> ECGRecord:
    import wfdb  # imported here so that `import e2r.ecg_io` stays light

    base = str(header_path.with_suffix(""))
    try:
        header = wfdb.rdheader(base)
    except Exception as exc:  # wfdb raises many types for malformed headers
        raise ECGReadError(
            f"{header_path}: not a valid WFDB header ({one_line(exc)}); {_WHAT_TO_GIVE}"
        ) from exc
    if isinstance(header, wfdb.MultiRecord):
        raise ECGReadError(
            f"{header_path}: multi-segment WFDB records are not supported; "
            f"merge the segments into one record (wfdb.rdrecord then wfdb.wrsamp)"
        )
    names = list(header.sig_name or [])
    if not names or len(names) != header.n_sig:
        raise ECGReadError(
            f"{header_path}: not a complete WFDB header (record line says {header.n_sig} signals, "
            f"{len(names)} signal lines follow); {_WHAT_TO_GIVE}"
        )
    if not header.fs or header.fs <= 0:
        raise ECGReadError(f"{header_path}: sampling rate {header.fs!r} is not positive; fix the header")
    if header.sig_len == 0:
        raise ECGReadError(f"{header_path}: record has no samples (length 0); give a recorded ECG")

    selection = select_leads(names)
    missing = missing_leads(selection.channels)
    if missing:
        raise ECGReadError(_missing_message(header_path, missing, names))
    channels = sorted({idx for idx, _ in selection.channels.values()})
    scales = {
        idx: units_to_mv(header.units[idx] if header.units else None, f"{header_path} signal {names[idx]!r}")
        for idx in channels
    }
    _check_signal_files(header_path, header, channels)
    try:
        record = wfdb.rdrecord(base, channels=channels, physical=True, return_res=64)
    except Exception as exc:
        raise ECGReadError(
            f"{header_path}: cannot read the signal data ({one_line(exc)}); "
            f"check that the signal file matches its header"
        ) from exc

    column = {idx: col for col, idx in enumerate(channels)}
    match_names: list[str | None] = [None] * len(names)
    signal_mv = np.zeros((record.p_signal.shape[0], len(names)), dtype=np.float64)
    for idx in channels:
        signal_mv[:, idx] = record.p_signal[:, column[idx]] * scales[idx]
        match_names[idx] = names[idx]
    return _build_record(
        named, header.record_name, float(header.fs), tuple(names), match_names, signal_mv,
        selection.notes,
    )


def _check_signal_files(header_path: Path, header, channels: list[int]) -> None:
    """Clear errors for a missing or truncated signal file before wfdb meets it."""
    files: dict[str, list[int]] = {}
    for idx, fname in enumerate(header.file_name):
        files.setdefault(fname, []).append(idx)
    needed = {header.file_name[idx] for idx in channels}
    for fname in sorted(needed):
        sig_path = header_path.parent / fname
        if not sig_path.is_file():
            raise ECGReadError(
                f"{header_path}: its signal file {fname} is missing; "
                f"put {fname} next to {header_path.name}"
            )
        idxs = files[fname]
        fmt = str(header.fmt[idxs[0]])
        if header.sig_len is None or fmt not in _WFDB_BITS:
            continue  # compressed formats or unknown length: wfdb checks these itself
        per_frame = sum((header.samps_per_frame[i] if header.samps_per_frame else 1) or 1 for i in idxs)
        offset = (header.byte_offset[idxs[0]] if header.byte_offset else 0) or 0
        expected = offset + math.ceil(header.sig_len * per_frame * _WFDB_BITS[fmt] / 8)
        actual = sig_path.stat().st_size
        if actual < expected:
            raise ECGReadError(
                f"{sig_path}: signal file is truncated ({actual} bytes, header "
                f"{header_path.name} needs {expected}); copy the complete file again"
            )


def _build_record(
    named: Path,
    record_name: str,
    fs: float,
    source_leads: tuple[str, ...],
    match_names: list[str | None],
    signal_mv: np.ndarray,
    notes: tuple[str, ...],
) -> ECGRecord:
    """Pick the canonical leads from (T, n_channels) mV data, derive missing limb leads, check
    that some lead is usable."""
    selection = select_leads([name or "" for name in match_names])
    missing = missing_leads(selection.channels)
    if missing:
        raise ECGReadError(_missing_message(named, missing, list(source_leads)))
    n_samples = signal_mv.shape[0]
    if n_samples == 0:
        raise ECGReadError(f"{named}: record has no samples; give a recorded ECG")
    leads = {
        lead: (signal_mv[:, idx] * sign).astype(np.float32)
        for lead, (idx, sign) in selection.channels.items()
        if lead in CANONICAL_LEADS
    }
    signal, derived = assemble_12_lead(leads, n_samples)
    warnings, usable = lead_quality_warnings(signal)
    if usable == 0:
        raise ECGReadError(
            f"{named}: no usable lead (every lead is flat or has no valid samples); "
            f"check the recording or give another ECG"
        )
    inverted = [lead for lead, (_, sign) in selection.channels.items() if sign < 0]
    all_notes = [*notes, *(f"lead {lead} read from an inverted channel and flipped back" for lead in inverted)]
    for warning in warnings:
        log.warning("%s: %s", named, warning)
    return ECGRecord(
        signal=signal,
        fs=float(fs),
        path=str(named),
        record_name=str(record_name),
        source_leads=tuple(source_leads),
        derived=derived,
        warnings=tuple(all_notes + warnings),
    )


def _missing_message(path: Path, missing: list[str], names: list[str]) -> str:
    found = ", ".join(names) if names else "none"
    return (
        f"{path}: missing ECG leads {', '.join(missing)} (file has: {found}); a 12-lead ECG needs "
        f"I, II and V1-V6 (III, aVR, aVL, aVF are derived from I and II when absent)"
    )


def one_line(exc: Exception) -> str:
    """An exception as one short line for an error message."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."
