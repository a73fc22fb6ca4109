"""Latent hearts: one per patient, one state per echo exam.

The joint distribution is a small structural model of an adult hospital echo cohort; each
dependency cites where its direction and rough size come from. The values of an exam are the
"measured" phenotypes written to phenotypes.csv, and they drive both the ECG and the echo videos.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from e2r.phantom.regional import wmsi

# LVEF mixture (ESC 2021 classes) of a hospital echo lab: mostly preserved.
EF_CLASS_PROBS = (0.70, 0.15, 0.15)  # preserved >=50, mildly reduced 40-49, reduced <40
HYPERTROPHY_FRACTION = 0.20


@dataclass(frozen=True)
class Exam:
    """The heart at one echo exam: the phenotypes of phenotypes.csv plus a few hidden traits."""

    age: float           # years
    sex: str             # "M" / "F"
    heart_rate: float    # bpm (ventricular rate in AF)
    rhythm: str          # "sinus" / "af"
    lvef: float          # %
    lvedv: float         # mL
    lvesv: float         # mL
    ivsd: float          # mm
    lvpwd: float         # mm
    lvidd: float         # mm, LV internal diameter in diastole (Teichholz-consistent with lvedv)
    lv_mass: float       # g, ASE cube formula
    la_volume: float     # mL (maximal, end-systolic)
    rv_diameter: float   # mm (basal, A4C)
    lbbb: bool           # left bundle branch block (widens QRS; common in LV dysfunction)
    sphericity: float    # LV long/short axis ratio (lower = more spherical, dilated ventricles)
    # Generator version 2 only (empty in version 1): ASE score of each AHA segment, in
    # e2r.phantom.regional.SEGMENTS order, and the territory label of phenotypes.csv.
    wall_motion: tuple[int, ...] = ()
    territory: str = ""
    # Generator version 2 only (1.0 / None in version 1, which never reads them): shape traits
    # that only some views show (latent_v2 draws them and cites the evidence).
    lv_linear_ratio: float = 1.0    # LV short-axis diameter at the PLAX/PSAX level / volume-equivalent diameter
    la_ap_ratio: float = 1.0        # LA anteroposterior diameter / volume-equivalent diameter
    rv_psax_ratio: float = 1.0      # PSAX RV crescent width / A4C basal RV diameter (relative)
    apical_foreshortening: float | None = None  # this study's apical window: fraction of the LV long axis lost

    @property
    def lvh(self) -> bool:
        """ASE: septal or posterior wall >= 13 mm."""
        return max(self.ivsd, self.lvpwd) >= 13.0


@dataclass(frozen=True)
class Patient:
    """A patient: identity, demographics, and one `Exam` per echo study (first = baseline)."""

    index: int
    patient_id: str
    exams: tuple[Exam, ...]


def teichholz_volume(d_cm: np.ndarray | float) -> np.ndarray | float:
    """Teichholz: V = 7 / (2.4 + D) * D^3 (D in cm, V in mL)."""
    return 7.0 / (2.4 + d_cm) * d_cm ** 3


def teichholz_diameter(volume_ml: float) -> float:
    """Invert Teichholz by bisection (monotone in D)."""
    lo, hi = 1.0, 12.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if teichholz_volume(mid) < volume_ml:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def ase_lv_mass(ivsd_mm: float, lvidd_mm: float, lvpwd_mm: float) -> float:
    """ASE/Devereux cube formula: 0.8 * 1.04 * [(IVS + LVID + PW)^3 - LVID^3] + 0.6 g (cm)."""
    ivs, lvid, pw = ivsd_mm / 10, lvidd_mm / 10, lvpwd_mm / 10
    return 0.8 * 1.04 * ((ivs + lvid + pw) ** 3 - lvid ** 3) + 0.6


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def draw_baseline_exam(rng: np.random.Generator) -> Exam:
    """Draw one patient's heart at the first exam."""
    sex = "M" if rng.random() < 0.55 else "F"
    age = float(np.clip(rng.normal(63, 14), 20, 95))

    # LVEF class mixture, then the value within the class.
    cls = rng.choice(3, p=EF_CLASS_PROBS)
    if cls == 0:
        lvef = float(np.clip(rng.normal(60, 5), 50, 75))
    elif cls == 1:
        lvef = float(rng.uniform(40, 50))
    else:
        lvef = float(np.clip(rng.normal(30, 6), 12, 39.9))
    return heart_given_lvef(rng, sex, age, lvef)


