"""A 12-lead ECG from a 3-D cardiac dipole.

The heart vector d(t) (x = patient's left, y = inferior, z = anterior; mV) is a sum of
Gaussian-in-time dipole components per beat (atria: P; ventricles: QRS; repolarisation: ST-T),
projected on fixed lead vectors: limb leads in Einthoven's hexaxial frontal plane (so that
III = II - I and the augmented leads follow Goldberger's equations), chest leads as horizontal-
plane directions with proximity gains (a simplified Dower/Frank geometry).

What the ECG carries of the heart (each coupling cited where it is applied):
LV mass -> QRS voltage and strain ST-T; LVEF / dilation -> wide QRS (and LBBB), poor R-wave
progression; LA volume -> long, notched P with a deep negative terminal P in V1; AF -> no P,
fibrillatory waves, irregular RR; RV dilation -> right axis and an anterior RV force (R in V1); an infarct (generator version 2:
scored wall motion) -> the scar's early QRS forces lost: Q waves and lost R in the leads facing it.
What it does not carry: RV/LA exact sizes beyond these, EDV itself, the echo view geometry.
Nuisances with no morphology: heart position (axis rotation), body habitus and electrode gain,
baseline wander, mains hum, muscle (EMG) noise, lead noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

from e2r.phantom.latent import Exam, beat_times
from e2r.phantom.regional import AKINETIC, DYSKINETIC, HYPOKINETIC, SEGMENTS, TERRITORY_SEGMENTS


# Chest leads: horizontal-plane angle (deg from the patient's left toward anterior) and gain
# (electrodes near the heart see larger potentials; V2-V4 largest).
_CHEST_ANGLES = np.deg2rad([118, 96, 76, 56, 30, 4])
_CHEST_GAINS = np.array([1.15, 1.55, 1.6, 1.45, 1.2, 0.95])


def lead_matrix() -> np.ndarray:
    """(12, 3) matrix mapping the heart vector (x left, y inferior, z anterior) to the 12 leads."""
    lead_i = np.array([1.0, 0.0, 0.0])
    lead_ii = np.array([np.cos(np.pi / 3), np.sin(np.pi / 3), 0.0])
    limb = [
        lead_i, lead_ii, lead_ii - lead_i,
        -(lead_i + lead_ii) / 2, lead_i - lead_ii / 2, lead_ii - lead_i / 2,
    ]
    chest = [g * np.array([np.cos(a), 0.12, np.sin(a)]) for a, g in zip(_CHEST_ANGLES, _CHEST_GAINS)]
    return np.array(limb + chest)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


# --- Infarct (generator version 2). Q waves mark a scar's loss of electromotive force in the
# first 40 ms of the QRS (Thygesen et al., Fourth Universal Definition of Myocardial Infarction,
# Circulation 2018;138:e618: Q >= 0.02 s in V2-V3, >= 0.03 s and 0.1 mV in two contiguous leads
# of I/aVL, V1-V6 or II/III/aVF), and their size scales with the infarct's extent: Selvester's
# QRS score gives ~3 % of the LV per point (Selvester, Wagner & Hindman, Arch Intern Med 1985;
# 145:1877), so the lost force here is the sum of the scarred segments' outward normals (17
# segments = the whole LV). Akinetic and dyskinetic segments are taken as transmural scar (full
# loss); hypokinetic ones as non-transmural or stunned (a small loss): Q waves track infarct size
# and transmural extent on CMR, imperfectly (Moon et al., J Am Coll Cardiol 2004;44:554).
SCAR_WEIGHT = {HYPOKINETIC: 0.25, AKINETIC: 1.0, DYSKINETIC: 1.0}
# Lost force of one fully scarred segment (at its activation time) as a fraction of the main LV
# force, and its patient-to-patient spread (log SD: body, Q-wave regression in a minority of
# patients in the years after an infarct). Per territory a factor on it (INFARCT_LOSS_SCALE), set
# against PTB-XL's labelled infarcts (docs/phantom.md, bench/probe_qwaves.py): the anterior wall's
# early forces face V1-V4 directly, so a small loss writes QS complexes there (anterior Q rate
# 0.37 against PTB-XL's 0.27-0.33), while the inferior wall needs a larger one (0.57 against
# 0.49); the lateral wall depolarises late and is left at 1 (Q rate 0.11; lateral infarcts are
# often ECG-silent: no lateral Q in PTB-XL's 6 LMI/ILMI records).
INFARCT_LOSS = 0.1
INFARCT_LOSS_SD = 0.45
INFARCT_LOSS_SCALE = {"LAD": 0.6, "LCx": 1.0, "RCA": 2.75}
_SEGMENT_TERRITORY = {seg: t for t, segs in TERRITORY_SEGMENTS.items() for seg in segs}

# --- Generator version 2's normal QRS and voltage, calibrated against the PTB-XL records
# (docs/phantom.md, bench/probe_qwaves.py, bench/probe_voltage.py; validation data, measured the
# same way on both sides). Version 1 draws the same random numbers in the same order.
# In LVH the mean QRS vector also turns leftward and posteriorly (Hancock et al., AHA/ACCF/HRS
# recommendations part V, Circulation 2009;119:e251): a taller R in aVL, so the Cornell voltage
# (RaVL + SV3; Casale et al., Circulation 1987;75:565) rises with LV mass beside Sokolow-Lyon.
# Only the leftward turn is drawn: a posterior one deepens SV1 too, and with it the Sokolow-Lyon
# separation, already at the top of what echo-defined LVH allows. Frontal degrees per mm of the
# thicker wall above 11 mm (version 2 only; the size is the phantom's choice: 4 would put the
# Sokolow-Lyon AUROC for echo LVH near 0.88, above the 0.65-0.80 that insensitive voltage
# criteria allow; docs/phantom.md).
V2_LVH_LEFTWARD_DEG_PER_MM = 2.0
# Version 2's second early force: after the septum (left to right), the apex and the anterior
# paraseptal wall depolarise by 20-30 ms (Durrer et al., Circulation 1970;41:899), a leftward,
# inferior, anterior force that writes the R wave growing across V2-V4 before the main posterior
# LV force writes their S (the textbook QRS vector sequence). Version 1 has the septal and main
# forces only, so its R in V3 is small (median 0.26 mV against 0.86 mV in PTB-XL NORM records).
# Amplitude as a fraction of the main LV force; (time, width) as fractions of the QRS.
V2_ANTERIOR_FORCE = 0.33
V2_ANTERIOR_TIMING = (0.30, 0.10)


def _segment_normals() -> np.ndarray:
    """(17, 3) outward normals of the AHA segments in heart-vector coordinates (x left, y
    inferior, z anterior): the LV's long axis runs leftward, anteriorly and inferiorly to the
    apex; around it the anterior wall faces the chest wall (and a little upward), the septum the
    right ventricle (rightward, anterior), the inferior wall the diaphragm, the lateral wall the
    left and back (Cerqueira 2002 orientation, a simplified chest geometry)."""
    ant = _unit(np.array([0.0, -0.35, 1.0]))
    sept = _unit(np.array([-1.0, 0.1, 0.6]))
    inf = _unit(np.array([0.0, 1.0, -0.2]))
    lat = _unit(np.array([1.0, -0.1, -0.5]))
    apex = _unit(np.array([0.55, 0.45, 0.7]))
    right = np.array([-1.0, 0.0, 0.0])  # the inferior septum faces the RV from behind: no anterior part
    ring = [ant, _unit(ant + sept), _unit(inf + right), inf, _unit(inf + lat), _unit(ant + lat)]
    apical = [_unit(0.6 * w + apex) for w in (ant, sept, inf, lat)]
    return np.array(ring + ring + apical + [apex])


_NORMALS = _segment_normals()
_SEPTAL = (1, 2, 7, 8, 13)  # anteroseptal, inferoseptal, apical septal: the septal r's source
# When each segment depolarises, as a fraction of the QRS: the mid and apical septum and the
# anterior paraseptal wall first, the apex and anterior wall by ~20-30 ms, the lateral wall
# later, the posterobasal (basal inferolateral) region last at 60-80 ms (Durrer et al., "Total
# excitation of the isolated human heart", Circulation 1970;41:899). So an anteroseptal or
# inferior scar takes forces from the first 40 ms (Q waves), a basal lateral one mostly from
# the late QRS (smaller R, few Q waves: lateral infarcts are often ECG-silent).
SEGMENT_ACTIVATION = (0.40, 0.35, 0.40, 0.45, 0.60, 0.50,
                      0.30, 0.20, 0.20, 0.35, 0.45, 0.40,
                      0.25, 0.20, 0.30, 0.35,
                      0.25)


def infarct_scar(exam: Exam) -> tuple[np.ndarray, float] | None:
    """The scar weight of each AHA segment (0 = viable, 1 = transmural) of an exam's infarcted
    territories, and the scarred fraction of the septum; None when the exam has no scored wall
    motion (version 1) or no infarct (territory none, or global non-ischaemic dysfunction whose
    diffuse hypokinesis is not scar)."""
    if not exam.wall_motion:
        return None
    if len(exam.wall_motion) != len(SEGMENTS):
        raise ValueError(f"wall_motion: {len(exam.wall_motion)} scores, {len(SEGMENTS)} segments")
    territories = [t for t in exam.territory.split("+") if t in TERRITORY_SEGMENTS]
    w = np.zeros(len(SEGMENTS))
    for seg in {s for t in territories for s in TERRITORY_SEGMENTS[t]}:
        w[seg] = SCAR_WEIGHT.get(exam.wall_motion[seg], 0.0)
    if not w.any():
        return None
    return w, float(w[list(_SEPTAL)].mean())


@dataclass(frozen=True)
class ECGTruth:
    """What went into one synthetic ECG (for checks; not written to the record)."""

    heart_rate: float
    qrs_ms: float
    p_ms: float           # 0 in AF
    pr_ms: float
    qt_ms: float
    frontal_axis_deg: float
    lv_voltage_mv: float  # amplitude of the main LV free-wall force
    strain: float         # 0..1 severity of strain ST-T
    rhythm: str
    beats: tuple[float, ...]


def _rotation(rng: np.random.Generator, frontal_sd: float, horizontal_sd: float) -> np.ndarray:
    """Random rotation of the heart in the chest (anatomical position: a nuisance)."""
    a = np.deg2rad(rng.normal(0, frontal_sd))   # about z: frontal plane
    b = np.deg2rad(rng.normal(0, horizontal_sd))  # about y: horizontal plane
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, -np.sin(b)], [0, 1, 0], [np.sin(b), 0, np.cos(b)]])
    return ry @ rz


def synth_ecg(exam: Exam, rng: np.random.Generator, fs: float, duration_s: float = 10.0) -> tuple[np.ndarray, ECGTruth]:
    """A (12, T) float64 ECG in mV, canonical lead order, and the truth behind it."""
    n = int(round(fs * duration_s))
    t = np.arange(n) / fs
    hr = float(np.clip(exam.heart_rate + rng.normal(0, 4), 40, 150))
    beats = beat_times(rng, hr, exam.rhythm, -1.0, duration_s + 1.0)
    rr = 60.0 / hr

    # --- QRS timing. LV dysfunction prolongs QRS (QRS > 120 ms in ~1/3 of HFrEF, and QRS width
    # rises as EF falls: Kashani & Barold 2005); LBBB adds ~40-60 ms.
    qrs = 86.0 + 0.8 * max(0.0, 52.0 - exam.lvef) + 0.06 * (exam.lvedv - 100) + rng.normal(0, 8)
    if exam.lbbb:
        qrs += rng.uniform(38, 60)
    qrs = float(np.clip(qrs, 70, 190)) / 1000.0

    # --- Axis. Normal frontal QRS axis -30..+90 (leftward with age); RV dilation turns it right
    # (right axis deviation > +90 deg in RV enlargement, ESC/AHA ECG criteria).
    axis = rng.normal(48, 18) - 0.4 * (exam.age - 60) + 3.2 * max(0.0, exam.rv_diameter - 38)
    if exam.lbbb:
        axis -= 15  # LBBB often with left axis
    v2 = bool(exam.wall_motion)
    thick_mm = max(0.0, max(exam.ivsd, exam.lvpwd) - 11.0) if v2 else 0.0
    axis -= V2_LVH_LEFTWARD_DEG_PER_MM * thick_mm
    axis = float(np.clip(axis, -60, 160))
    # Posterior tilt of the LV force: dilated/failing LVs rotate it posteriorly and lose anterior
    # forces: poor R-wave progression V1-V4 (DePace 1983; Zema 1980).
    tilt = np.deg2rad(22 + 0.35 * max(0.0, 55.0 - exam.lvef) + rng.normal(0, 10))
    ax = np.deg2rad(axis)
    u_main = np.array([np.cos(tilt) * np.cos(ax), np.cos(tilt) * np.sin(ax), -np.sin(tilt)])

    # --- Voltage. QRS amplitude rises with LV mass (Sokolow-Lyon SV1+RV5 > 3.5 mV, Cornell
    # RaVL+SV3 > 2.8/2.0 mV are LVH criteria); body habitus (fat, lungs, chest wall) scales it
    # independently, which is why voltage criteria are insensitive.
    habitus = rng.lognormal(0.0, 0.24) * (0.92 if exam.sex == "F" else 1.0)
    lv_volt = 2.3 * (exam.lv_mass / 160.0) ** 0.65
    lv_volt *= 1.0 - 0.15 * max(0.0, 40.0 - exam.lvef) / 30.0  # scarred, failing LV: lower forces
    rv_volt = 0.18 + 0.07 * max(0.0, exam.rv_diameter - 36)    # RV hypertrophy/dilation: R in V1
    septal = 0.28 * (1.0 - 0.6 * max(0.0, 50.0 - exam.lvef) / 35.0)
    scar = infarct_scar(exam)
    if scar is not None:
        septal *= 1.0 - 0.5 * scar[1]  # a septal scar loses the septal r (QS in V1-V3 in septal MI)
    if exam.lbbb:
        septal = -0.15  # septum activated right-to-left: no septal q in I/V6

    # (time offset as fraction of QRS, width as fraction of QRS, direction, amplitude mV)
    u_sept = _unit(np.array([-0.55, 0.15, 0.8]))
    u_late = _unit(np.array([-0.35, -0.55, -0.6]))
    u_rv = _unit(np.array([-0.75, 0.35, 0.55]))
    qrs_parts = [
        (0.14, 0.075, u_sept, septal),
        (0.48, 0.13, u_main, lv_volt),
        (0.55, 0.14, u_rv, rv_volt),
        (0.80, 0.08, u_late, 0.22 + 0.1 * exam.lbbb),
    ]
    if v2 and V2_ANTERIOR_FORCE and not exam.lbbb:   # LBBB activates the LV from the septum's right side
        qrs_parts.append((*V2_ANTERIOR_TIMING, _NORMALS[16], V2_ANTERIOR_FORCE * lv_volt))
    if scar is not None:
        # Version 2 only, so version 1 draws exactly what it always drew. Scar is electrically
        # silent: the forces the territory would have made in the first half of the QRS are
        # missing, so the net vector points away from it (Q waves facing it) and the R waves
        # facing it shrink (lost R progression V1-V4 in anterior MI).
        gain = lv_volt * rng.lognormal(0.0, INFARCT_LOSS_SD)
        for seg in np.flatnonzero(scar[0]):
            loss = INFARCT_LOSS * INFARCT_LOSS_SCALE[_SEGMENT_TERRITORY[seg]]
            qrs_parts.append((SEGMENT_ACTIVATION[seg], 0.12, -_NORMALS[seg], loss * gain * scar[0][seg]))

    # --- Repolarisation. QT by Bazett (QTc ~ 410 ms, longer with wide QRS). T concordant with
    # the QRS (normal ventricular gradient), turned against it by LV strain in hypertrophy
    # (lateral ST depression + T inversion; Romhilt-Estes) and by LBBB (secondary ST-T).
    qt = (0.41 + 0.0006 * (qrs * 1000 - 90)) * np.sqrt(rr) + rng.normal(0, 0.01)
    # Strain shows in a minority of echo-LVH (~1/3; Okin 2004), more often the thicker the wall.
    strain = 0.0
    if rng.random() < 0.4:
        strain = float(np.clip((max(exam.ivsd, exam.lvpwd) - 12.0) / 5.0, 0, 1)) * rng.uniform(0.4, 1.0)
    u_t = _unit(u_main + np.array([0.15, -0.1, 0.9]))
    t_amp = 0.32 * (0.6 + 0.4 * lv_volt / 2.3) * (1.0 - 1.5 * strain)
    if exam.lbbb:
        t_amp = -0.25
    st_amp = -0.12 * strain  # ST depression along the main QRS axis

    # --- P wave. RA first (inferior/anterior), LA later (leftward/posterior). LA enlargement:
    # P > 120 ms, notched ("P mitrale"), deep terminal negative P in V1 (Morris index; Hazen 1991).
    la_scale = exam.la_volume / 50.0
    p_dur = float(np.clip(95 + 0.45 * (exam.la_volume - 50) + rng.normal(0, 6), 75, 165)) / 1000.0
    pr = float(np.clip(0.155 + 0.0006 * (exam.age - 60) + p_dur - 0.1 + rng.normal(0, 0.015), 0.11, 0.26))
    u_ra = _unit(np.array([0.35, 0.85, 0.45]))
    u_la = _unit(np.array([0.75, 0.35, -0.7]))

    dip = np.zeros((3, n))
    rot = _rotation(rng, 12, 12)

    def add(center: np.ndarray, width: float, direction: np.ndarray, amp: float) -> None:
        """Add amp * direction * Gaussian(t - center) for each beat, only near the centre."""
        half = int(5 * width * fs) + 1
        for c in center:
            i0 = int(c * fs)
            lo, hi = max(0, i0 - half), min(n, i0 + half)
            if lo >= hi:
                continue
            g = np.exp(-0.5 * ((t[lo:hi] - c) / width) ** 2)
            dip[:, lo:hi] += (amp * direction)[:, None] * g[None, :]

    qrs_on = beats
    for off, wid, u, amp in qrs_parts:
        add(qrs_on + off * qrs, wid * qrs, u, amp)
    add(qrs_on + qrs + 0.07, 0.045, u_main, st_amp)
    add(qrs_on + qt - 0.085, 0.05, u_t, t_amp)
    add(qrs_on + qt - 0.04, 0.03, u_t, 0.35 * t_amp)  # steeper descending limb
    if exam.rhythm == "sinus":
        p_on = qrs_on - pr
        add(p_on + 0.32 * p_dur, 0.16 * p_dur, u_ra, 0.15)
        add(p_on + 0.68 * p_dur, 0.16 * p_dur, u_la, 0.09 * la_scale ** 0.8)
        p_ms = p_dur * 1000
    else:
        # Fibrillatory waves: 4-9 Hz, low amplitude, best seen in V1/II.
        f = rng.uniform(4.5, 8.5)
        phase = np.cumsum(2 * np.pi * f * (1 + 0.15 * rng.standard_normal(n)) / fs)
        amp_f = rng.uniform(0.02, 0.07) * (1 + 0.3 * rng.standard_normal(n).cumsum() / np.sqrt(n))
        dip += np.outer(u_ra, amp_f * np.sin(phase))
        p_ms = 0.0

    leads = lead_matrix() @ (rot @ dip)
    leads *= habitus
    leads[6:] *= rng.lognormal(0, 0.08, size=(6, 1))  # chest electrode placement / contact
    leads += _noise(rng, n, fs)
    # Electrocardiographs record I and II and compute the other limb leads (Einthoven/Goldberger),
    # so noise in III, aVR, aVL, aVF is that of I and II.
    lead_i, lead_ii = leads[0], leads[1]
    leads[2], leads[3] = lead_ii - lead_i, -(lead_i + lead_ii) / 2
    leads[4], leads[5] = lead_i - lead_ii / 2, lead_ii - lead_i / 2

    truth = ECGTruth(
        heart_rate=hr, qrs_ms=qrs * 1000, p_ms=p_ms, pr_ms=pr * 1000, qt_ms=qt * 1000,
        frontal_axis_deg=axis, lv_voltage_mv=lv_volt * habitus, strain=strain, rhythm=exam.rhythm,
        beats=tuple(float(b) for b in beats if 0 <= b < duration_s),
    )
    return leads, truth


def _noise(rng: np.random.Generator, n: int, fs: float) -> np.ndarray:
    """Nuisances with no morphology: baseline wander, mains hum, EMG bursts, lead noise (mV)."""
    t = np.arange(n) / fs
    out = np.zeros((12, n))
    # Baseline wander: respiration (0.15-0.4 Hz) and electrode drift (< 0.1 Hz).
    for f_lo, f_hi, amp in ((0.15, 0.4, 0.12), (0.02, 0.1, 0.15)):
        f = rng.uniform(f_lo, f_hi)
        a = rng.uniform(0, amp) * rng.uniform(0.3, 1.0, size=(12, 1))
        out += a * np.sin(2 * np.pi * f * t[None, :] + rng.uniform(0, 2 * np.pi, size=(12, 1)))
    # Mains hum (50 Hz in Europe, 60 Hz in the Americas) in about half the records.
    if rng.random() < 0.5:
        mains = 50.0 if rng.random() < 0.5 else 60.0
        a = rng.uniform(0.005, 0.04) * rng.uniform(0.2, 1.0, size=(12, 1))
        out += a * np.sin(2 * np.pi * mains * t[None, :] + rng.uniform(0, 2 * np.pi, size=(12, 1)))
    # Muscle noise: high-passed noise in bursts, stronger in limb leads.
    if rng.random() < 0.4:
        sos = sps.butter(2, min(20.0 / (fs / 2), 0.9), btype="highpass", output="sos")
        emg = sps.sosfilt(sos, rng.standard_normal((12, n)), axis=1)
        env = np.clip(np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 6.3)), 0, 1)
        gain = rng.uniform(0.01, 0.04) * np.r_[np.full(6, 1.0), np.full(6, 0.5)][:, None]
        out += gain * emg * env[None, :]
    out += rng.uniform(0.004, 0.015) * rng.standard_normal((12, n))
    return out
