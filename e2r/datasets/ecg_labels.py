"""Labelled ECGs without echo, for external validation (`e2r eval --ecg-labels`).

Three layouts, auto-detected by `detect_labels_format` (or named with `--labels-format`):

- `ptbxl`: PTB-XL's `ptbxl_database.csv` (`ecg_id, patient_id, ..., scp_codes, ..., strat_fold,
  filename_lr, filename_hr`). LVH = the SCP code `LVH` among the keys of the `scp_codes` dict
  string, whatever its likelihood (as PTB-XL's own benchmark reads statements; `VCLVH`, voltage
  criteria alone, is a form statement and not counted). Records are `filename_hr` (500 Hz) when
  its header exists, else `filename_lr` (100 Hz), relative to the CSV's folder. `strat_fold`
  selects the folds (default 10, PTB-XL's test fold). No LVEF. MI (for the probes, scored against
  NORM): 1 when a statement of scp_statements.csv's diagnostic_class "MI" is among the keys (the
  file beside the CSV, else PTB-XL 1.0.3's 14 MI codes), 0 for NORM without one, else unlabelled.
  Each item also carries its `strat_fold` and `patient_id` (as `group`) for the probes' splits.
- `cinc`: a folder (searched recursively) of PhysioNet/CinC 2021 WFDB records whose header has a
  `# Dx:` line of SNOMED-CT codes; LVH = 164873001 or 55827005. A header without `# Dx` is skipped.
- `csv`: a plain CSV `ecg_path,label` (label = LVH, 0/1) with an optional `lvef_le45` column (0/1)
  and an optional `patient_id` (kept as `group`: probe splits are then patient-disjoint); paths
  relative to the CSV's folder; an empty cell means "not labelled" for that target.

Every reader returns a `LabelSet`; bad rows are counted by reason and reported by line, never raised.
Only record paths, labels, folds and patient ids are kept (demographics are not read); the patient
id only groups the probes' splits and is never written to an output.
"""

from __future__ import annotations

import ast
import csv
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from e2r.datasets.columns import read_rows
from e2r.errors import DataError

log = logging.getLogger(__name__)

LABEL_FORMATS = ("ptbxl", "cinc", "csv")
PTBXL_LVH = "LVH"
PTBXL_TEST_FOLD = 10
PTBXL_COLUMNS = ("ecg_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr")
# PTB-XL 1.0.3's statements of diagnostic_class MI (scp_statements.csv), used when that file is absent
PTBXL_MI = frozenset({"IMI", "ASMI", "ILMI", "AMI", "ALMI", "INJAS", "LMI", "INJAL", "IPLMI", "IPMI", "INJIN",
                      "INJLA", "PMI", "INJIL"})
PTBXL_NORM = "NORM"
CINC_LVH = frozenset({"164873001", "55827005"})  # SNOMED-CT: LVH; LVH by voltage criteria / ECG
_DX = re.compile(r"^#\s*dx\s*:\s*(.*)$", re.IGNORECASE)
_TRUE = {"1", "1.0", "true", "yes", "y", "t"}
_FALSE = {"0", "0.0", "false", "no", "n", "f"}


@dataclass(frozen=True)
class LabelledECG:
    """One ECG record and its labels (None = not labelled for that target)."""

    path: str                  # the WFDB record or DICOM file, as e2r.ecg.read_ecg takes it
    key: str                   # ecg_id / record name / CSV line: no patient identifier
    lvh: Optional[int] = None
    lvef_le45: Optional[int] = None
    mi: Optional[int] = None         # PTB-XL: MI statement 1, NORM without one 0 (probes only)
    fold: Optional[int] = None       # PTB-XL's strat_fold
    group: Optional[str] = None      # patient id: keeps probe splits patient-disjoint; never written out


@dataclass(frozen=True)
class LabelSet:
    """The ECGs of a labels file and what was left out of it, by reason."""

    source: str
    format: str
    items: tuple[LabelledECG, ...]
    skipped: dict[str, int] = field(default_factory=dict)   # reason -> rows / records left out
    errors: tuple[str, ...] = ()                            # first few bad rows, "file:line: what"
    notes: tuple[str, ...] = ()


