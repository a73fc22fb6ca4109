"""Latent hearts of generator version 2: regional LV function (issue 21, item 1).

Each patient has an aetiology (none, ischaemic in one or more coronary territories, or
non-ischaemic global dysfunction) that scores the 17 AHA segments on the ASE scale
(e2r.phantom.regional). LVEF FOLLOWS from the segments: EF = the heart's intrinsic normal EF x
the mean systolic excursion of its segments (regional.SEGMENT_EXCURSION), and the volumes follow
from the EF through version 1's remodelling (latent.heart_given_lvef), so phenotypes.csv stays
self-consistent: lvesv = lvedv (1 - lvef / 100), wmsi = the mean score, and the territory names
exactly the territories whose segments move abnormally.

Prevalences (a hospital echo lab's adult cohort; the phantom's choices within the cited figures):
- Regional wall-motion abnormalities at rest: 28.1 % of 285 adults with cardiovascular symptoms
  having a TTE at a general hospital (Zua & Potts, J Natl Med Assoc 1996;88:444-8); 21 % of 116
  patients without known coronary disease referred for stress testing (Elhendy et al., J Am Soc
  Echocardiogr 2000, PubMed 10625825). Chosen: ischaemic 26 %.
- Ischaemic share of reduced EF: 49 % of HFrEF in the ESC Heart Failure Long-Term Registry
  (Chioncel et al., Eur J Heart Fail 2017;19:1574-85), 60 % in the Swedish HF Registry (Vedin et
  al., Circ Heart Fail 2017;10:e003875). Chosen: non-ischaemic global dysfunction 6 %, which
  with the infarct sizes below makes ischaemic hearts about half of those with LVEF < 40 % and
  about two thirds of those with LVEF < 50 % (measured on 5,000 draws; tests check a range).
- Infarct size: WMSI after an infarct mostly 1.5-2 (47 % of 162 first-infarct survivors below
  1.5, G Ital Cardiol 1990;20:133; mean 1.7 without and 2.2 with later complications in Nishimura
  et al., Am J Cardiol 1984); the phantom's ischaemic hearts average 1.5, LVEF median ~48 %.
- Culprit territory: LAD ~47 %, RCA ~34 %, LCx ~17 % of STEMI culprits (LCx 14 % of STEMI and
  25 % of NSTE-ACS in the Eastern Danish Heart Registry, Waziri et al., EuroIntervention 2016).
- A second territory: remote asynergy, only with multivessel disease, in 17 % of 98 first
  infarcts (Jaarsma et al., Am J Cardiol 1986;58:394-8).
- Dyskinesia in 10.8 % of 6,232 patients after an infarct (TRACE, Heart 2002;87:410).
- Intrinsic normal EF: ASE 2015 normal LVEF 62 +- 5 % (men) and 64 +- 5 % (women) (Lang et al.,
  J Am Soc Echocardiogr 2015;28:1-39, Table 4).

Shape traits that only some views show (hidden fields of the Exam; e2r.phantom.echo_synth draws
them; none changes a phenotype):
- lv_linear_ratio: the LV diameter at the one level PLAX and PSAX cut, over the diameter of the
  ellipsoid of the same volume and length (what the apical views trace whole). In 852 healthy
  Framingham Offspring adults (CMR), the linear sphericity (EDD / 4-chamber length) and the
  volumetric one (EDV / sphere of that length) correlate only r = 0.86 in men, 0.855 in women
  (abstract P140, "Linear versus volumetric measures of left ventricular sphericity: concordance
  and normal reference values", Framingham Offspring, 1,794 adults); with the
  phantom's sphericity spread (SD of log ~0.08) that leaves a local-diameter factor of SD ~0.05
  (r = s / sqrt(s^2 + e^2)). Larger in distorted ventricles: linear methods assume a fixed geometry
  that fails with regional wall-motion abnormalities (ASE 2015, Lang et al., section on LV
  volumes: linear methods are not recommended for volumes), so the SD grows with the WMSI.
- la_ap_ratio: the LA anteroposterior diameter (the one PLAX shows) over the volume-equivalent
  diameter. The LA is bounded by sternum and spine, so it enlarges mostly superior-inferiorly and
  medial-laterally and the AP diameter underestimates its size (ASE 2015, LA section); on CT the AP
  diameter correlates with the 3D LA volume r = 0.67 (Mahabadi et al., J Cardiovasc Comput Tomogr
  2010;4:49-54, PMC2825157). Chosen: AP grows as volume^0.23 instead of ^0.33, log SD 0.06, which
  gives r ~0.70 on the phantom's LA volumes; the other two axes take the rest of the volume.
- rv_psax_ratio: the RV's short-axis crescent, which PSAX shows, against the basal diameter of the
  A4C. The RV wraps the LV as a crescent with separate inflow and outflow; on cine MRI its shape is
  far more variable on axial (cross-sectional) images than on the four-chamber plane (wedge / box
  / round 17 / 43 / 23 % against 63 / 20 / 0 %; J Comput Assist Tomogr 2005;29:725-33, PubMed
  16272840), and no 2D view shows the whole RV (Ostenfeld & Flachskampf, Echo Res Pract 2015,
  PMC4676454). Chosen: an independent log SD 0.15 (the evidence gives the direction, not the size).
- apical_foreshortening: the study's apical window. Foreshortening comes from the intercostal
  space the apex is imaged from (moving one space down restores the true apex: Rasmussen,
  echocardiographyskills.com, "Avoiding a foreshortened / truncated apical view", a 7 cm apex seen
  as 6 cm), so it is shared by the study's apical clips: drawn per exam over version 2's former
  per-clip range (0-8 % of the long axis), with a small per-clip jitter in echo_walls.apical_bias.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from e2r.phantom import latent
from e2r.phantom.latent import Exam
from e2r.phantom.regional import (
    AKINETIC,
    DYSKINETIC,
    HYPOKINETIC,
    NORMAL,
    SEGMENT_EXCURSION,
    SEGMENTS,
    TERRITORIES,
    territory_label,
)

AETIOLOGIES = ("none", "ischaemic", "global")
AETIOLOGY_PROBS = (0.68, 0.26, 0.06)
# Culprit territory of an ischaemic heart, in TERRITORIES order (LAD, LCx, RCA): STEMI culprits
# normalised (47 / 17 / 34 %).
CULPRIT_PROBS = (0.48, 0.17, 0.35)
P_SECOND_TERRITORY = 0.17     # Jaarsma 1986: remote asynergy in 17 %
P_THIRD_TERRITORY = 0.15      # of those with two: three-vessel infarcts are rarer (phantom's choice)
P_DYSKINESIA = 0.11           # TRACE: dyskinesia in 10.8 % after an infarct
INTRINSIC_EF = {"M": 62.0, "F": 64.0}  # ASE 2015 normal mean; SD 5, clipped to the range below
INTRINSIC_EF_SD = 5.0
INTRINSIC_EF_RANGE = (52.0, 76.0)
MIN_EXCURSION = 0.2           # no heart below ~10 % EF: the worst scores are eased until it holds
MIN_GLOBAL_ABNORMAL = 8       # diffuse: at least about half of the segments hypokinetic
P_WALL_MOTION_CHANGE = 0.15   # a repeat exam re-grades one abnormal segment by one step
# Shape traits (module docstring).
LV_LINEAR_SD = 0.05           # log SD of lv_linear_ratio at WMSI 1; x (1 + WMSI - 1) above
LA_AP_EXPONENT = -0.10        # la_ap_ratio ~ (LA volume / LA_REF_ML) ** this: AP grows as V^0.23
LA_REF_ML = 50.0
LA_AP_SD = 0.06
RV_PSAX_SD = 0.15
APICAL_WINDOW = (0.0, 0.08)   # a study's apical foreshortening, fraction of the long axis

# Order in which an infarct involves its territory's segments, from the core outwards (0-based
# SEGMENTS indices): every occlusion of an artery involves its distal (downstream) bed, only a
# proximal one the basal segments too, so a small infarct takes the first few, a large one all.
# LAD: apex and apical anterior/septal, then mid, then basal; LCx: the mid lateral wall first;
# RCA: the basal-mid inferior wall first (the usual inferior infarct). Phantom's choice following
# the Cerqueira 2002 supply map.
INFARCT_ORDER = {
    "LAD": (16, 12, 13, 6, 7, 0, 1),
    "LCx": (10, 11, 15, 4, 5),
    "RCA": (3, 9, 2, 8, 14),
}


def mean_excursion(scores: tuple[int, ...] | list[int]) -> float:
    """Mean systolic excursion of the segments relative to normal (1.0 = all normal)."""
    return float(np.mean([SEGMENT_EXCURSION[s] for s in scores]))


def _infarct(rng: np.random.Generator, scores: list[int], territory: str, culprit: bool) -> None:
    """Score one infarcted territory in place: a contiguous extent from the core, the core
    mostly akinetic, the border zone mostly hypokinetic; the culprit's core can be dyskinetic."""
    order = INFARCT_ORDER[territory]
    n = int(rng.integers(3 if culprit else 2, len(order) + 1))
    core = (n + 1) // 2
    for rank, seg in enumerate(order[:n]):
        p_akinetic = 0.8 if rank < core else 0.4
        scores[seg] = AKINETIC if rng.random() < p_akinetic else HYPOKINETIC


