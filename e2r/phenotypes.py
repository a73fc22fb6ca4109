"""Echo phenotypes: the CSV schema, derived clinical labels, and the reader.

Schema (one row per echo study, keyed by StudyInstanceUID):

| column       | unit   | meaning                                             |
|--------------|--------|-----------------------------------------------------|
| study_uid    |        | DICOM StudyInstanceUID                              |
| patient_id   |        | patient identifier (hashed before it enters an index)|
| study_date   |        | YYYYMMDD                                            |
| lvef         | %      | left-ventricular ejection fraction                  |
| lvedv, lvesv | mL     | LV end-diastolic / end-systolic volume              |
| ivsd, lvpwd  | mm     | septal / posterior wall thickness in diastole       |
| lv_mass      | g      | LV mass                                             |
| la_volume    | mL     | left-atrial volume                                  |
| rv_diameter  | mm     | RV basal diameter                                   |
| heart_rate   | bpm    |                                                     |
| rhythm       |        | `sinus` or `af`                                     |

Optional columns (a CSV without them reads as before, and its rows carry no such key):

| column       | unit   | meaning                                             |
|--------------|--------|-----------------------------------------------------|
| wmsi         |        | wall-motion score index, 1 (normal) to 4 (ASE scale)|
| territory    |        | coronary territory of regional dysfunction: `none`, `global`, or `LAD`, `LCx`, `RCA` joined by `+` (`LAD+RCA`) |

Derived labels: `lvef_class` (reduced < 40 %, mildly_reduced 40-49 %, preserved >= 50 %),
`lvef_le45` (1 when LVEF <= 45 %, EchoNext's flag), `lvh` (1 when max(ivsd, lvpwd) >= 13 mm).
Derived number (arrays only, never a CSV column): `lvsv` = lvedv - lvesv, the stroke volume (mL).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from e2r.errors import DataError

NUMERIC_FIELDS = (
    "lvef", "lvedv", "lvesv", "ivsd", "lvpwd", "lv_mass", "la_volume", "rv_diameter", "heart_rate",
)
LABEL_FIELDS = ("lvef_class", "lvef_le45", "lvh")
# Phenotype-aware retrieval: a study is relevant when every one of these lies within 0.5 SD.
RELEVANCE_FIELDS = ("lvef", "lvedv", "lvesv", "ivsd", "lvpwd")
# The Echo2ECG paper's relevance: one of these at a time within 0.5 SD (a mAP per field).
PER_PHENOTYPE_FIELDS = ("lvef", "lvedv", "lvesv", "lvsv")
# Optional columns: regional wall motion, as real echo reports carry it.
OPTIONAL_COLUMNS = ("wmsi", "territory")
WMSI_RANGE = (1.0, 4.0)  # ASE: 1 normal, 2 hypokinetic, 3 akinetic, 4 dyskinetic; the index is their mean
# Canonical territory names; a multi-territory value joins the coronary ones in this order.
CORONARY_TERRITORIES = ("LAD", "LCx", "RCA")
TERRITORY_WORDS = ("none", "global")
# What the echo tower learns to regress from each video.
TOWER_FIELDS = ("lvef", "lvedv", "lvesv", "ivsd", "lvpwd", "la_volume", "rv_diameter")
LVEF_CLASSES = ("reduced", "mildly_reduced", "preserved")
PHENOTYPE_COLUMNS = ("study_uid", "patient_id", "study_date", *NUMERIC_FIELDS, "rhythm", *LABEL_FIELDS)
# The clinical thresholds, here and nowhere else.
LVEF_CLASS_BOUNDS = (40.0, 50.0)  # reduced < 40 %, mildly reduced 40-49 %, preserved >= 50 % (ESC 2021)
LVEF_LE45 = 45.0                  # EchoNext's flag: LVEF <= 45 %
LVH_WALL_MM = 13.0                # hypertrophy: max(IVSd, LVPWd) >= 13 mm


def lvef_class(lvef: float) -> str:
    """LVEF class by the 2021 ESC heart-failure thresholds."""
    return LVEF_CLASSES[int(np.searchsorted(LVEF_CLASS_BOUNDS, lvef, side="right"))]


def lvef_class_index(lvef: np.ndarray) -> np.ndarray:
    """Index into LVEF_CLASSES of each LVEF (the thresholds of `lvef_class`); -1 for NaN."""
    lvef = np.asarray(lvef, dtype=np.float64)
    idx = np.searchsorted(LVEF_CLASS_BOUNDS, np.nan_to_num(lvef), side="right")
    return np.where(np.isfinite(lvef), idx, -1)


def lvef_le45_flag(lvef: np.ndarray) -> np.ndarray:
    """1.0 where LVEF <= 45 %, 0.0 above, NaN where LVEF is missing."""
    lvef = np.asarray(lvef, dtype=np.float64)
    return np.where(np.isfinite(lvef), (lvef <= LVEF_LE45).astype(float), np.nan)


def lvh_flag(walls_mm: Sequence[float]) -> int:
    """1 when the thickest wall is >= 13 mm."""
    return int(max(walls_mm) >= LVH_WALL_MM)


def derive_labels(values: dict[str, Any]) -> dict[str, Any]:
    """The derived labels for one study's numeric phenotypes (missing inputs give None)."""
    lvef = values.get("lvef")
    walls = [w for w in (values.get("ivsd"), values.get("lvpwd")) if w is not None]
    return {
        "lvef_class": lvef_class(lvef) if lvef is not None else None,
        "lvef_le45": int(lvef <= LVEF_LE45) if lvef is not None else None,
        "lvh": lvh_flag(walls) if walls else None,
    }


