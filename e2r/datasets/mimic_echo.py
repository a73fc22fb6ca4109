"""MIMIC-IV-ECHO 1.0: the study and record lists, the DICOM study key of each `s{study_id}`
folder, and the long-format structured measurements turned into e2r's phenotype rows.

Files (in the dataset root, beside `files/`):
- `echo-record-list.csv`: `subject_id, study_id, acquisition_datetime, dicom_filepath`
  (`files/p10/p10002221/s94106955/94106955_0001.dcm`, relative to the root).
- `echo-study-list.csv`: `subject_id, study_id, study_datetime, measurement_id,
  measurement_datetime, note_id, note_seq, note_charttime`.
- `structured_measurement.csv.gz` (also `structured-measurement.csv.gz`): long format,
  `subject_id, measurement_id, measurement_datetime, test_type, measurement,
  measurement_description, result, unit`; no study_id (joined through the study list's
  measurement_id); only `test_type` `tte` (any case) is used. It is ~28M rows / 2.6 GB, so it
  is streamed: memory holds only the wanted values of the wanted measurement IDs.

Field mapping (docs/datasets.md says why), first present wins:
- lvef: `biplane_lvef` > `lvef_3d` > midpoint of `lvef` and `lvef_upper` > `lvef`;
- lvedv / lvesv: `biplane_lvedv` / `biplane_lvesv`; la_volume: `la_vol`; heart_rate: `resting_hr`;
- ivsd: `septal_thickness`; lvpwd: `inf_lat_thickness` (MIMIC has no posterior-wall field; the
  inferolateral wall is the same wall seen in PLAX);
- lv_mass: ASE cube formula from `lvedd`, `septal_thickness`, `inf_lat_thickness`;
- rv_diameter: no field (empty); rhythm: empty, or the nearest ECG's report when asked.

Units: lengths are normalised by value, not by the unit column, because the column says `cm`
for values that are clearly mm (`LENGTH_RULES`): a wall thickness <= 3.0 is cm (x10 to mm), above
3.0 it is already mm; an LV diameter <= 12 is cm, above 12 it is mm. Implausible values
(`e2r.datasets.values.PLAUSIBLE`) are rejected and counted per field and reason.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from e2r.datasets.columns import RowErrors, find_file, read_rows
from e2r.datasets.values import ImportSummary, parse_result, plausible
from e2r.datasets.mimic_ecg import parse_time

log = logging.getLogger(__name__)

RECORD_LIST_NAMES = ("echo-record-list.csv", "echo_record_list.csv", "echo-record-list.csv.gz")
STUDY_LIST_NAMES = ("echo-study-list.csv", "echo_study_list.csv", "echo-study-list.csv.gz")
MEASUREMENT_NAMES = ("structured_measurement.csv.gz", "structured-measurement.csv.gz",
                     "structured_measurement.csv", "structured-measurement.csv")
RECORD_LIST_COLUMNS = ("subject_id", "study_id", "dicom_filepath")
STUDY_LIST_COLUMNS = ("subject_id", "study_id", "study_datetime", "measurement_id")
MEASUREMENT_COLUMNS = ("measurement_id", "test_type", "measurement", "result")

# The source measurements read from the long file (everything else is skipped while streaming).
SOURCE_FIELDS = ("biplane_lvef", "lvef_3d", "lvef", "lvef_upper", "biplane_lvedv", "biplane_lvesv",
                 "septal_thickness", "inf_lat_thickness", "lvedd", "la_vol", "resting_hr")
# Length rule: value <= threshold is cm (x10 -> mm), above it is already mm.
LENGTH_RULES = {"septal_thickness": 3.0, "inf_lat_thickness": 3.0, "lvedd": 12.0}
IMPORTED_FIELDS = ("lvef", "lvedv", "lvesv", "ivsd", "lvpwd", "lv_mass", "la_volume", "heart_rate")



@dataclass(frozen=True)
class EchoStudy:
    """One MIMIC-IV-ECHO study (a `s{study_id}` folder)."""

    subject_id: str
    study_id: str
    study_time: Any               # datetime.datetime
    measurement_ids: tuple[str, ...]


@dataclass
class KeyReport:
    """How the study key was chosen: the DICOM StudyInstanceUID when every folder holds one,
    else the folder name (`s{study_id}`), which `e2r index --group-by folder` uses too."""

    group_by: str = "uid"                    # "uid" or "folder"
    folders: int = 0                         # study folders with files listed
    folders_read: int = 0                    # folders with at least one readable DICOM
    files_read: int = 0
    mixed_uid_folders: list[str] = field(default_factory=list)   # folder names with > 1 UID
    uid_in_several_folders: int = 0          # UIDs seen in more than one folder
    unreadable_files: int = 0


def length_mm(name: str, value: float) -> float:
    """A length measurement in mm by `LENGTH_RULES` (<= threshold: cm, x10; above: already mm)."""
    return value * 10.0 if value <= LENGTH_RULES[name] else value


def ase_lv_mass(lvedd_mm: float, ivsd_mm: float, lvpwd_mm: float) -> float:
    """LV mass (g) by the ASE cube formula (Devereux): 0.8 x 1.04 x ((LVIDd + IVSd + PWd)^3 -
    LVIDd^3) + 0.6, lengths in cm."""
    d, s, p = lvedd_mm / 10.0, ivsd_mm / 10.0, lvpwd_mm / 10.0
    return 0.8 * 1.04 * ((d + s + p) ** 3 - d ** 3) + 0.6


def read_study_list(path: str | Path, errors: RowErrors) -> dict[str, EchoStudy]:
    """{study_id: EchoStudy} from echo-study-list.csv (a study has one row per note; its
    measurement IDs are collected)."""
    times: dict[str, Any] = {}
    subjects: dict[str, str] = {}
    mids: dict[str, list[str]] = defaultdict(list)
    for line, row in read_rows(path, STUDY_LIST_COLUMNS):
        subject, study = row.get("subject_id", "").strip(), row.get("study_id", "").strip()
        if not subject.isdigit() or not study.isdigit():
            errors.add(path, line, "bad_id", f"subject_id {subject!r} / study_id {study!r} are not integers")
            continue
        try:
            when = parse_time(row.get("study_datetime", ""))
        except ValueError as err:
            errors.add(path, line, "bad_time", str(err))
            continue
        if study in subjects and subjects[study] != subject:
            errors.add(path, line, "study_of_two_subjects", f"study {study} listed for subjects "
                       f"{subjects[study]} and {subject}; the first is kept")
            continue
        subjects.setdefault(study, subject)
        times.setdefault(study, when)
        mid = row.get("measurement_id", "").strip()
        if mid and mid not in mids[study]:
            mids[study].append(mid)
    return {s: EchoStudy(subjects[s], s, times[s], tuple(mids.get(s, ()))) for s in sorted(subjects)}


@dataclass(frozen=True)
class StudyFolder:
    """The DICOM files echo-record-list.csv lists for one study."""

    subject_id: str
    first_time: Any               # earliest acquisition_datetime (datetime) or None
    files: tuple[str, ...]        # dicom_filepath values, relative to the dataset root


def read_record_list(path: str | Path, errors: RowErrors) -> dict[str, StudyFolder]:
    """{study_id: StudyFolder} from echo-record-list.csv."""
    files: dict[str, list[str]] = defaultdict(list)
    subject: dict[str, str] = {}
    first: dict[str, Any] = {}
    for line, row in read_rows(path, RECORD_LIST_COLUMNS):
        study, rel = row.get("study_id", "").strip(), row.get("dicom_filepath", "").strip()
        sub = row.get("subject_id", "").strip()
        if not study.isdigit() or not sub.isdigit() or not rel:
            errors.add(path, line, "bad_row", f"subject_id {sub!r} / study_id {study!r} / dicom_filepath {rel!r}")
            continue
        subject.setdefault(study, sub)
        files[study].append(rel)
        try:
            when = parse_time(row.get("acquisition_datetime", ""))
            if first.get(study) is None or when < first[study]:
                first[study] = when
        except ValueError:
            first.setdefault(study, None)
    return {s: StudyFolder(subject[s], first.get(s), tuple(files[s])) for s in sorted(files)}


def merge_studies(studies: dict[str, EchoStudy], folders: dict[str, StudyFolder], summary_drop: Callable[[str], None]
                  ) -> dict[str, EchoStudy]:
    """Studies of the study list, plus folders of the record list that the study list lacks (their
    time is the earliest acquisition time; without one they are dropped as `echo_study_without_time`)."""
    out = dict(studies)
    for sid, f in folders.items():
        if sid in out:
            continue
        if f.first_time is None:
            summary_drop("echo_study_without_time")
            continue
        out[sid] = EchoStudy(f.subject_id, sid, f.first_time, ())
    return dict(sorted(out.items()))


def folder_key(study_id: str) -> str:
    """The study key under `--group-by folder`: the folder's name, `s{study_id}`."""
    return f"s{study_id}"


