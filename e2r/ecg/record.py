"""The ECG record every reader returns, and the one place a record is assembled from channels.

`build_record` picks the canonical leads by name from (T, n_channels) mV data, derives missing
limb leads from I and II, and checks that some lead is usable; the WFDB and DICOM readers both
end in it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from e2r.ecg.leads import CANONICAL_LEADS, assemble_12_lead, lead_quality_warnings, missing_leads, select_leads
from e2r.errors import ECGReadError

log = logging.getLogger(__name__)

WHAT_TO_GIVE = "give a WFDB record (rec, rec.hea, rec.dat or rec.mat) or a DICOM 12-lead ECG"

# What a real ECG can be: a sampling rate in this range (Hz) and at least this much signal (s).
# Anything else is a broken header, never a rate to guess or a record to pad.
FS_RANGE = (50.0, 20_000.0)
MIN_DURATION_S = 1.0

# Scale factor to mV by unit name (WFDB units string or UCUM code in DICOM), lower-cased.
_TO_MV = {"mv": 1.0, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "v": 1e3, "nv": 1e-6}


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


def check_fs(fs: float, where: object) -> float:
    """The sampling rate when it is a finite number in FS_RANGE; ECGReadError naming `where` otherwise."""
    lo, hi = FS_RANGE
    try:
        value = float(fs)
    except (TypeError, ValueError, OverflowError):
        value = float("nan")
    if not (lo <= value <= hi):  # also False for NaN
        raise ECGReadError(f"{where}: sampling rate {fs!r} Hz is not a real ECG rate ({lo:g}-{hi:g} Hz); "
                           "fix the file's header")
    return value


def units_to_mv(unit: str | None, where: str, default: str | None = "mV") -> float:
    """Factor that converts values in `unit` to mV. An empty unit is `default` (the WFDB format
    defines mV); with default=None (DICOM, which has no default) it is an error, never a guess.
    `where` names the file and signal for the error message."""
    if not (unit or "").strip():
        if default is None:
            raise ECGReadError(f"{where}: no signal unit; e2r does not guess one (V, mV and uV differ "
                               "1000x); give the channel's unit in the file")
        unit = default
    key = unit.strip().lower()
    if key not in _TO_MV:
        raise ECGReadError(
            f"{where}: unknown signal unit {unit!r}; ECG signals must be in V, mV or uV"
        )
    return _TO_MV[key]


def build_record(
    named: Path,
    record_name: str,
    fs: float,
    source_leads: tuple[str, ...],
    match_names: list[str | None],
    signal_mv: np.ndarray,
    notes: tuple[str, ...],
) -> ECGRecord:
    """Pick the canonical leads from (T, n_channels) mV data, derive missing limb leads, check
    the sampling rate (FS_RANGE), the length (MIN_DURATION_S) and that some lead is usable."""
    check_fs(fs, named)
    selection = select_leads([name or "" for name in match_names])
    missing = missing_leads(selection.channels)
    if missing:
        raise ECGReadError(missing_message(named, missing, list(source_leads)))
    n_samples = signal_mv.shape[0]
    if n_samples == 0:
        raise ECGReadError(f"{named}: record has no samples; give a recorded ECG")
    if n_samples / fs < MIN_DURATION_S:
        raise ECGReadError(f"{named}: record is {n_samples} samples ({n_samples / fs:.3f} s) long; e2r needs at least "
                           f"{MIN_DURATION_S:g} s of ECG (the model reads a 10 s window)")
    leads = {
        lead: (signal_mv[:, idx] * sign).astype(np.float32)
        for lead, (idx, sign) in selection.channels.items()
        if lead in CANONICAL_LEADS
    }
    signal, derived = assemble_12_lead(leads, n_samples)
    with np.errstate(invalid="ignore"):
        too_big = ~(np.abs(signal) <= 1e4)  # mV; NaN marks a missing sample and passes
    if (too_big & ~np.isnan(signal)).any():
        raise ECGReadError(f"{named}: signal values beyond +/-10 V (an absurd gain or sensitivity in the header, "
                           "or the wrong unit); fix the header")
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


def missing_message(path: Path, missing: list[str], names: list[str]) -> str:
    found = ", ".join(names) if names else "none"
    return (
        f"{path}: missing ECG leads {', '.join(missing)} (file has: {found}); a 12-lead ECG needs "
        f"I, II and V1-V6 (III, aVR, aVL, aVF are derived from I and II when absent)"
    )