def detect_labels_format(path: str | Path) -> str:
    """`cinc` for a folder, `ptbxl` for a CSV with scp_codes + strat_fold, `csv` for one with
    ecg_path; DataError naming what was found otherwise."""
    path = Path(path)
    if path.is_dir():
        return "cinc"
    if not path.is_file():
        raise DataError(f"--ecg-labels {path}: no such file or folder; give PTB-XL's ptbxl_database.csv, a folder "
                        "of CinC 2021 records or a CSV ecg_path,label")
    columns = _header(path)
    if "scp_codes" in columns and "strat_fold" in columns:
        return "ptbxl"
    if "ecg_path" in columns:
        return "csv"
    raise DataError(f"{path}: cannot tell the labels format from its columns ({', '.join(columns) or 'none'}); "
                    "expected PTB-XL's (scp_codes, strat_fold, ...) or ecg_path,label; or pass --labels-format")


def read_ecg_labels(path: str | Path, fmt: Optional[str] = None,
                    folds: Optional[Sequence[int]] = (PTBXL_TEST_FOLD,)) -> LabelSet:
    """Read labelled ECGs in `fmt` (one of LABEL_FORMATS; None = detect). `folds`: PTB-XL's
    strat_fold values to keep (None = all)."""
    fmt = fmt or detect_labels_format(path)
    if fmt == "ptbxl":
        return read_ptbxl(path, folds)
    if fmt == "cinc":
        return read_cinc(path)
    if fmt == "csv":
        return read_label_csv(path)
    raise DataError(f"--labels-format {fmt}: unknown; choose one of {', '.join(LABEL_FORMATS)} (or leave it out "
                    "to detect)")


def read_ptbxl(csv_path: str | Path, folds: Optional[Sequence[int]] = (PTBXL_TEST_FOLD,)) -> LabelSet:
    """PTB-XL's ptbxl_database.csv -> LabelSet (LVH only; see the module doc)."""
    csv_path = Path(csv_path)
    root = csv_path.parent
    wanted = set(folds) if folds else None
    items: list[LabelledECG] = []
    skipped: Counter[str] = Counter()
    errors: list[str] = []
    mi_codes = ptbxl_mi_codes(root / "scp_statements.csv")
    for line, row in _rows(csv_path, PTBXL_COLUMNS, "PTB-XL's ptbxl_database.csv"):
        try:
            fold = int(float(row.get("strat_fold", "")))
        except ValueError:
            _bad(errors, skipped, "bad_row", f"{csv_path}:{line}: strat_fold {row.get('strat_fold', '')!r} is not a number")
            continue
        if wanted is not None and fold not in wanted:
            skipped["other_fold"] += 1
            continue
        try:
            codes = ast.literal_eval(row.get("scp_codes", "") or "{}")
            if not isinstance(codes, dict):
                raise ValueError
        except (ValueError, SyntaxError):
            _bad(errors, skipped, "bad_row", f"{csv_path}:{line}: scp_codes {row.get('scp_codes', '')[:40]!r} is not a "
                 "dict string such as {'NORM': 100.0}")
            continue
        name = _ptbxl_record(root, row)
        if name is None:
            _bad(errors, skipped, "bad_row", f"{csv_path}:{line}: no filename_hr / filename_lr")
            continue
        mi = 1 if codes.keys() & mi_codes else 0 if PTBXL_NORM in codes else None
        items.append(LabelledECG(str(root / name), f"ecg_id {row.get('ecg_id', '')}", int(PTBXL_LVH in codes),
                                 mi=mi, fold=fold, group=(row.get("patient_id") or "").strip() or None))
    notes = (f"strat_fold {', '.join(map(str, sorted(wanted)))} evaluated" if wanted else "all folds evaluated",
             "PTB-XL's LVH is a cardiologist's ECG statement, not an echo measurement")
    return LabelSet(str(csv_path), "ptbxl", tuple(items), dict(skipped), tuple(errors), notes)


