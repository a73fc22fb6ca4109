"""Write a whole phantom cohort: echo DICOM studies, WFDB ECGs, phenotypes.csv, pairs.csv,
manifest.json. Deterministic: per-patient random streams come from SeedSequence(seed).spawn,
UIDs from the seed, nothing from the clock; rows are sorted before they are written.
"""

from __future__ import annotations

import datetime
import json
import logging
import multiprocessing
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from e2r.errors import ConfigError
from e2r.phantom import latent, latent_v2
from e2r.phantom.ecg_synth import synth_ecg
from e2r.phantom.echo_synth import VIEWS, render_view
from e2r.phantom.writers import (
    LEAD_LAYOUTS,
    EchoSeriesMeta,
    write_ecg_wfdb,
    write_echo_dicom,
)

# Generator versions: 1 = the original phantom (the default; its cohorts stay byte-identical),
# 2 = regional wall motion (latent_v2) and archive-like studies (issue 21).
GENERATOR_VERSIONS = {1: "1.0.0", 2: "2.0.0"}
GENERATOR_VERSION = GENERATOR_VERSIONS[1]
_EPOCH = datetime.date(2180, 1, 1)  # MIMIC-style shifted dates: obviously not real calendar dates
_PROTOCOL_ORDER = ("PLAX", "PSAX", "A4C", "A2C")  # standard TTE acquisition order
_VIEW_WEIGHTS = np.array([0.30, 0.20, 0.32, 0.18])  # PLAX, PSAX, A4C, A2C
_FS_CHOICES, _FS_P = (250.0, 500.0, 1000.0), (0.3, 0.5, 0.2)
_LAYOUTS = tuple(LEAD_LAYOUTS)
_LAYOUT_P = (0.35, 0.35, 0.1, 0.1, 0.1)

# Version 2 study composition, like an archive's. A real TTE holds 50-100+ clips, and for a given
# task about 81 % of an archive's clips come from views uninformative for it (issue 21); the
# phantom renders only the four LV views, so it keeps the parts that matter for them at a size
# that keeps `e2r synth` cheap (~4 clips per study):
# - views go missing: each protocol view is recorded with this probability (phantom's choice:
#   PLAX and A4C nearly always, PSAX and A2C skipped more often in limited studies);
# - a technically difficult window (obesity, lung disease) in 16.6 % of 171,509 consecutive TTEs
#   (two or more non-visualised segments; IN-USE study, J Am Soc Echocardiogr 2020);
# - each clip is good, off-axis or poor (render_view's `quality`), poor and off-axis far more
#   often in a difficult window; the sonographer re-records a view after a bad clip half the
#   time, and records an extra clip of a good one now and then (repeats of a view).
_P_VIEW_RECORDED = {"PLAX": 0.95, "PSAX": 0.75, "A4C": 0.95, "A2C": 0.80}
_P_DIFFICULT_WINDOW = 0.17
_QUALITIES = ("good", "off_axis", "poor")
_QUALITY_P = {False: (0.82, 0.12, 0.06), True: (0.35, 0.25, 0.40)}  # by difficult window
_P_RERECORD_BAD, _P_EXTRA_CLIP, _MAX_CLIPS_PER_VIEW = 0.5, 0.12, 3

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CohortOptions:
    """How the cohort is written (all part of the manifest)."""

    compressed: bool = True        # JPEG baseline per frame; False = uncompressed pixel data
    size: int = 128                # video rows = columns
    frames: int = 32               # frames per cine loop
    workers: int = 2               # processes
    paired_fraction: float = 0.82  # echo studies that have an ECG; the rest are archive-only
    repeat_fraction: float = 0.30  # patients with a second echo exam
    split: tuple[float, float, float] = (0.70, 0.15, 0.15)  # train/val/test, by patient
    progress: bool = False         # tqdm bar
    version: int = 1               # generator version (GENERATOR_VERSIONS); 1 stays the default

    def validate(self) -> None:
        """Raise ConfigError naming the flag when a value is out of range."""
        if not 32 <= self.size <= 512:
            raise ConfigError(f"--size {self.size}: must be between 32 and 512 pixels")
        if not 4 <= self.frames <= 256:
            raise ConfigError(f"--frames {self.frames}: must be between 4 and 256")
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers}: must be at least 1")
        if not 0 < self.paired_fraction <= 1 or not 0 <= self.repeat_fraction <= 1:
            raise ConfigError("paired_fraction must be in (0, 1] and repeat_fraction in [0, 1]")
        if abs(sum(self.split) - 1) > 1e-6 or min(self.split) < 0:
            raise ConfigError(f"split {self.split}: three non-negative fractions summing to 1")
        if self.version not in GENERATOR_VERSIONS:
            raise ConfigError(f"--version {self.version}: must be one of {', '.join(map(str, GENERATOR_VERSIONS))}")