def _draw_wall_motion(rng: np.random.Generator, aetiology: str) -> tuple[list[int], str]:
    """The 17 ASE scores and the territory label of one heart."""
    scores = [NORMAL] * len(SEGMENTS)
    if aetiology == "none":
        return scores, territory_label([])
    if aetiology == "global":
        # Non-ischaemic (dilated, toxic, tachycardic...) dysfunction: diffuse hypokinesis, more
        # segments and some akinetic ones as severity rises.
        severity = rng.random()
        for seg in range(len(SEGMENTS)):
            if rng.random() < 0.55 + 0.45 * severity:
                scores[seg] = AKINETIC if rng.random() < 0.35 * severity ** 2 else HYPOKINETIC
        normal = [s for s in range(len(SEGMENTS)) if scores[s] == NORMAL]
        missing = MIN_GLOBAL_ABNORMAL - (len(SEGMENTS) - len(normal))
        if missing > 0:
            for seg in rng.choice(normal, size=missing, replace=False):
                scores[int(seg)] = HYPOKINETIC
        return _ease(scores), "global"
    culprit = TERRITORIES[int(rng.choice(len(TERRITORIES), p=CULPRIT_PROBS))]
    chosen = [culprit]
    if rng.random() < P_SECOND_TERRITORY:
        rest = [t for t in TERRITORIES if t != culprit]
        weights = np.array([CULPRIT_PROBS[TERRITORIES.index(t)] for t in rest])
        chosen.append(rest[int(rng.choice(len(rest), p=weights / weights.sum()))])
        if rng.random() < P_THIRD_TERRITORY:
            chosen += [t for t in rest if t not in chosen]
    for t in chosen:
        _infarct(rng, scores, t, culprit=t == culprit)
    if rng.random() < P_DYSKINESIA:
        scores[INFARCT_ORDER[culprit][0]] = DYSKINETIC   # aneurysmal core
    return _ease(scores), territory_label(chosen)