def ptbxl_mi_codes(statements: Path) -> frozenset[str]:
    """The SCP codes of diagnostic_class MI in PTB-XL's scp_statements.csv (its first, unnamed column
    holds the code); PTBXL_MI when the file is absent or has no such rows."""
    if not statements.is_file():
        return PTBXL_MI
    try:
        with statements.open(newline="", encoding="utf-8-sig") as fh:
            codes = frozenset(r[""].strip() for r in csv.DictReader(fh)
                              if (r.get("diagnostic_class") or "").strip() == "MI" and r.get(""))
    except (OSError, UnicodeDecodeError, csv.Error, KeyError) as err:
        log.warning("%s: not read (%s); using PTB-XL 1.0.3's MI codes", statements, err)
        return PTBXL_MI
    return codes or PTBXL_MI


def _ptbxl_record(root: Path, row: dict) -> Optional[str]:
    """filename_hr when its header is there, else filename_lr (a user may hold only records100/)."""
    hr, lr = (row.get("filename_hr") or "").strip(), (row.get("filename_lr") or "").strip()
    if hr and ((root / f"{hr}.hea").is_file() or not lr):
        return hr
    return lr or None


def read_cinc(folder: str | Path) -> LabelSet:
    """A folder of CinC 2021 records -> LabelSet; LVH from the `# Dx:` SNOMED codes."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; give the folder of CinC 2021 .hea/.mat records")
    items: list[LabelledECG] = []
    skipped: Counter[str] = Counter()
    errors: list[str] = []
    headers = sorted(folder.rglob("*.hea"))
    if not headers:
        raise DataError(f"{folder}: no .hea headers in this folder or below; give the folder of CinC 2021 records")
    for hea in headers:
        try:
            text = hea.read_text(errors="replace")
        except OSError as err:
            _bad(errors, skipped, "unreadable_header", f"{hea}: cannot be read ({err.strerror or err})")
            continue
        dx = next((m.group(1) for m in map(_DX.match, (s.strip() for s in text.splitlines())) if m), None)
        if dx is None:
            _bad(errors, skipped, "no_dx", f"{hea}: no '# Dx:' line; not a CinC 2021 labelled record")
            continue
        codes = {c.strip() for c in dx.split(",") if c.strip()}
        items.append(LabelledECG(str(hea.with_suffix("")), hea.stem, int(bool(codes & CINC_LVH))))
    return LabelSet(str(folder), "cinc", tuple(items), dict(skipped), tuple(errors),
                    ("LVH = SNOMED-CT 164873001 or 55827005 in # Dx (an ECG diagnosis, not an echo measurement)",))


def read_label_csv(csv_path: str | Path) -> LabelSet:
    """A plain CSV ecg_path,label[,lvef_le45] -> LabelSet (label = LVH)."""
    csv_path = Path(csv_path)
    root = csv_path.parent
    items: list[LabelledECG] = []
    skipped: Counter[str] = Counter()
    errors: list[str] = []
    for line, row in _rows(csv_path, ("ecg_path", "label"), "a labels CSV ecg_path,label[,lvef_le45]"):
        path = (row.get("ecg_path") or "").strip()
        try:
            if not path:
                raise ValueError("empty ecg_path")
            lvh, le45 = _flag(row.get("label"), "label"), _flag(row.get("lvef_le45"), "lvef_le45")
        except ValueError as err:
            _bad(errors, skipped, "bad_row", f"{csv_path}:{line}: {err}")
            continue
        if lvh is None and le45 is None:
            skipped["no_label"] += 1
            continue
        items.append(LabelledECG(str(root / path), f"line {line}", lvh, le45,
                                 group=(row.get("patient_id") or "").strip() or None))
    return LabelSet(str(csv_path), "csv", tuple(items), dict(skipped), tuple(errors))


def _flag(text: Optional[str], column: str) -> Optional[int]:
    t = (text or "").strip().lower()
    if not t:
        return None
    if t in _TRUE:
        return 1
    if t in _FALSE:
        return 0
    raise ValueError(f"{column}={text!r} is not 0/1")


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return [c.strip() for c in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot read it as a CSV ({err}); save it as UTF-8 CSV") from None


def _rows(path: Path, required: Sequence[str], what: str):
    """(line, row) of a CSV after checking its columns (e2r.datasets.columns.read_rows)."""
    if not path.is_file():
        raise DataError(f"{path}: not found; give {what}")
    return read_rows(path, required, expected=what)


def _bad(errors: list[str], skipped: Counter, reason: str, message: str) -> None:
    skipped[reason] += 1
    if len(errors) < 5:
        errors.append(message)