@dataclass(frozen=True)
class PhenotypeRowError:
    """One CSV row that could not be used, with its 1-based line number."""

    line: int
    message: str


def read_phenotypes(path: str | Path) -> tuple[dict[str, dict[str, Any]], list[PhenotypeRowError]]:
    """Read a phenotype CSV into {study_uid: {field: value}}; bad rows are returned, not raised.

    Numeric fields that are empty become None; derived labels are recomputed from the numbers so
    they are always consistent.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: phenotype CSV not found; pass --phenotypes with the CSV described in the README")
    rows: dict[str, dict[str, Any]] = {}
    errors: list[PhenotypeRowError] = []
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or "study_uid" not in reader.fieldnames:
                raise DataError(f"{path}: no 'study_uid' column; the phenotype CSV needs the columns listed in the README")
            optional = [c for c in OPTIONAL_COLUMNS if c in reader.fieldnames]
            for line, raw in enumerate(reader, start=2):
                try:
                    uid = (raw.get("study_uid") or "").strip()
                    if not uid:
                        raise ValueError("empty study_uid")
                    values: dict[str, Any] = {"study_date": (raw.get("study_date") or "").strip() or None}
                    for field in NUMERIC_FIELDS:
                        values[field] = parse_number(raw.get(field), field)
                    rhythm = (raw.get("rhythm") or "").strip()
                    values["rhythm"] = rhythm or None
                    if "wmsi" in optional:
                        values["wmsi"] = parse_wmsi(raw.get("wmsi"))
                    if "territory" in optional:
                        values["territory"] = parse_territory(raw.get("territory"))
                    values.update(derive_labels(values))
                    values["patient_id"] = (raw.get("patient_id") or "").strip() or None
                    rows[uid] = values
                except ValueError as err:
                    errors.append(PhenotypeRowError(line, f"{path}:{line}: {err}"))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot read the phenotype CSV ({err}); save it as UTF-8 CSV") from None
    return rows, errors


def parse_number(text: Optional[str], field: str) -> Optional[float]:
    """A finite float from a CSV cell, None when empty; ValueError naming the field otherwise."""
    if text is None or text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{field}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{field}={text!r} is not finite")
    return value


def parse_wmsi(text: Optional[str]) -> Optional[float]:
    """The wall-motion score index of a CSV cell, None when empty; ValueError outside WMSI_RANGE."""
    value = parse_number(text, "wmsi")
    lo, hi = WMSI_RANGE
    if value is not None and not lo <= value <= hi:
        raise ValueError(f"wmsi={text!r} is outside {lo:g}-{hi:g} (the ASE wall-motion score index)")
    return value


def parse_territory(text: Optional[str]) -> Optional[str]:
    """The canonical territory of a CSV cell (`lad+rca` -> `LAD+RCA`), None when empty; ValueError
    naming the valid values otherwise. Canonical names make equal territories compare equal."""
    cell = (text or "").strip()
    if not cell:
        return None
    if cell.lower() in TERRITORY_WORDS:
        return cell.lower()
    known = {t.lower() for t in CORONARY_TERRITORIES}
    parts = [p.strip().lower() for p in cell.split("+")]
    if any(p not in known for p in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"territory={text!r} is not one of {', '.join(TERRITORY_WORDS + CORONARY_TERRITORIES)} "
                         "or a '+' combination such as LAD+RCA")
    return "+".join(t for t in CORONARY_TERRITORIES if t.lower() in parts)


def write_phenotypes(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write rows (dicts with PHENOTYPE_COLUMNS) as a phenotype CSV, labels derived from the numbers;
    an optional column is written only when some row carries a value for it."""
    columns = PHENOTYPE_COLUMNS + tuple(c for c in OPTIONAL_COLUMNS if any(r.get(c) is not None for r in rows))
    with Path(path).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            full = {**row, **derive_labels(row)}
            writer.writerow({k: ("" if full.get(k) is None else full.get(k)) for k in columns})


def stroke_volume(row: Mapping[str, Any]) -> Optional[float]:
    """lvsv = lvedv - lvesv (mL); None when either is missing."""
    edv, esv = row.get("lvedv"), row.get("lvesv")
    return None if edv is None or esv is None else float(edv) - float(esv)


# Numbers derived from a row for metrics (phenotype_arrays, cohort_sd); never CSV columns.
DERIVED_NUMBERS = {"lvsv": stroke_volume}


def phenotype_arrays(rows: Sequence[Optional[Mapping[str, Any]]], fields: Sequence[str]) -> dict[str, np.ndarray]:
    """{field: float (N,)} from phenotype rows, NaN where missing; a DERIVED_NUMBERS field (lvsv)
    is computed from the row."""
    out = {f: np.full(len(rows), np.nan) for f in fields}
    for i, row in enumerate(rows):
        for f in fields:
            v = (DERIVED_NUMBERS[f](row) if f in DERIVED_NUMBERS else row.get(f)) if row else None
            if v is not None:
                out[f][i] = float(v)
    return out


def cohort_sd(phenotypes: Mapping[str, Mapping[str, Any]], fields: Sequence[str]) -> dict[str, float]:
    """Population SD (ddof=0) of each field over every study of the phenotype CSV: the fixed width
    of phenotype-aware relevance, the same for every arm, seed and direction."""
    arrays = phenotype_arrays(list(phenotypes.values()), fields)
    return {f: float(np.nanstd(a)) if np.isfinite(a).any() else float("nan") for f, a in arrays.items()}
