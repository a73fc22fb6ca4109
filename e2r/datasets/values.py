"""Values in phenotype imports: result strings parsed into numbers, plausibility limits, and the
summary every importer prints (values per field, rejects per field and reason, rows skipped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from e2r.datasets.columns import RowErrors

# (field, lowest, highest) plausible values in e2r units, after unit normalisation.
PLAUSIBLE = {
    "lvef": (5.0, 85.0),          # %
    "lvedv": (10.0, 500.0),       # mL
    "lvesv": (3.0, 400.0),        # mL
    "ivsd": (3.0, 35.0),          # mm
    "lvpwd": (3.0, 35.0),         # mm
    "lvedd": (15.0, 100.0),       # mm (only used for lv_mass)
    "lv_mass": (30.0, 800.0),     # g
    "la_volume": (5.0, 400.0),    # mL
    "rv_diameter": (10.0, 80.0),  # mm
    "heart_rate": (20.0, 250.0),  # bpm
}

_NUMBER = r"[-+]?\d+(?:[.,]\d+)?"
_RANGE = re.compile(rf"^({_NUMBER})\s*(?:-|–|to)\s*({_NUMBER})$", re.IGNORECASE)
_BOUND = re.compile(rf"^(<=?|>=?|≤|≥)\s*({_NUMBER})$")
_PLAIN = re.compile(rf"^({_NUMBER})$")


def parse_result(text: str) -> tuple[Optional[float], str]:
    """A `result` string -> (value, kind). Kinds: `plain`, `percent` (`55%`), `bound` (`<20`,
    `>70`: the bound itself), `range` (`1.5-2.0`, `55 to 60`: the midpoint), `empty`, `unparsed`
    (value None). A decimal comma is read as a point."""
    s = (text or "").strip().replace(" %", "%")
    if not s:
        return None, "empty"
    kind = "plain"
    if s.endswith("%"):
        s, kind = s[:-1].strip(), "percent"
    m = _PLAIN.match(s)
    if m:
        return _num(m.group(1)), kind
    m = _BOUND.match(s)
    if m:
        return _num(m.group(2)), "bound"
    m = _RANGE.match(s.rstrip("%").strip())
    if m:
        a, b = _num(m.group(1)), _num(m.group(2))
        return (a + b) / 2.0, "range"
    return None, "unparsed"


def _num(text: str) -> float:
    return float(text.replace(",", "."))


@dataclass
class ImportSummary:
    """What a phenotype import found: studies written, values per field, rejects per field and
    reason, and rows skipped."""

    studies: int = 0
    values: dict[str, int] = field(default_factory=dict)                 # field -> studies with a value
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)    # field -> reason -> count
    result_kinds: dict[str, int] = field(default_factory=dict)           # plain/percent/bound/range/...
    unit_converted: dict[str, int] = field(default_factory=dict)         # field -> values converted cm -> mm
    rows_read: int = 0
    rows_used: int = 0
    rows_skipped: dict[str, int] = field(default_factory=dict)           # reason -> rows
    bad_rows: RowErrors = field(default_factory=RowErrors)

    def reject(self, fld: str, reason: str) -> None:
        """Count one rejected value."""
        per = self.rejected.setdefault(fld, {})
        per[reason] = per.get(reason, 0) + 1

    def skip(self, reason: str) -> None:
        """Count one long-format row not used."""
        self.rows_skipped[reason] = self.rows_skipped.get(reason, 0) + 1


def plausible(fld: str, value: Optional[float], summary: ImportSummary) -> Optional[float]:
    """value rounded to 0.01 when inside PLAUSIBLE[fld], else None and one reject counted."""
    if value is None:
        return None
    lo, hi = PLAUSIBLE[fld]
    if value < lo:
        summary.reject(fld, f"below_{lo:g}")
        return None
    if value > hi:
        summary.reject(fld, f"above_{hi:g}")
        return None
    return round(value, 2)
