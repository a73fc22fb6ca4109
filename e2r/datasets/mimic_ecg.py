"""MIMIC-IV-ECG 1.0: `record_list.csv` (which ECG, whose, when, where) and
`machine_measurements.csv` (the cart's intervals, axes and free-text report).

- `record_list.csv`: `subject_id, study_id, file_name, ecg_time, path`; `path` is the WFDB record
  name without extension relative to the dataset root (`files/p1000/p10000032/s40689238/40689238`);
  `ecg_time` is `YYYY-MM-DD HH:MM:SS`, date-shifted per patient (consistent within a patient, so
  differences between a patient's ECG and echo times are real).
- `machine_measurements.csv`: `subject_id, study_id, cart_id, ecg_time, report_0 .. report_17,
  bandwidth, filtering, rr_interval, p_onset, p_end, qrs_onset, qrs_end, t_end, p_axis, qrs_axis,
  t_axis`; times in ms; missing values are sentinels (`SENTINELS`), read as None here.
- The headers are 500 Hz x 5,000 samples, format 16, gain 200/mV, leads I, II, III, aVR, aVF, aVL,
  V1-V6: e2r's WFDB reader matches leads by name, so nothing is reordered here.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from e2r.datasets.columns import RowErrors, find_file, read_rows

RECORD_LIST_COLUMNS = ("subject_id", "study_id", "ecg_time", "path")
MEASUREMENT_COLUMNS = ("study_id",)
TIMING_FIELDS = ("p_onset", "p_end", "qrs_onset", "qrs_end", "t_end")
AXIS_FIELDS = ("p_axis", "qrs_axis", "t_axis")
# Missing-value sentinels of machine_measurements.csv, per field kind.
SENTINELS = {"timing": {29999.0}, "axis": {32767.0, -32768.0}, "rr_interval": {65535.0}}
N_REPORTS = 18  # report_0 .. report_17

_AF = re.compile(r"atrial\s+(fibrillation|flutter)|\bafib\b|\ba-?fib\b", re.IGNORECASE)
_SINUS = re.compile(r"sinus", re.IGNORECASE)


@dataclass(frozen=True)
class MimicECG:
    """One row of record_list.csv."""

    subject_id: str
    study_id: str
    ecg_time: datetime.datetime
    path: str               # WFDB record relative to the dataset root, no extension
    line: int               # line in record_list.csv


@dataclass(frozen=True)
class MachineMeasurements:
    """The cart's measurements of one ECG (None where the file holds a sentinel or nothing)."""

    rr_interval: Optional[float]  # ms
    qrs_duration: Optional[float]  # ms, qrs_end - qrs_onset
    qrs_axis: Optional[float]      # degrees
    heart_rate: Optional[float]    # bpm, 60000 / rr_interval
    rhythm: Optional[str]          # "af" or "sinus" from the report text, else None
    report: str                    # report_0 .. report_17 joined with " | "


def parse_time(text: str) -> datetime.datetime:
    """`2180-07-23 08:44:00` (also with `T`, without seconds, or a date alone) -> datetime."""
    text = (text or "").strip()
    if not text:
        raise ValueError("empty time")
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"time {text!r} is not YYYY-MM-DD HH:MM:SS") from None


def read_record_list(ecg_root: str | Path, errors: RowErrors, subjects: Optional[set[str]] = None,
                     skipped: Optional[dict[str, int]] = None) -> list[MimicECG]:
    """Every usable ECG of `ecg_root/record_list.csv`; bad rows go to `errors` by line. With
    `subjects`, only those patients' ECGs are kept (memory: MIMIC-IV-ECG lists ~800k ECGs) and the
    others are counted in `skipped["ecg_of_patient_without_echo"]`."""
    path = find_file(ecg_root, "record_list.csv", "record_list.csv.gz")
    out: list[MimicECG] = []
    for line, row in read_rows(path, RECORD_LIST_COLUMNS):
        subject, study, rec = (row.get(c, "").strip() for c in ("subject_id", "study_id", "path"))
        if subjects is not None and subject not in subjects:
            if skipped is not None:
                skipped["ecg_of_patient_without_echo"] = skipped.get("ecg_of_patient_without_echo", 0) + 1
            continue
        if not subject.isdigit() or not study.isdigit():
            errors.add(path, line, "bad_id", f"subject_id {subject!r} / study_id {study!r} are not integers")
            continue
        if not rec:
            errors.add(path, line, "no_path", "empty path")
            continue
        try:
            when = parse_time(row.get("ecg_time", ""))
        except ValueError as err:
            errors.add(path, line, "bad_time", str(err))
            continue
        out.append(MimicECG(subject, study, when, rec, line))
    return out


def _value(text: Optional[str], sentinels: set[float]) -> Optional[float]:
    text = (text or "").strip()
    if not text:
        return None
    value = float(text)  # ValueError is the caller's bad row
    return None if value in sentinels else value


def rhythm_from_report(lines: Iterable[str]) -> Optional[str]:
    """`af` when the report names atrial fibrillation/flutter, `sinus` when it names a sinus
    rhythm, else None. AF wins over sinus (`sinus rhythm ... with atrial fibrillation` is rare
    but AF is then the finding)."""
    text = " ".join(s for s in lines if s)
    if _AF.search(text):
        return "af"
    if _SINUS.search(text):
        return "sinus"
    return None


def read_machine_measurements(path: str | Path, study_ids: Optional[set[str]], errors: RowErrors
                              ) -> dict[str, MachineMeasurements]:
    """{ECG study_id: MachineMeasurements}, streamed; only `study_ids` are kept when given."""
    out: dict[str, MachineMeasurements] = {}
    for line, row in read_rows(path, MEASUREMENT_COLUMNS):
        study = row.get("study_id", "").strip()
        if study_ids is not None and study not in study_ids:
            continue
        try:
            rr = _value(row.get("rr_interval"), SENTINELS["rr_interval"])
            onset = _value(row.get("qrs_onset"), SENTINELS["timing"])
            end = _value(row.get("qrs_end"), SENTINELS["timing"])
            axis = _value(row.get("qrs_axis"), SENTINELS["axis"])
        except ValueError as err:
            errors.add(path, line, "bad_number", str(err))
            continue
        reports = [row.get(f"report_{i}", "").strip() for i in range(N_REPORTS)]
        out[study] = MachineMeasurements(
            rr_interval=rr,
            qrs_duration=(end - onset) if onset is not None and end is not None and end > onset else None,
            qrs_axis=axis,
            heart_rate=round(60000.0 / rr, 1) if rr and rr > 0 else None,
            rhythm=rhythm_from_report(reports),
            report=" | ".join(r for r in reports if r),
        )
    return out


def default_measurements_path(ecg_root: str | Path) -> Optional[Path]:
    """`machine_measurements.csv` (or `.csv.gz`) in the ECG root, if present."""
    for name in ("machine_measurements.csv", "machine_measurements.csv.gz"):
        if (Path(ecg_root) / name).is_file():
            return Path(ecg_root) / name
    return None