@dataclass(frozen=True)
class CohortSummary:
    """What was written, and how fast."""

    out_dir: str
    patients: int
    studies: int
    paired_studies: int
    unpaired_studies: int
    videos: int
    ecgs: int
    views: dict[str, int]
    splits: dict[str, int]     # patients per split
    dicom_bytes_mean: float
    dicom_bytes_max: int
    seconds: float
    patients_per_s: float
    options: dict[str, Any] = field(default_factory=dict)
    generator_version: str = GENERATOR_VERSION

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class _PatientJob:
    index: int
    seed: int
    seed_seq: np.random.SeedSequence
    out_dir: str
    options: CohortOptions


@dataclass(frozen=True)
class _PatientResult:
    index: int
    phenotype_rows: list[dict[str, Any]]
    pair_rows: list[dict[str, Any]]
    dicom_sizes: list[int]
    views: list[str]
    qualities: list[str]


def patient_id_for(index: int) -> str:
    """MIMIC-style 8-digit subject ID of the index-th patient."""
    return f"{10000001 + index}"


def study_uid_for(seed: int, patient_id: str, study_no: int) -> str:
    """The StudyInstanceUID of a patient's study in the cohort written with `seed` (a pure function
    of the three, so a script can name a study without reading the archive)."""
    return _uid(seed, patient_id, study_no, "study")


def _uid(seed: int, *parts: object) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["e2r-phantom", str(seed), *map(str, parts)])


def _choose_views(rng: np.random.Generator) -> list[str]:
    """A random subset of the views in protocol order; sometimes one view, sometimes a repeat."""
    k = int(rng.choice([1, 2, 3, 4], p=[0.12, 0.23, 0.35, 0.30]))
    picked = set(rng.choice(_PROTOCOL_ORDER, size=k, replace=False, p=_VIEW_WEIGHTS).tolist())
    views = [v for v in _PROTOCOL_ORDER if v in picked]
    if rng.random() < 0.15:  # the sonographer re-records a view
        views.insert(int(rng.integers(0, len(views))), str(rng.choice(views)))
    return views


def _compose_study(rng: np.random.Generator) -> list[tuple[str, str]]:
    """Version 2: the (view, quality) of each clip of one study, in protocol order (constants
    above); at least one clip."""
    difficult = bool(rng.random() < _P_DIFFICULT_WINDOW)
    p_quality = _QUALITY_P[difficult]
    clips = []
    for view in _PROTOCOL_ORDER:
        if rng.random() >= _P_VIEW_RECORDED[view]:
            continue
        for n in range(1, _MAX_CLIPS_PER_VIEW + 1):
            quality = _QUALITIES[int(rng.choice(len(_QUALITIES), p=p_quality))]
            clips.append((view, quality))
            again = _P_RERECORD_BAD if quality != "good" else _P_EXTRA_CLIP
            if rng.random() >= again:
                break
    if not clips:  # a study holds at least one clip: the apical four-chamber view
        clips.append(("A4C", _QUALITIES[int(rng.choice(len(_QUALITIES), p=p_quality))]))
    return clips


def _render(exam: latent.Exam, view: str, quality: str, rng: np.random.Generator, opts: CohortOptions) -> Any:
    """One clip; version 1 calls render_view exactly as before (its cohorts stay byte-identical)."""
    if opts.version == 1:
        return render_view(exam, view, rng, size=opts.size, n_frames=opts.frames)
    return render_view(exam, view, rng, size=opts.size, n_frames=opts.frames, quality=quality)


