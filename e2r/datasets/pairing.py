"""Pair ECGs with echo studies of the same patient: for each echo study, the nearest ECG inside a
window, and a patient-level split from a seeded hash.

- Window: an ECG at most `before` days before and `after` days after the echo
  (`DEFAULT_WINDOW_DAYS`: 14 / 14, docs/datasets.md says why).
- Nearest by |ECG time - echo time|; ties go to the earlier ECG, then the smaller ECG study_id,
  so the same inputs always give the same pairs.
- `days` is signed: ECG minus echo, in days (negative: the ECG came first).
- Split: sha256(f"{seed}:{subject_id}") mapped to [0, 1) against `SPLIT_FRACTIONS`; a patient is
  in one split only, whatever their number of studies.
- Echo studies without an ECG in the window are kept as archive rows (empty `ecg_path`): they
  are indexed and searchable, just not used for training.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from e2r.datasets.mimic_ecg import MimicECG
from e2r.datasets.mimic_echo import EchoStudy

DEFAULT_WINDOW_DAYS = (14.0, 14.0)                # (before, after) the echo
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)              # train / val / test, by patient (as the phantom)
# Histogram edges of `days` (ECG minus echo) in the summary.
DAY_BINS = (-365.0, -30.0, -14.0, -7.0, -1.0, 0.0, 1.0, 7.0, 14.0, 30.0, 365.0)


def patient_split(subject_id: str, seed: int, fractions: Sequence[float] = SPLIT_FRACTIONS) -> str:
    """train / val / test for a patient from a seeded hash of their ID (stable across runs and
    machines, independent of which other patients are in the data)."""
    digest = hashlib.sha256(f"{seed}:{subject_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0 ** 64
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def nearest_ecg(echo_time: Any, ecgs: Sequence[MimicECG], times: Sequence[float], before: float,
                after: float) -> Optional[tuple[MimicECG, float]]:
    """The nearest ECG to `echo_time` within [-before, +after] days, and its signed offset in days.

    `ecgs` are one patient's ECGs sorted by time, `times` their POSIX seconds. Ties: the earlier
    ECG, then the smaller study_id.
    """
    t0 = echo_time.timestamp()
    lo = bisect.bisect_left(times, t0 - before * 86400.0)
    hi = bisect.bisect_right(times, t0 + after * 86400.0)
    best: Optional[tuple[tuple[float, float, int], MimicECG, float]] = None
    for i in range(lo, hi):
        d = (times[i] - t0) / 86400.0
        key = (abs(d), d, int(ecgs[i].study_id))
        if best is None or key < best[0]:
            best = (key, ecgs[i], d)
    return None if best is None else (best[1], best[2])


@dataclass
class PairSummary:
    """What pairing found: counts, the days histogram and what was dropped and why."""

    pairs: int = 0
    archive_rows: int = 0                                   # echo studies without an ECG in the window
    patients: int = 0                                       # patients with at least one pair
    patients_total: int = 0                                 # patients with an echo study
    splits: dict[str, int] = field(default_factory=dict)    # patients per split
    days_histogram: list[dict[str, Any]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)   # reason -> count
    notes: list[str] = field(default_factory=list)

    def drop(self, reason: str, n: int = 1) -> None:
        """Count n dropped items for a reason."""
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + n


def pair_studies(ecgs: Sequence[MimicECG], studies: dict[str, EchoStudy], keys: dict[str, str],
                 ecg_root: str | Path, out_csv: str | Path, window: tuple[float, float] = DEFAULT_WINDOW_DAYS,
                 seed: int = 0, check_files: bool = True) -> tuple[list[dict[str, Any]], PairSummary]:
    """Pair rows (e2r.pairs.WRITE_COLUMNS; ecg_path relative to out_csv's folder) and the summary.

    Only echo studies in `keys` (those with DICOM files listed) get a row; the others are counted
    as dropped (`echo_study_without_dicoms`). With `check_files`, a chosen ECG whose `.hea` is
    missing is skipped and the next nearest is tried.
    """
    before, after = window
    summary = PairSummary()
    by_subject: dict[str, list[MimicECG]] = defaultdict(list)
    for e in ecgs:
        by_subject[e.subject_id].append(e)
    sorted_ecgs = {s: sorted(v, key=lambda e: (e.ecg_time, int(e.study_id))) for s, v in by_subject.items()}
    ecg_times = {s: [e.ecg_time.timestamp() for e in v] for s, v in sorted_ecgs.items()}
    out_dir = Path(out_csv).resolve().parent
    root = Path(ecg_root).resolve()
    echo_subjects = {s.subject_id for s in studies.values()}
    summary.drop("ecg_of_patient_without_echo", sum(len(v) for s, v in sorted_ecgs.items() if s not in echo_subjects))

    rows: list[dict[str, Any]] = []
    used_keys: dict[str, str] = {}
    days_all: list[float] = []
    for sid in sorted(studies):
        study = studies[sid]
        if sid not in keys:
            summary.drop("echo_study_without_dicoms")
            continue
        key = keys[sid]
        if key in used_keys:
            summary.drop("echo_study_key_repeated")
            continue
        used_keys[key] = sid
        cands = list(sorted_ecgs.get(study.subject_id, ()))
        times = list(ecg_times.get(study.subject_id, ()))
        found = None
        while cands:
            found = nearest_ecg(study.study_time, cands, times, before, after)
            if found is None or not check_files:
                break
            hea = root / f"{found[0].path}.hea"
            if hea.is_file():
                break
            summary.drop("ecg_file_missing")
            i = cands.index(found[0])
            del cands[i], times[i]
            found = None
        row: dict[str, Any] = {"ecg_path": "", "study_uid": key, "patient_id": study.subject_id,
                               "days": "", "split": patient_split(study.subject_id, seed)}
        if found is None:
            summary.archive_rows += 1
            summary.drop("no_ecg_in_window" if study.subject_id in sorted_ecgs else "patient_without_ecg")
        else:
            ecg, d = found
            row["ecg_path"] = Path(os.path.relpath(root / f"{ecg.path}.hea", out_dir)).as_posix()
            row["days"] = round(d, 3)
            days_all.append(d)
            summary.pairs += 1
        rows.append(row)
    paired_patients = {r["patient_id"] for r in rows if r["ecg_path"]}
    all_patients = {r["patient_id"] for r in rows}
    summary.patients = len(paired_patients)
    summary.patients_total = len(all_patients)
    split_of = {r["patient_id"]: r["split"] for r in rows}
    summary.splits = dict(sorted(Counter(split_of.values()).items()))
    summary.days_histogram = days_histogram(days_all)
    return rows, summary


def days_histogram(days: Sequence[float], edges: Sequence[float] = DAY_BINS) -> list[dict[str, Any]]:
    """[{"days": "[lo, hi)", "pairs": n}, ...] over `edges` (values outside go to the end bins)."""
    counts = [0] * (len(edges) - 1)
    for d in days:
        i = bisect.bisect_right(edges, d) - 1
        counts[min(max(i, 0), len(counts) - 1)] += 1
    return [{"days": f"[{edges[i]:g}, {edges[i + 1]:g})", "pairs": counts[i]} for i in range(len(counts))]


def rhythm_lookup(ecg_root: str | Path, studies: dict[str, EchoStudy], window: tuple[float, float],
                  errors: Any) -> dict[str, Optional[str]]:
    """{echo study_id: rhythm} (`af` / `sinus` / None) of the nearest MIMIC-IV-ECG ECG's machine
    report in the window, from record_list.csv and machine_measurements.csv in `ecg_root`. Only the
    chosen ECGs' reports are kept while machine_measurements.csv streams by."""
    from e2r.datasets.mimic_ecg import default_measurements_path, read_machine_measurements, read_record_list
    from e2r.errors import DataError

    mm_path = default_measurements_path(ecg_root)
    if mm_path is None:
        raise DataError(f"{ecg_root}: no machine_measurements.csv; --ecg-root needs MIMIC-IV-ECG's "
                        "record_list.csv and machine_measurements.csv")
    by_subject: dict[str, list[MimicECG]] = defaultdict(list)
    for e in read_record_list(ecg_root, errors, {s.subject_id for s in studies.values()}):
        by_subject[e.subject_id].append(e)
    for v in by_subject.values():
        v.sort(key=lambda e: (e.ecg_time, int(e.study_id)))
    chosen: dict[str, str] = {}
    for sid, study in studies.items():
        cands = by_subject.get(study.subject_id, [])
        found = nearest_ecg(study.study_time, cands, [e.ecg_time.timestamp() for e in cands], *window)
        if found:
            chosen[sid] = found[0].study_id
    reports = read_machine_measurements(mm_path, set(chosen.values()), errors)
    return {sid: (reports[e].rhythm if e in reports else None) for sid, e in chosen.items()}