def heart_given_lvef(rng: np.random.Generator, sex: str, age: float, lvef: float) -> Exam:
    """The rest of a baseline heart once sex, age and LVEF are drawn: volumes, walls, atria, RV,
    rhythm, rate, conduction. Generator version 2 (latent_v2) calls it with an LVEF that follows
    the segments' motion; version 1 with its class mixture (the draw order is version 1's)."""
    # LVEDV: ASE normal ranges (men ~62-150 mL, women ~46-106 mL); eccentric remodelling
    # dilates the LV as EF falls (HFrEF ventricles are large: Konstam 2011).
    base_edv = rng.normal(112, 20) if sex == "M" else rng.normal(84, 15)
    dilation = 1.0 + 0.028 * max(0.0, 55.0 - lvef)
    lvedv = float(np.clip(base_edv * dilation * rng.lognormal(0, 0.05), 40, 380))
    lvesv = lvedv * (1.0 - lvef / 100.0)

    # Wall thickness: ASE normal 6-10 mm (men) / 6-9 mm (women); concentric hypertrophy
    # (hypertension, aortic stenosis) more likely with age.
    p_lvh = HYPERTROPHY_FRACTION * (0.55 + 0.9 * _sigmoid((age - 60) / 10))
    hypertrophy = rng.random() < min(p_lvh, 0.6)
    ivsd = rng.normal(9.6, 1.0) if sex == "M" else rng.normal(8.6, 0.9)
    if hypertrophy:
        ivsd += abs(rng.normal(4.6, 1.5))
    ivsd = float(np.clip(ivsd, 6.0, 22.0))
    # Posterior wall follows the septum; asymmetric septal hypertrophy leaves it thinner.
    lvpwd = float(np.clip(ivsd * rng.normal(0.94, 0.06), 5.5, 20.0))

    sphericity = float(np.clip(rng.normal(1.75, 0.12) - 0.012 * max(0.0, 50.0 - lvef), 1.15, 2.2))
    lvidd = 10.0 * teichholz_diameter(lvedv)
    lv_mass = ase_lv_mass(ivsd, lvidd, lvpwd)

    # LA volume: ASE normal max ~ 22-58 mL (<34 mL/m2). Raised LV filling pressure enlarges it:
    # diastolic dysfunction with hypertrophy, systolic dysfunction, age (Pritchett 2003).
    la = (44.0 + 0.35 * (age - 60) + 0.8 * max(0.0, 50.0 - lvef)
          + 2.2 * max(0.0, max(ivsd, lvpwd) - 11.0)) * rng.lognormal(0, 0.2)
    # AF risk rises with LA size and age (Framingham; Vaziri 1994); AF itself dilates the LA.
    p_af = _sigmoid(-3.6 + 0.045 * (la - 50) + 0.04 * (age - 65))
    rhythm = "af" if rng.random() < p_af else "sinus"
    if rhythm == "af":
        la *= rng.uniform(1.1, 1.35)
    la_volume = float(np.clip(la, 18, 250))

    # RV basal diameter: ASE normal 25-41 mm; dilation from pulmonary hypertension / left heart
    # failure (biventricular), AF, independent lung disease.
    rv = rng.normal(34.0, 3.5)
    p_rv_dilated = 0.06 + 0.20 * (lvef < 40) + 0.10 * (rhythm == "af")
    if rng.random() < p_rv_dilated:
        rv += abs(rng.normal(10.0, 3.5))
    rv_diameter = float(np.clip(rv, 22, 65))

    # Heart rate: sympathetic drive in HFrEF raises sinus rate; AF ventricular rate is higher.
    if rhythm == "af":
        hr = rng.normal(88, 16)
    else:
        hr = rng.normal(70, 10) + 0.25 * max(0.0, 50.0 - lvef)
    heart_rate = float(np.clip(hr, 45, 140))

    # LBBB: ~25-30 % in HFrEF vs a few % in the population (Baldasseroni 2002).
    p_lbbb = 0.28 if lvef < 40 else (0.10 if lvef < 50 else 0.025)
    lbbb = bool(rng.random() < p_lbbb)

    return Exam(age=age, sex=sex, heart_rate=heart_rate, rhythm=rhythm, lvef=lvef, lvedv=lvedv,
                lvesv=lvesv, ivsd=ivsd, lvpwd=lvpwd, lvidd=lvidd, lv_mass=lv_mass,
                la_volume=la_volume, rv_diameter=rv_diameter, lbbb=lbbb, sphericity=sphericity)