def _ease(scores: list[int]) -> list[int]:
    """Ease the worst segments by one grade (never to normal) until the excursion reaches
    MIN_EXCURSION, so that the territories stay as drawn and no EF falls below ~10 %."""
    while mean_excursion(scores) < MIN_EXCURSION:
        worst = max(range(len(scores)), key=lambda i: (scores[i], i))
        if scores[worst] <= HYPOKINETIC:
            break
        scores[worst] -= 1
    return scores


def draw_baseline_exam(rng: np.random.Generator) -> Exam:
    """Draw one patient's heart at the first exam (generator version 2)."""
    sex = "M" if rng.random() < 0.55 else "F"
    age = float(np.clip(rng.normal(63, 14), 20, 95))
    aetiology = AETIOLOGIES[int(rng.choice(len(AETIOLOGIES), p=AETIOLOGY_PROBS))]
    scores, territory = _draw_wall_motion(rng, aetiology)
    intrinsic = float(np.clip(rng.normal(INTRINSIC_EF[sex], INTRINSIC_EF_SD), *INTRINSIC_EF_RANGE))
    lvef = intrinsic * mean_excursion(scores)
    exam = latent.heart_given_lvef(rng, sex, age, lvef)
    distortion = float(np.mean(scores)) - 1.0
    return replace(
        exam, wall_motion=tuple(scores), territory=territory,
        lv_linear_ratio=float(np.exp(rng.normal(0.0, LV_LINEAR_SD * (1.0 + distortion)))),
        la_ap_ratio=float((exam.la_volume / LA_REF_ML) ** LA_AP_EXPONENT * np.exp(rng.normal(0.0, LA_AP_SD))),
        rv_psax_ratio=float(np.exp(rng.normal(0.0, RV_PSAX_SD))),
        apical_foreshortening=float(rng.uniform(*APICAL_WINDOW)),
    )


def draw_repeat_exam(rng: np.random.Generator, base: Exam, days: int) -> Exam:
    """A later exam of the same heart: the same territories and nearly the same scores (one
    abnormal segment re-graded by one step now and then, never to normal), the intrinsic EF
    with version 1's test-retest variation (~3 EF points), the rest as version 1's repeat."""
    intrinsic = base.lvef / mean_excursion(base.wall_motion)
    scores = list(base.wall_motion)
    abnormal = [i for i, s in enumerate(scores) if s != NORMAL]
    if abnormal and rng.random() < P_WALL_MOTION_CHANGE:
        seg = abnormal[int(rng.integers(len(abnormal)))]
        scores[seg] = int(np.clip(scores[seg] + (1 if rng.random() < 0.5 else -1), HYPOKINETIC, DYSKINETIC))
        scores = _ease(scores)
    intrinsic = float(np.clip(intrinsic + rng.normal(0, 3.0), *INTRINSIC_EF_RANGE))
    exam = latent.draw_repeat_exam(rng, base, days)
    lvef = intrinsic * mean_excursion(scores)
    # A new study, a new apical window; the shape traits stay the heart's.
    return replace(exam, lvef=lvef, lvesv=exam.lvedv * (1 - lvef / 100), wall_motion=tuple(scores),
                   apical_foreshortening=float(rng.uniform(*APICAL_WINDOW)))
