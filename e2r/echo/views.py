"""Echo view labels (A4C, A2C, PLAX, PSAX, ...) from a DICOM file's free text or view code."""

from __future__ import annotations

import re
from typing import Any, Optional

# (label, patterns) checked in order on lower-cased text with punctuation turned into spaces;
# subcostal/suprasternal and apical long axis come first so "subcostal 4 chamber" and "aplax"
# do not read as A4C or PLAX.
_VIEW_PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SUBCOSTAL", (r"\bsubcostal", r"\bsub ?xiphoid", r"\bsubc\b", r"\bsc ?4 ?c\b")),
    ("SUPRASTERNAL", (r"\bsuprasternal", r"\bssn\b")),
    ("A5C", (r"\ba ?5 ?c\b", r"\bap ?5\b", r"\bapical (5|five)\b", r"\b(5|five) ?ch(amber)?\b")),
    ("A4C", (r"\ba ?4 ?c\b", r"\bap ?4\b", r"\bapical (4|four)\b", r"\b(4|four) ?ch(amber)?\b")),
    ("A3C", (r"\ba ?3 ?c\b", r"\bap ?3\b", r"\bapical (3|three)\b", r"\b(3|three) ?ch(amber)?\b",
             r"\baplax\b", r"\bapical long", r"\bapical lax\b")),
    ("A2C", (r"\ba ?2 ?c\b", r"\bap ?2\b", r"\bapical (2|two)\b", r"\b(2|two) ?ch(amber)?\b")),
    ("PLAX", (r"\bplax\b", r"\bparasternal long", r"\bpslax\b", r"\bpl ?lax\b")),
    ("PSAX", (r"\bpsax\b", r"\bparasternal short", r"\bsax\b", r"\bshort axis\b")),
)
_VIEW_RE = tuple((label, tuple(re.compile(p) for p in pats)) for label, pats in _VIEW_PATTERNS)


def parse_view(text: str) -> Optional[str]:
    """Map a free-text view description ("Apical 4 chamber", "PLAX zoom") to a view label, or None."""
    norm = re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()
    if not norm:
        return None
    for label, patterns in _VIEW_RE:
        if any(p.search(norm) for p in patterns):
            return label
    return None


def view_of(ds: Any) -> Optional[str]:
    """View label from SeriesDescription, else ViewCodeSequence's code meaning."""
    label = parse_view(str(ds.get("SeriesDescription", "") or ""))
    if label:
        return label
    for item in ds.get("ViewCodeSequence", None) or []:
        label = parse_view(str(item.get("CodeMeaning", "") or ""))
        if label:
            return label
    return None