def draw_repeat_exam(rng: np.random.Generator, base: Exam, days: int) -> Exam:
    """A later exam of the same heart: measurement and biological variation, not a new heart.

    Test-retest echo variability is ~5 % LVEF points, ~10 % volumes, ~1 mm walls (Otterstad 1997);
    rhythm persists except for occasional new-onset AF.
    """
    lvef = float(np.clip(base.lvef + rng.normal(0, 3.0), 10, 78))
    lvedv = float(np.clip(base.lvedv * rng.lognormal(0, 0.06), 40, 380))
    ivsd = float(np.clip(base.ivsd + rng.normal(0, 0.6), 5.5, 22))
    lvpwd = float(np.clip(base.lvpwd + rng.normal(0, 0.6), 5.0, 20))
    lvidd = 10.0 * teichholz_diameter(lvedv)
    rhythm = base.rhythm
    if rhythm == "sinus" and rng.random() < 0.04:
        rhythm = "af"
    hr = base.heart_rate + rng.normal(0, 6) + (14 if rhythm != base.rhythm else 0)
    return replace(
        base,
        age=base.age + days / 365.25,
        heart_rate=float(np.clip(hr, 45, 140)),
        rhythm=rhythm,
        lvef=lvef,
        lvedv=lvedv,
        lvesv=lvedv * (1 - lvef / 100),
        ivsd=ivsd,
        lvpwd=lvpwd,
        lvidd=lvidd,
        lv_mass=ase_lv_mass(ivsd, lvidd, lvpwd),
        la_volume=float(np.clip(base.la_volume * rng.lognormal(0, 0.07), 18, 250)),
        rv_diameter=float(np.clip(base.rv_diameter + rng.normal(0, 1.5), 22, 65)),
    )


def exam_phenotypes(exam: Exam) -> dict[str, float | str]:
    """The phenotype columns of phenotypes.csv for one exam, rounded as an echo report would be;
    a version 2 exam (wall motion scored) adds the optional wmsi and territory."""
    row: dict[str, float | str] = {
        "lvef": round(exam.lvef, 1),
        "lvedv": round(exam.lvedv, 1),
        "lvesv": round(exam.lvesv, 1),
        "ivsd": round(exam.ivsd, 1),
        "lvpwd": round(exam.lvpwd, 1),
        "lv_mass": round(exam.lv_mass, 1),
        "la_volume": round(exam.la_volume, 1),
        "rv_diameter": round(exam.rv_diameter, 1),
        "heart_rate": round(exam.heart_rate),
        "rhythm": exam.rhythm,
    }
    if exam.wall_motion:
        row["wmsi"] = round(wmsi(exam.wall_motion), 2)
        row["territory"] = exam.territory
    return row


def beat_times(rng: np.random.Generator, heart_rate: float, rhythm: str, start: float, stop: float) -> np.ndarray:
    """Times (s) of ventricular beats covering [start, stop].

    Sinus rhythm: respiratory sinus arrhythmia (~4 s period, a few % of RR) plus small jitter,
    RR coefficient of variation ~3 %. AF: "irregularly irregular" RR, independent intervals with
    CV ~ 20 % (Tateno & Glass 2001 report CVs of 15-30 %), never shorter than 0.3 s.
    """
    rr_mean = 60.0 / heart_rate
    times = [start - rng.uniform(0, rr_mean)]
    resp_phase = rng.uniform(0, 2 * np.pi)
    while times[-1] <= stop:
        t = times[-1]
        if rhythm == "af":
            rr = max(0.30, rr_mean * rng.gamma(25.0, 1 / 25.0) * rng.lognormal(0, 0.12))
        else:
            rr = rr_mean * (1 + 0.035 * np.sin(2 * np.pi * t / 4.0 + resp_phase)) + rng.normal(0, 0.008 * rr_mean)
        times.append(t + rr)
    return np.asarray(times)
