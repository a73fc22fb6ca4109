"""Phenotype rows from any CSV through a column map, and from EchoNet-Dynamic's FileList.csv.

Column map (`--map`): `field=COLUMN[:unit]`, comma-separated, e.g.
`study_uid=StudyUID,lvef=EF,ivsd=IVSd:cm,lvef=EF_frac:fraction`. Fields are e2r's phenotype
columns (e2r.phenotypes.PHENOTYPE_COLUMNS without the derived labels); a field not mapped is read
from a column of its own name when there is one. Units convert into e2r's (`UNITS`); values are
parsed like MIMIC's result strings (`55%`, `<20`, `1.5-2.0`) and checked against
e2r.datasets.values.PLAUSIBLE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from e2r.datasets.columns import read_rows
from e2r.datasets.values import ImportSummary, parse_result, plausible
from e2r.errors import ConfigError

MAPPABLE = ("study_uid", "patient_id", "study_date", "lvef", "lvedv", "lvesv", "ivsd", "lvpwd", "lv_mass",
            "la_volume", "rv_diameter", "heart_rate", "rhythm")
NUMERIC = ("lvef", "lvedv", "lvesv", "ivsd", "lvpwd", "lv_mass", "la_volume", "rv_diameter", "heart_rate")
LENGTH_FIELDS = ("ivsd", "lvpwd", "rv_diameter")  # e2r stores them in mm
# unit -> (fields it applies to, factor into e2r's unit)
UNITS = {
    "mm": (LENGTH_FIELDS, 1.0),
    "cm": (LENGTH_FIELDS, 10.0),
    "%": (("lvef",), 1.0),
    "fraction": (("lvef",), 100.0),
    "ml": (("lvedv", "lvesv", "la_volume"), 1.0),
    "l": (("lvedv", "lvesv", "la_volume"), 1000.0),
    "g": (("lv_mass",), 1.0),
    "bpm": (("heart_rate",), 1.0),
}
_RHYTHM = {"af": "af", "afib": "af", "a-fib": "af", "atrial fibrillation": "af", "atrial flutter": "af",
           "sinus": "sinus", "sr": "sinus", "nsr": "sinus", "sinus rhythm": "sinus", "normal sinus rhythm": "sinus"}


def parse_map(text: str) -> dict[str, tuple[str, Optional[str]]]:
    """`lvef=EF,ivsd=IVS:cm` -> {"lvef": ("EF", None), "ivsd": ("IVS", "cm")}; ConfigError naming
    the bad item and the valid fields/units."""
    out: dict[str, tuple[str, Optional[str]]] = {}
    for item in (p.strip() for p in (text or "").split(",")):
        if not item:
            continue
        target, sep, source = item.partition("=")
        target, source = target.strip(), source.strip()
        if not sep or not target or not source:
            raise ConfigError(f"--map {item!r}: expected field=COLUMN[:unit], e.g. lvef=EF,ivsd=IVSd:cm")
        if target not in MAPPABLE:
            raise ConfigError(f"--map {item!r}: unknown field {target!r}; fields: {', '.join(MAPPABLE)}")
        unit = None
        if ":" in source:
            source, unit = (x.strip() for x in source.rsplit(":", 1))
            unit = unit.lower()
            if unit not in UNITS or target not in UNITS[unit][0]:
                valid = [u for u, (fields, _) in UNITS.items() if target in fields]
                raise ConfigError(f"--map {item!r}: unit {unit!r} does not apply to {target}; "
                                  f"units for {target}: {', '.join(valid) or '(none)'}")
        out[target] = (source, unit)
    return out


def _rhythm(text: str) -> Optional[str]:
    return _RHYTHM.get(" ".join(text.lower().split()))


def import_mapped_csv(path: str | Path, mapping: dict[str, tuple[str, Optional[str]]]
                      ) -> tuple[list[dict[str, Any]], ImportSummary]:
    """Phenotype rows from a CSV through a column map (see the module doc). Rows without a study
    key, and a second row of the same study, are counted by line and left out."""
    summary = ImportSummary()
    path = Path(path)
    full = {f: mapping.get(f, (f, None)) for f in MAPPABLE}
    # Only the mapped columns are required; unmapped fields are read when their column exists.
    required = [src for f, (src, _) in mapping.items()]
    if "study_uid" not in mapping:
        required.append("study_uid")
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for line, raw in read_rows(path, required):
        summary.rows_read += 1
        uid = raw.get(full["study_uid"][0], "").strip()
        if not uid:
            summary.bad_rows.add(path, line, "no_study_uid", f"empty {full['study_uid'][0]}")
            continue
        if uid in seen:
            summary.bad_rows.add(path, line, "duplicate_study", f"study {uid} already had a row; this one is left out")
            continue
        seen.add(uid)
        row: dict[str, Any] = {"study_uid": uid,
                               "patient_id": raw.get(full["patient_id"][0], "").strip() or None,
                               "study_date": raw.get(full["study_date"][0], "").strip() or None}
        for fld in NUMERIC:
            col, unit = full[fld]
            text = raw.get(col, "")
            value, kind = parse_result(text)
            if kind == "unparsed":
                summary.bad_rows.add(path, line, "unparsed_value", f"{col}={text[:40]!r} is not a number")
            if value is not None and unit is not None:
                value *= UNITS[unit][1]
            row[fld] = plausible(fld, value, summary)
        rtext = raw.get(full["rhythm"][0], "").strip()
        row["rhythm"] = _rhythm(rtext) if rtext else None
        if rtext and row["rhythm"] is None:
            summary.reject("rhythm", "not_af_or_sinus")
        summary.rows_used += 1
        rows.append(row)
    return _finish(rows, summary)


def import_echonet(filelist: str | Path) -> tuple[list[dict[str, Any]], ImportSummary]:
    """Phenotype rows from EchoNet-Dynamic's FileList.csv: one study per video (`study_uid` =
    FileName, `patient_id` = FileName, as EchoNet has one video per patient), lvef = EF,
    lvesv = ESV, lvedv = EDV; the other fields are empty."""
    from e2r.datasets.echonet import scan_filelist

    summary = ImportSummary()
    videos, errors = scan_filelist(filelist)
    for err in errors:
        summary.bad_rows.add(filelist, err.line, "bad_row", err.message.split(": ", 1)[-1])
    rows = []
    for v in videos:
        summary.rows_read += 1
        row: dict[str, Any] = {f: None for f in MAPPABLE}
        row.update(study_uid=v.file_name, patient_id=v.file_name,
                   lvef=plausible("lvef", v.ef, summary), lvesv=plausible("lvesv", v.esv, summary),
                   lvedv=plausible("lvedv", v.edv, summary))
        summary.rows_used += 1
        rows.append(row)
    summary.rows_read += len(errors)
    return _finish(rows, summary)


def _finish(rows: list[dict[str, Any]], summary: ImportSummary) -> tuple[list[dict[str, Any]], ImportSummary]:
    summary.studies = len(rows)
    for fld in (*NUMERIC, "rhythm"):
        summary.values[fld] = sum(1 for r in rows if r.get(fld) is not None)
    return rows, summary
