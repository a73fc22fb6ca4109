"""WFDB records (`.hea` + `.dat` / `.mat` signal files, any format wfdb reads) -> ECGRecord."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from e2r.ecg.leads import missing_leads, select_leads
from e2r.ecg.record import WHAT_TO_GIVE, ECGRecord, build_record, check_fs, missing_message, units_to_mv
from e2r.errors import ECGReadError
from e2r.util import one_line

# Bits per sample of the WFDB storage formats whose file size follows from the header.
_WFDB_BITS = {"8": 8, "80": 8, "16": 16, "61": 16, "160": 16, "24": 24, "32": 32, "212": 12}


def read_wfdb(named: Path, header_path: Path) -> ECGRecord:
    """Read the record whose header is `header_path` (`named`: the path the user gave)."""
    import wfdb  # imported here so that importing e2r.ecg stays light

    base = str(header_path.with_suffix(""))
    try:
        header = wfdb.rdheader(base)
    except Exception as exc:  # wfdb raises many types for malformed headers
        raise ECGReadError(
            f"{header_path}: not a valid WFDB header ({one_line(exc)}); {WHAT_TO_GIVE}"
        ) from exc
    if isinstance(header, wfdb.MultiRecord):
        raise ECGReadError(
            f"{header_path}: multi-segment WFDB records are not supported; "
            f"merge the segments into one record (wfdb.rdrecord then wfdb.wrsamp)"
        )
    # wfdb gives None for names it cannot parse (empty, non-ASCII, a line cut short): shown as "".
    names = [n if isinstance(n, str) else "" for n in (header.sig_name or [])]
    if not names or len(names) != header.n_sig:
        raise ECGReadError(
            f"{header_path}: not a complete WFDB header (record line says {header.n_sig} signals, "
            f"{len(names)} signal lines follow); {WHAT_TO_GIVE}"
        )
    # wfdb falls back to 250 Hz when the rate is missing or unreadable; e2r never guesses it.
    lines = _header_lines(header_path)  # the header as written, beside wfdb's reading of it
    written_fs = _written_fs(lines)
    written = check_fs(written_fs, header_path)
    if abs(float(header.fs or 0) - written) > 1e-6 * written:
        raise ECGReadError(f"{header_path}: the header writes the sampling rate as {written_fs!r} but "
                           f"wfdb reads {header.fs!r} Hz; write it as a plain number (e.g. 500)")
    _check_written_fields(header_path, lines, header, names)
    if header.sig_len == 0:
        raise ECGReadError(f"{header_path}: record has no samples (length 0); give a recorded ECG")

    selection = select_leads(names)
    missing = missing_leads(selection.channels)
    if missing:
        raise ECGReadError(missing_message(header_path, missing, names))
    channels = sorted({idx for idx, _ in selection.channels.values()})
    scales = {
        idx: units_to_mv(header.units[idx] if header.units else None, f"{header_path} signal {names[idx]!r}")
        for idx in channels
    }
    for idx in channels:
        gain = (header.adc_gain or [None] * len(names))[idx]
        if gain is not None and not math.isfinite(float(gain)):
            raise ECGReadError(f"{header_path}: signal {names[idx]!r} has gain {gain!r}, not a number; fix the header")
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
    return build_record(
        named, header.record_name, float(header.fs), tuple(names), match_names, signal_mv,
        selection.notes,
    )


def _header_lines(header_path: Path) -> list[list[str]]:
    """The record line and signal lines of a WFDB header, split into fields (comments dropped)."""
    try:
        text = header_path.read_bytes().decode("latin-1")
    except OSError:
        return []
    return [line.split() for line in (raw.strip() for raw in text.splitlines()) if line and not line.startswith("#")]


def _written_fs(lines: list[list[str]]) -> str | None:
    """The sampling-frequency field as the record line writes it (`500`, `500/1000(0)`), or None."""
    if not lines or len(lines[0]) < 3:
        return None
    return lines[0][2].split("/")[0].split("(")[0]


def _check_written_fields(header_path: Path, lines: list[list[str]], header, names: list[str]) -> None:
    """What wfdb reads silently past: a sample count that is not a number (it then reads the whole
    file) and a unit it cannot parse (it then says mV). Both are named errors here."""
    if lines and len(lines[0]) >= 4:
        count = lines[0][3]
        if not count.isdigit():
            raise ECGReadError(f"{header_path}: the record line gives {count!r} as the number of samples; "
                               "write a whole number (or leave the field out)")
        if header.sig_len != int(count):  # wfdb did not parse the record line as written
            raise ECGReadError(f"{header_path}: the record line {' '.join(lines[0])!r} cannot be read as "
                               "written (wfdb reads a different length); fix the line")
    for idx, fields in enumerate(lines[1:1 + len(names)]):
        if len(fields) >= 3 and "/" in fields[2]:
            written = fields[2].split("/", 1)[1]
            read = (header.units[idx] if header.units and idx < len(header.units) else None) or ""
            if written.strip() != read.strip():
                raise ECGReadError(f"{header_path}: signal {idx + 1}'s unit {written!r} cannot be read "
                                   f"(wfdb reads {read!r}); write V, mV or uV")


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
