"""ECG lead names: match the names a file uses to the 12 canonical leads, and derive the
Goldberger/Einthoven limb leads from I and II when a file lacks them.

Files name leads in many ways (`i`, `I`, `Lead I (Einthoven)`, `AVR`, `aVR`, `C1` for V1 in
European notation, `DII` in Latin-American devices, `-aVR` for inverted aVR). Matching is by
name only; the position of a lead in the file never decides which lead it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

CANONICAL_LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LIMB_LEADS_DERIVABLE = ("III", "aVR", "aVL", "aVF")

_ALIASES = {
    "i": "I", "di": "I",
    "ii": "II", "dii": "II",
    "iii": "III", "diii": "III",
    "avr": "aVR", "avl": "aVL", "avf": "aVF",
    **{f"v{k}": f"V{k}" for k in range(1, 7)},
    **{f"c{k}": f"V{k}" for k in range(1, 7)},
}
_PREFIXES = ("mdcecglead", "lead")  # after removing spaces, "_" and "-"

# DICOM ECG channel source codes (MDC "2:N" and SCP-ECG "5.6.3-9-N") share the same numbers.
DICOM_LEAD_CODES = {
    1: "I", 2: "II", 61: "III", 62: "aVR", 63: "aVL", 64: "aVF",
    3: "V1", 4: "V2", 5: "V3", 6: "V4", 7: "V5", 8: "V6",
}


def canonical_lead(name: str | None) -> tuple[str, float] | None:
    """Map a lead name as written in a file to `(canonical name, sign)`, or None if it is not one
    of the 12 standard leads. `sign` is -1.0 for inverted leads written with a leading minus
    (`-aVR`), else 1.0. A name a reader could not decode (None) is no lead."""
    if not isinstance(name, str):
        return None
    s = name.strip().lower()
    sign = 1.0
    if s.startswith("-"):
        sign, s = -1.0, s[1:]
    s = re.sub(r"\(.*?\)", "", s)  # "lead i (einthoven)" -> "lead i"
    s = re.sub(r"[\s_\-]+", "", s)
    for prefix in _PREFIXES:
        if s.startswith(prefix) and s[len(prefix):] in _ALIASES:
            s = s[len(prefix):]
            break
    lead = _ALIASES.get(s)
    return (lead, sign) if lead else None


@dataclass(frozen=True)
class LeadSelection:
    """Which file channel feeds each canonical lead found in a file."""

    channels: dict[str, tuple[int, float]]  # canonical lead -> (channel index, sign)
    notes: tuple[str, ...]  # e.g. duplicate names that were ignored


def select_leads(names: list[str] | tuple[str, ...]) -> LeadSelection:
    """Pick one file channel per canonical lead by name. A non-inverted channel wins over an
    inverted one; among equals the first wins (later duplicates, e.g. rhythm strips, are noted)."""
    channels: dict[str, tuple[int, float]] = {}
    notes: list[str] = []
    for idx, name in enumerate(names):
        match = canonical_lead(name)
        if match is None:
            continue
        lead, sign = match
        if lead in channels:
            kept_idx, kept_sign = channels[lead]
            if kept_sign < 0 < sign:
                channels[lead] = (idx, sign)
            else:
                notes.append(f"lead {lead} appears again as {name!r} (signal {idx}); used signal {kept_idx}")
            continue
        channels[lead] = (idx, sign)
    return LeadSelection(channels, tuple(notes))


def missing_leads(found: set[str] | dict[str, object]) -> list[str]:
    """Canonical leads that cannot be read or derived from the leads found (in canonical order)."""
    derivable = "I" in found and "II" in found
    return [
        lead
        for lead in CANONICAL_LEADS
        if lead not in found and not (derivable and lead in LIMB_LEADS_DERIVABLE)
    ]


def derive_limb_leads(lead_i: np.ndarray, lead_ii: np.ndarray) -> dict[str, np.ndarray]:
    """III, aVR, aVL, aVF from I and II (Einthoven's law and Goldberger's augmented leads)."""
    return {
        "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2,
        "aVL": lead_i - lead_ii / 2,
        "aVF": lead_ii - lead_i / 2,
    }


def assemble_12_lead(
    signals: dict[str, np.ndarray], n_samples: int
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Stack canonical leads (each (T,) in mV) into float32 (12, T); derive missing limb leads
    from I and II. The caller has checked `missing_leads` is empty. Returns (signal, derived)."""
    derived: list[str] = []
    missing_limb = [lead for lead in LIMB_LEADS_DERIVABLE if lead not in signals]
    if missing_limb:
        computed = derive_limb_leads(signals["I"], signals["II"])
        for lead in missing_limb:
            signals = {**signals, lead: computed[lead]}
            derived.append(lead)
    out = np.empty((len(CANONICAL_LEADS), n_samples), dtype=np.float32)
    for row, lead in enumerate(CANONICAL_LEADS):
        out[row] = signals[lead]
    return out, tuple(lead for lead in CANONICAL_LEADS if lead in derived)


def lead_quality_warnings(signal: np.ndarray, flat_mv: float = 1e-3) -> tuple[list[str], int]:
    """Warnings for NaN-only, partly-NaN and flat leads of a (12, T) mV signal, and the number of
    usable leads (neither NaN-only nor flat). `flat_mv`: a lead whose range is at most this is flat
    (1 uV is below the resolution of any real ECG's noise floor)."""
    warnings: list[str] = []
    usable = 0
    for row, lead in enumerate(CANONICAL_LEADS):
        x = signal[row]
        finite = np.isfinite(x)
        n_bad = x.size - int(finite.sum())
        if n_bad == x.size:
            warnings.append(f"lead {lead} has no valid samples (all NaN)")
            continue
        if float(np.ptp(x[finite])) <= flat_mv:
            warnings.append(f"lead {lead} is flat (constant signal)")
            continue
        if n_bad:
            warnings.append(f"lead {lead}: {100.0 * n_bad / x.size:.1f}% of samples missing (NaN)")
        usable += 1
    return warnings, usable
