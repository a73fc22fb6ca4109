"""DICOM 12-lead ECG Waveform Storage: pick the rhythm multiplex group and return its channels in
mV with the lead each channel carries. `e2r.ecg.read_ecg` turns this into an `ECGRecord`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from e2r.ecg.record import check_fs, units_to_mv
from e2r.util import one_line
from e2r.ecg.leads import DICOM_LEAD_CODES, canonical_lead, missing_leads, select_leads
from e2r.errors import ECGReadError


@dataclass(frozen=True)
class DicomWaveform:
    """One multiplex group of a DICOM ECG in physical units."""

    signal_mv: np.ndarray  # float64 (T, n_channels), mV
    fs: float  # Hz
    record_name: str  # SOP Instance UID
    source_leads: tuple[str, ...]  # channel names as the file gives them, file order
    match_names: list[str | None]  # canonical lead name per channel ("-aVR" if inverted), or None
    notes: tuple[str, ...]


def dicom_match_name(meaning: str, code_value: str, scheme: str, label: str) -> str | None:
    """The canonical lead a DICOM ECG channel carries, from its code meaning, label or code
    (MDC `2:N` / SCP-ECG `5.6.3-9-N`), in that order; None for channels that are not standard leads."""
    for text in (meaning, label, code_value):  # code_value may read "MDC_ECG_LEAD_I"
        if text:
            match = canonical_lead(text)
            if match:
                return ("-" if match[1] < 0 else "") + match[0]
    if scheme.upper() in ("MDC", "SCPECG") and code_value:
        tail = code_value.replace(":", "-").rsplit("-", 1)[-1]
        if tail.isdigit() and int(tail) in DICOM_LEAD_CODES:
            return DICOM_LEAD_CODES[int(tail)]
    return None


def _channel_names(item) -> tuple[list[str], list[str | None]]:
    shown: list[str] = []
    matched: list[str | None] = []
    for idx, ch in enumerate(item.get("ChannelDefinitionSequence", [])):
        src = ch.ChannelSourceSequence[0] if ch.get("ChannelSourceSequence") else None
        meaning = str(src.get("CodeMeaning", "")) if src else ""
        code = str(src.get("CodeValue", "")) if src else ""
        scheme = str(src.get("CodingSchemeDesignator", "")) if src else ""
        label = str(ch.get("ChannelLabel", ""))
        shown.append(meaning or label or code or f"channel {idx}")
        matched.append(dicom_match_name(meaning, code, scheme, label))
    return shown, matched


def read_dicom_waveform(path: Path) -> DicomWaveform:
    """Read the longest non-median-beat multiplex group holding the 12 leads (or I, II, V1-V6)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        raise ECGReadError(
            f"{path}: DICOM file cannot be parsed ({one_line(exc)}); give an intact DICOM ECG"
        ) from exc
    from pydicom.errors import BytesLengthException

    try:
        return _read_waveform(path, ds)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, OverflowError, NotImplementedError,
            RecursionError, MemoryError, BytesLengthException) as exc:  # a missing or malformed element
        raise ECGReadError(f"{path}: DICOM ECG has a missing or malformed element ({type(exc).__name__}: "
                           f"{one_line(exc, 120)}); give an intact DICOM 12-lead ECG") from None


def _read_waveform(path: Path, ds) -> DicomWaveform:
    if "WaveformSequence" not in ds or not ds.WaveformSequence:
        sop = getattr(ds.get("SOPClassUID"), "name", ds.get("SOPClassUID", "unknown"))
        raise ECGReadError(
            f"{path}: DICOM file holds no waveform (SOP class {sop}); give a 12-lead ECG Waveform Storage file"
        )
    best: tuple[tuple[int, float], int, list[str], list[str | None]] | None = None
    for index, item in enumerate(ds.WaveformSequence):
        if "MEDIAN" in str(item.get("MultiplexGroupLabel", "")).upper():
            continue  # median beats are averaged templates, not a recording
        shown, matched = _channel_names(item)
        complete = not missing_leads(select_leads([m or "" for m in matched]).channels)
        try:
            duration = float(item.NumberOfWaveformSamples) / float(item.SamplingFrequency)
        except (AttributeError, TypeError, ValueError, ZeroDivisionError):
            continue
        key = (int(complete), duration)
        if best is None or key > best[0]:
            best = (key, index, shown, matched)
    if best is None:
        raise ECGReadError(
            f"{path}: DICOM waveform has no ECG rhythm group with a sampling rate; give a 12-lead ECG"
        )
    _, index, shown, matched = best
    item = ds.WaveformSequence[index]
    fs = check_fs(item.SamplingFrequency, path)
    try:
        data = np.asarray(ds.waveform_array(index), dtype=np.float64)  # (T, C), sensitivity applied
    except Exception as exc:
        raise ECGReadError(
            f"{path}: DICOM waveform data cannot be decoded ({one_line(exc)}); the file may be truncated"
        ) from exc
    for col, ch in enumerate(item.ChannelDefinitionSequence):
        if matched[col] is None:
            continue
        units_seq = ch.get("ChannelSensitivityUnitsSequence")
        if "ChannelSensitivity" not in ch or not units_seq:
            raise ECGReadError(
                f"{path}: channel {shown[col]!r} has no sensitivity or units; cannot convert it to mV"
            )
        data[:, col] *= units_to_mv(str(units_seq[0].get("CodeValue", "") or ""), f"{path} channel {shown[col]!r}",
                                    default=None)
    return DicomWaveform(
        signal_mv=data,
        fs=fs,
        record_name=str(ds.get("SOPInstanceUID", path.stem)),
        source_leads=tuple(shown),
        match_names=matched,
        notes=(),
    )