def _read_uid(path: Path) -> Optional[str]:
    """StudyInstanceUID of one DICOM file, reading only that tag (no pixels, no names)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
        uid = str(ds.get("StudyInstanceUID", "") or "").strip()
        return uid or None
    except Exception:  # any unreadable file: counted by the caller
        return None


def study_keys(echo_root: str | Path, records: dict[str, StudyFolder], uid_check: str = "ends",
               progress: bool = False) -> tuple[dict[str, str], KeyReport]:
    """{study_id: study key} and how it was chosen.

    The StudyInstanceUID of each `s{study_id}` folder is read from its DICOM files: the first and
    the last file by name (`uid_check="ends"`, 2 reads per folder) or every file (`"all"`). When
    every folder that has readable files shows one UID and no UID spans two folders, the key is the
    UID (what `e2r index` groups by by default); otherwise it is the folder name for every study, and
    the archive must be indexed with `e2r index --group-by folder`. Folders without readable files
    get the folder name either way (they cannot be indexed until their DICOMs are present).
    """
    root = Path(echo_root)
    report = KeyReport(folders=len(records))
    uids: dict[str, set[str]] = {}
    items: Iterable[tuple[str, StudyFolder]] = sorted(records.items())
    if progress:
        from e2r.progress import progress_bar

        items = progress_bar(items, total=len(records), desc="reading study UIDs", unit="folder")
    for study, folder in items:
        files = sorted(folder.files)
        chosen = files if uid_check == "all" else sorted({files[0], files[-1]})
        seen: set[str] = set()
        for rel in chosen:
            p = root / rel
            if not p.is_file():
                continue
            uid = _read_uid(p)
            report.files_read += 1
            if uid is None:
                report.unreadable_files += 1
            else:
                seen.add(uid)
        if seen:
            report.folders_read += 1
            uids[study] = seen
            if len(seen) > 1:
                report.mixed_uid_folders.append(folder_key(study))
    owners: dict[str, int] = defaultdict(int)
    for seen in uids.values():
        for uid in seen:
            owners[uid] += 1
    report.uid_in_several_folders = sum(1 for n in owners.values() if n > 1)
    if report.mixed_uid_folders or report.uid_in_several_folders or not uids:
        report.group_by = "folder"
    keys = {}
    for study in records:
        if report.group_by == "uid" and study in uids:
            keys[study] = next(iter(uids[study]))
        else:
            keys[study] = folder_key(study)
    return keys, report


def stream_measurements(path: str | Path, wanted_ids: set[str], summary: ImportSummary,
                        progress: bool = False) -> dict[str, dict[str, float]]:
    """{measurement_id: {source field: value}} from the long file, streamed row by row.

    Only `tte` rows of `wanted_ids` and of `SOURCE_FIELDS` are kept; the first parseable value of a
    field wins (rows are in file order). Values are raw numbers (units normalised later).
    """
    wanted_fields = set(SOURCE_FIELDS)
    out: dict[str, dict[str, float]] = {}
    rows = read_rows(path, MEASUREMENT_COLUMNS)
    bar = None
    if progress:
        from e2r.progress import progress_bar

        bar = progress_bar(desc="measurements", unit=" rows", unit_scale=True, mininterval=1.0)
    try:
        for line, row in rows:
            summary.rows_read += 1
            if bar is not None and summary.rows_read % 100_000 == 0:
                bar.update(100_000)
            if row.get("test_type", "").strip().lower() != "tte":
                summary.skip("not_tte")
                continue
            name = row.get("measurement", "").strip().lower()
            if name not in wanted_fields:
                summary.skip("other_measurement")
                continue
            mid = row.get("measurement_id", "").strip()
            if mid not in wanted_ids:
                summary.skip("no_study")
                continue
            value, kind = parse_result(row.get("result", ""))
            summary.result_kinds[kind] = summary.result_kinds.get(kind, 0) + 1
            if value is None:
                if kind == "unparsed":
                    summary.bad_rows.add(path, line, "unparsed_result",
                                         f"{name} result {row.get('result', '')[:40]!r} is not a number, bound or range")
                continue
            if not math.isfinite(value):
                continue
            summary.rows_used += 1
            out.setdefault(mid, {}).setdefault(name, value)
    finally:
        if bar is not None:
            bar.n = summary.rows_read
            bar.close()
    return out


def _lvef(src: dict[str, float]) -> Optional[float]:
    for name in ("biplane_lvef", "lvef_3d"):
        if name in src:
            return src[name]
    if "lvef" in src and "lvef_upper" in src:
        return (src["lvef"] + src["lvef_upper"]) / 2.0
    return src.get("lvef")


def map_fields(src: dict[str, float], summary: ImportSummary) -> dict[str, Optional[float]]:
    """One study's source values -> e2r fields in e2r units, implausible values rejected (counted)."""
    out: dict[str, Optional[float]] = {}
    lengths: dict[str, Optional[float]] = {}
    for name in LENGTH_RULES:
        if name in src:
            mm = length_mm(name, src[name])
            if mm != src[name]:
                summary.unit_converted[name] = summary.unit_converted.get(name, 0) + 1
            lengths[name] = mm
    raw: dict[str, Optional[float]] = {
        "lvef": _lvef(src),
        "lvedv": src.get("biplane_lvedv"),
        "lvesv": src.get("biplane_lvesv"),
        "ivsd": lengths.get("septal_thickness"),
        "lvpwd": lengths.get("inf_lat_thickness"),
        "lvedd": lengths.get("lvedd"),
        "la_volume": src.get("la_vol"),
        "heart_rate": src.get("resting_hr"),
    }
    for fld, value in raw.items():
        out[fld] = plausible(fld, value, summary)
    if out["lvedv"] is not None and out["lvesv"] is not None and out["lvesv"] >= out["lvedv"]:
        summary.reject("lvesv", "not_below_lvedv")
        out["lvesv"] = None
    out["lv_mass"] = None
    if out["lvedd"] is not None and out["ivsd"] is not None and out["lvpwd"] is not None:
        out["lv_mass"] = plausible("lv_mass", round(ase_lv_mass(out["lvedd"], out["ivsd"], out["lvpwd"]), 1), summary)
    out.pop("lvedd")
    return out


