"""Regional LV function of the phantom (generator version 2): the AHA 17-segment model, the
coronary territories, the segments each echo view cuts, and the ASE wall-motion scale.

One place for these facts: the latent heart (e2r.phantom.latent) scores the segments, the echo
views (e2r.phantom.echo_synth) draw the walls they cut with those scores, and the ECG
(e2r.phantom.ecg_synth) loses the forces of an infarcted territory.

Sources:
- Segments and their usual coronary territory: Cerqueira et al., "Standardized myocardial
  segmentation and nomenclature for tomographic imaging of the heart", Circulation
  2002;105:539-542 (AHA 17-segment model; territory assignment of its Figure 2).
- Wall-motion scores and the WMSI: Lang et al., ASE/EACVI chamber quantification guideline,
  J Am Soc Echocardiogr 2015;28:1-39 (1 normal or hyperkinetic, 2 hypokinetic, 3 akinetic,
  4 dyskinetic; WMSI = mean score of the scored segments, 1.0 = normal).
- Segments each view cuts: the same guideline's Figure 6 (apical four-chamber: inferoseptal,
  anterolateral and the apex; apical two-chamber: anterior, inferior and the apex; parasternal
  long axis: basal and mid anteroseptal and inferolateral; mid short axis: the six mid segments).
"""

from __future__ import annotations

from typing import Sequence

from e2r.phenotypes import CORONARY_TERRITORIES

# AHA 17-segment model, in its numbering (index i is segment i + 1).
SEGMENTS = (
    "basal anterior", "basal anteroseptal", "basal inferoseptal",
    "basal inferior", "basal inferolateral", "basal anterolateral",
    "mid anterior", "mid anteroseptal", "mid inferoseptal",
    "mid inferior", "mid inferolateral", "mid anterolateral",
    "apical anterior", "apical septal", "apical inferior", "apical lateral",
    "apex",
)

# Usual coronary supply (Cerqueira 2002), as 0-based indices into SEGMENTS; the names and their
# order are phenotypes.csv's (e2r.phenotypes.CORONARY_TERRITORIES).
TERRITORY_SEGMENTS = {
    "LAD": (0, 1, 6, 7, 12, 13, 16),      # anterior, anteroseptal, apical anterior/septal, apex
    "LCx": (4, 5, 10, 11, 15),            # inferolateral, anterolateral, apical lateral
    "RCA": (2, 3, 8, 9, 14),              # inferoseptal, inferior, apical inferior
}
TERRITORIES = CORONARY_TERRITORIES

# Segments in each standard view's plane (ASE 2015, Figure 6), 0-based. PSAX is the mid-papillary
# short axis; the apical views cut the apex and the apical segments of their two walls.
VIEW_SEGMENTS = {
    "A4C": (2, 8, 13, 16, 15, 11, 5),     # inferoseptal wall -> apex -> anterolateral wall
    "A2C": (3, 9, 14, 16, 12, 6, 0),      # inferior wall -> apex -> anterior wall
    "PLAX": (1, 7, 4, 10),                # basal/mid anteroseptal, basal/mid inferolateral
    "PSAX": (6, 7, 8, 9, 10, 11),         # the six mid segments
}

# ASE wall-motion scale.
NORMAL, HYPOKINETIC, AKINETIC, DYSKINETIC = 1, 2, 3, 4
# Systolic inward excursion of a segment's endocardium relative to a normal segment: hypokinesis
# is reduced thickening and excursion, akinesis none (< 10 % thickening), dyskinesis outward
# systolic motion (ASE 2015, wall-motion definitions). The fractions are the phantom's choice.
SEGMENT_EXCURSION = {NORMAL: 1.0, HYPOKINETIC: 0.5, AKINETIC: 0.0, DYSKINETIC: -0.3}


def wmsi(scores: Sequence[int]) -> float:
    """Wall-motion score index: the mean ASE score of the 17 segments (1.0 = normal)."""
    if len(scores) != len(SEGMENTS):
        raise ValueError(f"wall-motion scores: {len(scores)} given, {len(SEGMENTS)} segments")
    return sum(scores) / len(scores)


def territory_label(territories: Sequence[str]) -> str:
    """The canonical territory string of phenotypes.csv: `none`, `global` (non-ischaemic), or the
    infarcted territories in TERRITORIES order joined by `+` (e.g. `LAD+RCA`)."""
    chosen = set(territories)
    if not chosen:
        return "none"
    if chosen == {"global"}:
        return "global"
    unknown = chosen - set(TERRITORIES)
    if unknown:
        raise ValueError(f"territories {sorted(unknown)}: give some of {', '.join(TERRITORIES)} or 'global'")
    return "+".join(t for t in TERRITORIES if t in chosen)
