"""The benchmark's data: the pairs CSV's patient splits, the phenotypes, and the ECGs read once.

Every arm of a benchmark run sees the same splits and the same preprocessed ECG arrays; only the
embeddings differ. Splits come from the pairs CSV's `split` column and must be by patient (a
patient in two splits is refused: the numbers would leak).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from e2r.errors import DataError, E2RError
from e2r.pairs import SPLITS, PairRow, read_pairs

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Splits:
    """The rows of a pairs CSV with the phenotypes of its studies."""

    pairs_csv: str
    rows: tuple[PairRow, ...]
    phenotypes: dict[str, dict[str, Any]] = field(repr=False)

    def ecg_rows(self, *splits: str) -> list[PairRow]:
        """Rows with an ECG in the given splits, in CSV order."""
        return [r for r in self.rows if r.ecg_path and r.split in splits]

    def study_split(self) -> dict[str, str]:
        """study_uid -> split of its patient."""
        return {r.study_uid: r.split for r in self.rows}

    def sizes(self) -> dict[str, dict[str, int]]:
        """Patients, studies and ECG pairs per split (the data size every table reports)."""
        out: dict[str, dict[str, int]] = {}
        for s in SPLITS:
            rows = [r for r in self.rows if r.split == s]
            out[s] = {
                "patients": len({r.patient_id for r in rows}),
                "studies": len({r.study_uid for r in rows}),
                "pairs": sum(1 for r in rows if r.ecg_path),
                "studies_with_phenotypes": len({r.study_uid for r in rows if r.study_uid in self.phenotypes}),
            }
        return out


def read_splits(pairs_csv: str | Path, phenotypes_csv: str | Path) -> Splits:
    """Read the pairs CSV and the phenotype CSV; DataError when the splits cannot be evaluated."""
    from e2r.phenotypes import read_phenotypes

    pairs_csv = Path(pairs_csv)
    rows = read_pairs(pairs_csv)
    for r in rows:
        if r.split not in SPLITS:
            raise DataError(f"{pairs_csv}:{r.line}: split {r.split!r} is not one of {', '.join(SPLITS)}; "
                            "give every row a train/val/test split by patient")
        if not r.study_uid:
            raise DataError(f"{pairs_csv}:{r.line}: empty study_uid; every row names its echo study")
    if not any(r.ecg_path and r.split == "test" for r in rows):
        raise DataError(f"{pairs_csv}: no test-split row with an ECG; the benchmark evaluates on the test split")
    phenotypes, errors = read_phenotypes(phenotypes_csv)
    for err in errors[:5]:
        log.warning("phenotype row skipped: %s", err.message)
    return Splits(str(pairs_csv), tuple(rows), phenotypes)


@dataclass(frozen=True)
class LoadedECGs:
    """Preprocessed ECG windows (N, 12, T) of the rows that could be read."""

    x: np.ndarray
    rows: tuple[PairRow, ...]
    failed: tuple[tuple[str, str], ...]  # (path, reason) of rows left out


def load_ecgs(rows: Sequence[PairRow], preprocess_cfg: Any) -> LoadedECGs:
    """read_ecg + preprocess_ecg every row's ECG; unreadable records are counted, never fatal."""
    from e2r.ecg import read_for_model

    arrays, kept, failed = [], [], []
    for row in rows:
        try:
            arrays.append(read_for_model(row.ecg_path, preprocess_cfg)[1].signal.astype(np.float32))
            kept.append(row)
        except (E2RError, OSError, ValueError) as err:
            failed.append((row.ecg_path, str(err)))
    if failed:
        log.warning("%d of %d ECGs could not be read and are left out (first: %s)", len(failed), len(rows),
                    failed[0][1])
    n = int(getattr(preprocess_cfg, "n_samples", 0) or 0)
    x = np.stack(arrays) if arrays else np.zeros((0, 12, n), np.float32)
    return LoadedECGs(x, tuple(kept), tuple(failed))
