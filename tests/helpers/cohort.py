"""Tiny paired cohort for the trainer tests: WFDB ECGs + multi-frame US DICOM studies + pairs.csv.

Each patient has a latent value that sets both the ECG's QRS amplitude/rate and the size of a
dark disc in the echo frames, so a model can learn to pair them. Kept tiny (16x16 frames, few
videos) so the tests stay fast on two CPU cores.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from e2r.ecg.leads import CANONICAL_LEADS

from helpers.dicom import write_us_dicom

LEADS = list(CANONICAL_LEADS)


def write_ecg(path_noext: Path, latent: float, rng: np.random.Generator, fs: int = 100) -> None:
    """A 10 s 12-lead WFDB record whose beat amplitude and rate follow `latent` (in [0, 1])."""
    import wfdb

    t = np.arange(10 * fs) / fs
    hr = 55 + 50 * latent
    phase = (t * hr / 60.0) % 1.0
    beat = np.exp(-((phase - 0.3) ** 2) / 0.0008) * (0.5 + 1.5 * latent)
    beat += 0.2 * np.exp(-((phase - 0.6) ** 2) / 0.005)
    gains = np.linspace(0.5, 1.5, 12) * np.where(np.arange(12) == 3, -1, 1)
    sig = beat[:, None] * gains[None, :] + 0.02 * rng.standard_normal((len(t), 12))
    path_noext.parent.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(path_noext.name, fs=fs, units=["mV"] * 12, sig_name=LEADS, p_signal=sig,
                fmt=["16"] * 12, write_dir=str(path_noext.parent))


def write_video(path: Path, study_uid: str, patient_id: str, latent: float, view: str,
                rng: np.random.Generator, frames: int = 8, size: int = 16) -> None:
    """A grey multi-frame ultrasound DICOM with a pulsing dark disc of radius set by `latent`."""
    yy, xx = np.mgrid[:size, :size] - size / 2
    r = np.hypot(yy, xx)
    imgs = []
    for f in range(frames):
        radius = size * (0.15 + 0.25 * latent) * (1 + 0.15 * np.sin(2 * np.pi * f / frames))
        img = np.where(r < radius, 30, 180) + rng.integers(0, 40, (size, size))
        imgs.append(np.clip(img, 0, 255).astype(np.uint8))
    write_us_dicom(path, np.stack(imgs), frame_time_ms=62.5, series_description=view, study_uid=study_uid,
                   patient_id=patient_id)


def write_tiny_cohort(root: Path, patients: int = 24, seed: int = 0, val_every: int = 4,
                      max_views: int = 3, phenotypes: bool = True) -> Path:
    """Write <root>/ecg, <root>/echo, <root>/pairs.csv and (unless phenotypes=False)
    <root>/phenotypes.csv, whose numbers follow the same latent; every `val_every`-th patient is val."""
    from e2r.phenotypes import write_phenotypes

    rng = np.random.default_rng(seed)
    rows, pheno = [], []
    for i in range(patients):
        pid, uid = f"P{i:04d}", f"1.2.826.0.1.3680043.10.999.{seed}.{i + 1}"
        latent = float(rng.uniform())
        write_ecg(root / "ecg" / f"p{i:04d}", latent, rng)
        for v in range(int(rng.integers(1, max_views + 1))):
            write_video(root / "echo" / pid / f"s{i}" / f"v{v}.dcm", uid, pid, latent,
                        ("A4C", "A2C", "PLAX")[v % 3], rng)
        rows.append({"ecg_path": f"ecg/p{i:04d}", "study_uid": uid, "patient_id": pid, "days": 0,
                     "split": "val" if i % val_every == val_every - 1 else "train"})
        lvef, lvedv = 25 + 45 * latent, 80 + 100 * latent
        pheno.append({"study_uid": uid, "patient_id": pid, "study_date": "20240101", "lvef": round(lvef, 1),
                      "lvedv": round(lvedv, 1), "lvesv": round(lvedv * (1 - lvef / 100), 1),
                      "ivsd": round(8 + 8 * latent, 1), "lvpwd": round(8 + 7 * latent, 1),
                      "la_volume": round(40 + 20 * latent, 1), "rv_diameter": round(30 + 10 * latent, 1)})
    if phenotypes:
        write_phenotypes(root / "phenotypes.csv", pheno)
    with open(root / "pairs.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["ecg_path", "study_uid", "patient_id", "days", "split"])
        w.writeheader()
        w.writerows(rows)
    return root / "pairs.csv"
