"""The pairs CSV shared by training and evaluation: which ECG goes with which echo study.

Columns: `ecg_path` (relative to the CSV's folder, or absolute; empty for an archive study without
an ECG), `study_uid`, `patient_id`, `split` (train / val / test, by patient), optionally `days`.
`read_pairs` refuses a CSV that puts one patient or one study in two splits (the numbers would
leak); `write_pairs` writes one.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from e2r.errors import DataError

PAIR_COLUMNS = ("ecg_path", "study_uid", "patient_id", "split")  # required
WRITE_COLUMNS = ("ecg_path", "study_uid", "patient_id", "days", "split")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PairRow:
    """One row; `ecg_path` resolved against the CSV's folder ("" when the study has no ECG)."""

    ecg_path: str
    study_uid: str
    patient_id: str
    split: str  # "train", "val" or "test" (read_pairs refuses anything else)
    line: int   # 1-based line in the CSV, for messages


def read_pairs(csv_path: str | Path) -> list[PairRow]:
    """Read a pairs CSV; DataError naming the file when it is missing, unreadable or lacks columns."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: pairs CSV not found; give the pairs CSV described in the README")
    try:
        with csv_path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in PAIR_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{csv_path}: missing column(s) {', '.join(missing)}; "
                                f"a pairs CSV needs {', '.join(PAIR_COLUMNS)}")
            rows = []
            for line, rec in enumerate(reader, start=2):
                ecg = (rec.get("ecg_path") or "").strip()
                if ecg and not Path(ecg).is_absolute():
                    ecg = str(csv_path.parent / ecg)
                rows.append(PairRow(ecg, (rec.get("study_uid") or "").strip(), (rec.get("patient_id") or "").strip(),
                                    (rec.get("split") or "").strip().lower(), line))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{csv_path}: cannot read the pairs CSV ({err})") from None
    for r in rows:
        if r.split not in SPLITS:
            raise DataError(f"{csv_path}:{r.line}: split {r.split!r} is not one of {', '.join(SPLITS)}; "
                            "give every row a train/val/test split by patient")
    check_splits(csv_path, rows)
    return rows


def write_pairs(csv_path: str | Path, rows: list[dict]) -> None:
    """Write rows (dicts with WRITE_COLUMNS; ecg_path relative to the CSV's folder) as a pairs CSV."""
    with Path(csv_path).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=WRITE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def check_splits(csv_path: str | Path, rows: list[PairRow]) -> None:
    """DataError when a patient or a study appears in two splits."""
    by_patient: dict[str, set[str]] = defaultdict(set)
    by_study: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r.patient_id:
            by_patient[r.patient_id].add(r.split)
        by_study[r.study_uid].add(r.split)
    for kind, groups in (("patient", by_patient), ("study", by_study)):
        mixed = sorted(k for k, v in groups.items() if len(v) > 1)
        if mixed:
            raise DataError(f"{csv_path}: {kind} {mixed[0]} is in several splits "
                            f"({', '.join(sorted(groups[mixed[0]]))}) and {len(mixed) - 1} more; "
                            "split by patient so no patient is in two splits")