def _make_patient(job: _PatientJob) -> _PatientResult:
    rng = np.random.default_rng(job.seed_seq)
    opts, out = job.options, Path(job.out_dir)
    pid = patient_id_for(job.index)
    heart = latent if opts.version == 1 else latent_v2
    base = heart.draw_baseline_exam(rng)
    first_day = int(rng.integers(0, 3650))
    exams = [(first_day, base)]
    if rng.random() < opts.repeat_fraction:
        gap = int(rng.integers(60, 900))
        exams.append((first_day + gap, heart.draw_repeat_exam(rng, base, gap)))

    phen_rows, pair_rows, sizes, views_out, qualities = [], [], [], [], []
    for e, (day, exam) in enumerate(exams):
        study_no = 50000000 + job.index * 10 + e
        study_uid = study_uid_for(job.seed, pid, study_no)
        date = (_EPOCH + datetime.timedelta(days=day)).strftime("%Y%m%d")
        study_dir = out / "echo" / f"p{pid[:2]}" / f"p{pid}" / f"s{study_no}"
        clips = [(v, "good") for v in _choose_views(rng)] if opts.version == 1 else _compose_study(rng)
        for k, (view, quality) in enumerate(clips, start=1):
            video = _render(exam, view, quality, rng, opts)
            meta = EchoSeriesMeta(
                patient_id=pid, patient_sex=exam.sex, patient_age=int(exam.age),
                study_uid=study_uid, series_uid=_uid(job.seed, pid, study_no, k, "series"),
                sop_uid=_uid(job.seed, pid, study_no, k, "sop"), study_id=str(study_no),
                study_date=date, series_number=k, view=view, fps=video.fps,
                pixel_spacing_cm=video.pixel_spacing_cm, region=video.region, apex=video.apex,
            )
            sizes.append(write_echo_dicom(study_dir / f"{study_no}_{k:04d}.dcm", video.frames, meta,
                                          compressed=opts.compressed))
            views_out.append(view)
            qualities.append(quality)
        phen_rows.append({"study_uid": study_uid, "patient_id": pid, "study_date": date,
                          **latent.exam_phenotypes(exam)})

        ecg_path = ""
        days = ""
        if rng.random() < opts.paired_fraction:
            # ECGs are paired with echo studies of the same patient within 30 days (MIMIC-style).
            offset = int(rng.integers(-30, 31))
            fs = float(rng.choice(_FS_CHOICES, p=_FS_P))
            layout = str(rng.choice(_LAYOUTS, p=_LAYOUT_P))
            sig, _ = synth_ecg(exam, rng, fs)
            record = f"{40000000 + job.index * 10 + e}"
            rel_dir = Path("ecg") / f"p{pid[:4]}" / f"p{pid}"
            ecg_date = (_EPOCH + datetime.timedelta(days=day + offset)).strftime("%Y%m%d")
            write_ecg_wfdb(out / rel_dir, record, sig, fs, layout, base_date=ecg_date)
            ecg_path, days = (rel_dir / f"{record}.hea").as_posix(), offset
        pair_rows.append({"ecg_path": ecg_path, "study_uid": study_uid, "patient_id": pid, "days": days})
    return _PatientResult(job.index, phen_rows, pair_rows, sizes, views_out, qualities)


def _splits(n: int, seed: int, fractions: tuple[float, float, float]) -> list[str]:
    rng = np.random.default_rng([seed, 0x5EED])
    order = rng.permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    labels = np.empty(n, dtype=object)
    labels[order[:n_train]] = "train"
    labels[order[n_train:n_train + n_val]] = "val"
    labels[order[n_train + n_val:]] = "test"
    return labels.tolist()