def import_mimic_echo(measurements: str | Path, studies: dict[str, EchoStudy], keys: dict[str, str],
                      rhythm: Optional[Callable[[EchoStudy], Optional[str]]] = None,
                      progress: bool = False) -> tuple[list[dict[str, Any]], ImportSummary]:
    """Phenotype rows (e2r.phenotypes.PHENOTYPE_COLUMNS, keyed by `keys[study_id]`) for every study
    of the study list, and the summary. Studies without any usable value are still written (they
    are indexed without labels). `rhythm(study)` fills the rhythm column when given."""
    summary = ImportSummary()
    by_mid: dict[str, str] = {}
    for s in studies.values():
        for mid in s.measurement_ids:
            by_mid.setdefault(mid, s.study_id)
    values = stream_measurements(measurements, set(by_mid), summary, progress=progress)
    rows = []
    for sid in sorted(studies):
        s = studies[sid]
        merged: dict[str, float] = {}
        for mid in s.measurement_ids:  # a study's first measurement set wins per field
            for name, v in values.get(mid, {}).items():
                merged.setdefault(name, v)
        mapped = map_fields(merged, summary)
        row: dict[str, Any] = {"study_uid": keys.get(sid, folder_key(sid)), "patient_id": s.subject_id,
                               "study_date": s.study_time.strftime("%Y%m%d"), **mapped,
                               "rv_diameter": None, "rhythm": rhythm(s) if rhythm else None}
        rows.append(row)
    summary.studies = len(rows)
    for fld in (*IMPORTED_FIELDS, "rhythm"):
        summary.values[fld] = sum(1 for r in rows if r.get(fld) is not None)
    return rows, summary


def find_measurements(folder: str | Path) -> Path:
    """structured_measurement.csv.gz (underscore or hyphen, gzip or plain) in a folder."""
    return find_file(folder, *MEASUREMENT_NAMES)


def find_study_list(folder: str | Path) -> Path:
    """echo-study-list.csv in a folder."""
    return find_file(folder, *STUDY_LIST_NAMES)


def find_record_list(folder: str | Path) -> Path:
    """echo-record-list.csv in a folder."""
    return find_file(folder, *RECORD_LIST_NAMES)