def write_cohort(out_dir: str | Path, patients: int, seed: int, **options: Any) -> CohortSummary:
    """Write a phantom cohort of `patients` patients into out_dir (created; must be empty or new).

    options are CohortOptions fields (compressed, size, frames, workers, paired_fraction,
    repeat_fraction, split, progress, version).
    """
    from e2r.pairs import write_pairs
    from e2r.phenotypes import write_phenotypes

    try:
        opts = CohortOptions(**options)
    except TypeError as err:
        raise ConfigError(f"write_cohort: {err}; valid options: {list(CohortOptions.__dataclass_fields__)}") from None
    opts.validate()
    if patients < 1:
        raise ConfigError(f"--patients {patients}: must be at least 1")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: output folder is not empty; choose a new folder or empty it")
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    seqs = np.random.SeedSequence(seed).spawn(patients)
    jobs = [_PatientJob(i, seed, seqs[i], str(out), opts) for i in range(patients)]
    results = _run_jobs(jobs, opts)
    results.sort(key=lambda r: r.index)

    split = _splits(patients, seed, opts.split)
    phen_rows, pair_rows, sizes, views, qualities = [], [], [], [], []
    for r in results:
        phen_rows += r.phenotype_rows
        pair_rows += [{**row, "split": split[r.index]} for row in r.pair_rows]
        sizes += r.dicom_sizes
        views += r.views
        qualities += r.qualities
    write_phenotypes(out / "phenotypes.csv", phen_rows)
    write_pairs(out / "pairs.csv", pair_rows)

    paired = sum(1 for r in pair_rows if r["ecg_path"])
    counts = {
        "patients": patients, "studies": len(phen_rows), "paired_studies": paired,
        "unpaired_studies": len(phen_rows) - paired, "videos": len(sizes), "ecgs": paired,
        "views": {v: views.count(v) for v in VIEWS},
        "splits": {s: split.count(s) for s in ("train", "val", "test")},
    }
    if opts.version >= 2:
        counts["clip_quality"] = {q: qualities.count(q) for q in _QUALITIES}
    # The generator version is the manifest's "version" (a version 1 manifest reads as before).
    opt_dict = {k: v for k, v in asdict(opts).items() if k not in ("workers", "progress", "version")}
    version = GENERATOR_VERSIONS[opts.version]
    manifest = {
        "generator": "e2r.phantom", "version": version, "synthetic": True,
        "note": "Synthetic phantom cohort: no real patient data; numbers measured on it are synthetic.",
        "seed": seed, "options": opt_dict, "counts": counts,
        "files": {"echo": "echo/pNN/pPATIENT/sSTUDY/*.dcm", "ecg": "ecg/pNNNN/pPATIENT/RECORD.hea",
                  "phenotypes": "phenotypes.csv", "pairs": "pairs.csv"},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    seconds = time.perf_counter() - t0
    log.info("wrote %d patients, %d studies, %d videos to %s in %.1f s", patients, len(phen_rows), len(sizes), out, seconds)
    return CohortSummary(
        out_dir=str(out), patients=patients, studies=counts["studies"], paired_studies=paired,
        unpaired_studies=counts["unpaired_studies"], videos=len(sizes), ecgs=paired,
        views=counts["views"], splits=counts["splits"],
        dicom_bytes_mean=float(np.mean(sizes)) if sizes else 0.0,
        dicom_bytes_max=int(max(sizes)) if sizes else 0, seconds=seconds,
        patients_per_s=patients / seconds if seconds > 0 else float("inf"), options=opt_dict,
        generator_version=version,
    )


def _run_jobs(jobs: list[_PatientJob], opts: CohortOptions) -> list[_PatientResult]:
    from e2r.progress import progress_bar

    bar = progress_bar(total=len(jobs), desc="synth", unit="patient", disable=not opts.progress)
    results = []
    try:
        if opts.workers == 1 or len(jobs) < 4:
            for job in jobs:
                results.append(_make_patient(job))
                bar.update(1)
        else:
            # fork where the OS has it: workers then need no importable __main__ (stdin, notebooks).
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            with multiprocessing.get_context(method).Pool(opts.workers) as pool:
                for res in pool.imap_unordered(_make_patient, jobs, chunksize=4):
                    results.append(res)
                    bar.update(1)
    finally:
        bar.close()
    return results
