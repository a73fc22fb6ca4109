"""The phantom cohort in MIMIC-IV-ECG 1.0 + MIMIC-IV-ECHO 1.0's own layouts (synthetic data).

`write_mimic_cohort(out, patients, seed)` writes the e2r phantom (e2r.phantom.cohort) and lays it
out as the two datasets are published, with their CSVs and quirks:

```
OUT/mimic-iv-ecg/record_list.csv, machine_measurements.csv
OUT/mimic-iv-ecg/files/p1000/p10000001/s40000000/40000000.{hea,dat}   500 Hz, 5,000 samples,
                                            format 16, gain 200/mV, leads ... aVR, aVF, aVL, V1 ...
OUT/mimic-iv-echo/echo-record-list.csv, echo-study-list.csv, structured_measurement.csv.gz
OUT/mimic-iv-echo/files/p10/p10000001/s50000000/50000000_0001.dcm
OUT/phantom_truth/phenotypes.csv, pairs.csv   (the generator's truth, for tests; not an input)
```

Quirks written on purpose: ECG-echo offsets within +/-10 days, plus a farther second ECG for
some patients (the pairing must pick the nearest) and ECGs far outside any window; sentinels in
machine_measurements (29999 for a missing P wave in AF, 32767 axes, 65535 RR); in the long
measurements, `TTE`/`tte` case, non-TTE rows, unrelated measurements, `55%`, `<` bounds, ranges,
LVEF as `lvef` + `lvef_upper`, walls in cm with some in mm under a `cm` unit, unparseable
results, and a second note row for some studies. lvedd is written so that the ASE cube formula
gives back the phantom's LV mass.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import gzip
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from e2r.errors import ConfigError

ECG_FS = 500.0
ECG_SAMPLES = 5000
ECG_GAIN = 200.0
RECORD_LIST_HEADER = ("subject_id", "study_id", "file_name", "ecg_time", "path")
MACHINE_HEADER = ("subject_id", "study_id", "cart_id", "ecg_time", *(f"report_{i}" for i in range(18)),
                  "bandwidth", "filtering", "rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end",
                  "p_axis", "qrs_axis", "t_axis")
ECHO_RECORD_HEADER = ("subject_id", "study_id", "acquisition_datetime", "dicom_filepath")
ECHO_STUDY_HEADER = ("subject_id", "study_id", "study_datetime", "measurement_id", "measurement_datetime",
                     "note_id", "note_seq", "note_charttime")
MEASUREMENT_HEADER = ("subject_id", "measurement_id", "measurement_datetime", "test_type", "measurement",
                      "measurement_description", "result", "unit")


def lvedd_for_mass(lv_mass: float, ivsd_mm: float, lvpwd_mm: float) -> float:
    """LV end-diastolic diameter (cm) that makes the ASE cube formula give `lv_mass` (bisection)."""
    s, p = ivsd_mm / 10.0, lvpwd_mm / 10.0
    lo, hi = 1.0, 12.0
    for _ in range(60):
        d = (lo + hi) / 2
        if 0.8 * 1.04 * ((d + s + p) ** 3 - d ** 3) + 0.6 < lv_mass:
            lo = d
        else:
            hi = d
    return (lo + hi) / 2


def _fmt(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _csv_bytes(header: tuple[str, ...], rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def write_mimic_cohort(out_dir: str | Path, patients: int, seed: int, **options: Any) -> Any:
    """Write the phantom in the MIMIC-IV-ECG + MIMIC-IV-ECHO layouts (module doc); options as for
    e2r.phantom.cohort.write_cohort. Returns write_cohort's CohortSummary."""
    from scipy.signal import resample_poly

    from e2r.ecg import read_ecg
    from e2r.phantom.cohort import write_cohort
    from e2r.phantom.writers import write_ecg_wfdb

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: output folder is not empty; choose a new folder or empty it")
    build = out / ".phantom_build"
    summary = write_cohort(build, patients, seed, **options)
    rng = np.random.default_rng([seed, 0x313C])
    ecg_root, echo_root, truth = out / "mimic-iv-ecg", out / "mimic-iv-echo", out / "phantom_truth"
    echo_root.mkdir(parents=True)
    truth.mkdir()
    (build / "echo").rename(echo_root / "files")
    for name in ("phenotypes.csv", "pairs.csv"):
        shutil.copyfile(build / name, truth / name)

    with (build / "phenotypes.csv").open(newline="") as fh:
        phen = list(csv.DictReader(fh))
    with (build / "pairs.csv").open(newline="") as fh:
        pairs = {r["study_uid"]: r for r in csv.DictReader(fh)}

    record_rows, machine_rows, echo_records, study_rows, meas_rows = [], [], [], [], []
    ecg_no = 0
    for k, row in enumerate(phen):
        pid, uid = row["patient_id"], row["study_uid"]
        # The study folder of this UID: phantom study numbers follow the patient's exams in order.
        folders = sorted((echo_root / "files" / f"p{pid[:2]}" / f"p{pid}").iterdir())
        exam_index = [r["study_uid"] for r in phen if r["patient_id"] == pid].index(uid)
        study_dir = folders[exam_index]
        study_id = study_dir.name[1:]
        day = datetime.datetime.strptime(row["study_date"], "%Y%m%d")
        echo_time = day + datetime.timedelta(hours=8, minutes=int(rng.integers(0, 600)))
        for i, dcm in enumerate(sorted(study_dir.glob("*.dcm"))):
            echo_records.append({"subject_id": pid, "study_id": study_id,
                                 "acquisition_datetime": _fmt(echo_time + datetime.timedelta(minutes=2 * i)),
                                 "dicom_filepath": dcm.relative_to(echo_root).as_posix()})
        mid = f"{70000000 + k}"
        study_rows.append({"subject_id": pid, "study_id": study_id, "study_datetime": _fmt(echo_time),
                           "measurement_id": mid, "measurement_datetime": _fmt(echo_time),
                           "note_id": f"{pid}-EC-{k}", "note_seq": 1, "note_charttime": _fmt(echo_time)})
        if rng.random() < 0.2:  # an addendum note: a second row of the same study
            study_rows.append({**study_rows[-1], "note_id": f"{pid}-EC-{k}b", "note_seq": 2})
        meas_rows += _measurement_rows(rng, pid, mid, echo_time, row)

        pair = pairs.get(uid, {})
        if pair.get("ecg_path"):
            rec = read_ecg(build / pair["ecg_path"])
            sig = rec.signal.astype(np.float64)
            if rec.fs != ECG_FS:
                sig = resample_poly(sig, int(ECG_FS), int(rec.fs), axis=1)
            sig = np.pad(sig, ((0, 0), (0, max(0, ECG_SAMPLES - sig.shape[1]))))[:, :ECG_SAMPLES]
            offset = float(pair["days"]) / 3.0 + rng.uniform(-0.2, 0.2)  # +-10 days
            extra = [offset]
            if rng.random() < 0.3:  # a second, farther ECG on the other side of the echo
                extra.append(-np.sign(offset or 1.0) * (abs(offset) + rng.uniform(1.0, 4.0)))
            if rng.random() < 0.3:  # an ECG far outside any window
                extra.append(float(rng.choice([-1, 1]) * rng.uniform(200, 400)))
            for off in extra:
                ecg_no += 1
                sid = f"{40000000 + ecg_no}"
                rel = Path("files") / f"p{pid[:4]}" / f"p{pid}" / f"s{sid}"
                when = echo_time + datetime.timedelta(days=off)
                write_ecg_wfdb(ecg_root / rel, sid, sig, ECG_FS, "mimic", base_date=when.strftime("%Y%m%d"),
                               gain=ECG_GAIN)
                record_rows.append({"subject_id": pid, "study_id": sid, "file_name": sid, "ecg_time": _fmt(when),
                                    "path": (rel / sid).as_posix()})
                machine_rows.append(_machine_row(rng, pid, sid, when, row))

    ecg_root.mkdir(exist_ok=True)
    (ecg_root / "record_list.csv").write_bytes(_csv_bytes(RECORD_LIST_HEADER, record_rows))
    (ecg_root / "machine_measurements.csv").write_bytes(_csv_bytes(MACHINE_HEADER, machine_rows))
    (echo_root / "echo-record-list.csv").write_bytes(_csv_bytes(ECHO_RECORD_HEADER, echo_records))
    (echo_root / "echo-study-list.csv").write_bytes(_csv_bytes(ECHO_STUDY_HEADER, study_rows))
    with gzip.GzipFile(echo_root / "structured_measurement.csv.gz", "wb", mtime=0) as gz:
        gz.write(_csv_bytes(MEASUREMENT_HEADER, meas_rows))
    manifest = json.loads((build / "manifest.json").read_text())
    manifest["layout"] = "mimic"
    manifest["files"] = {"ecg": "mimic-iv-ecg/ (record_list.csv, machine_measurements.csv, files/pNNNN/pSUBJ/sSTUDY/)",
                         "echo": "mimic-iv-echo/ (echo-record-list.csv, echo-study-list.csv, "
                                 "structured_measurement.csv.gz, files/pNN/pSUBJ/sSTUDY/)",
                         "truth": "phantom_truth/ (the generator's phenotypes.csv and pairs.csv; not an input)"}
    manifest["counts"]["mimic_ecgs"] = len(record_rows)
    manifest["counts"]["measurement_rows"] = len(meas_rows)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(build)
    return dataclasses.replace(summary, out_dir=str(out))


def _machine_row(rng: np.random.Generator, pid: str, sid: str, when: datetime.datetime, phen: dict[str, str]) -> dict:
    af = phen.get("rhythm") == "af"
    hr = float(phen.get("heart_rate") or 70)
    rr = 65535 if rng.random() < 0.05 else int(round(60000 / hr))
    reports = (["Atrial fibrillation", "Abnormal ECG"] if af else
               ["Sinus rhythm", "Normal ECG" if rng.random() < 0.6 else "Borderline ECG"])
    qrs_on = int(rng.integers(200, 240))
    row = {"subject_id": pid, "study_id": sid, "cart_id": int(rng.integers(6000, 6999)), "ecg_time": _fmt(when),
           "bandwidth": "0.005-150 Hz", "filtering": "60 Hz notch Baseline filter", "rr_interval": rr,
           "p_onset": 29999 if af else qrs_on - 160, "p_end": 29999 if af else qrs_on - 60,
           "qrs_onset": qrs_on, "qrs_end": qrs_on + int(rng.integers(80, 120)), "t_end": qrs_on + 400,
           "p_axis": 32767 if af else int(rng.integers(0, 80)), "qrs_axis": int(rng.integers(-30, 90)),
           "t_axis": 32767 if rng.random() < 0.05 else int(rng.integers(0, 90))}
    for i in range(18):
        row[f"report_{i}"] = reports[i] if i < len(reports) else ""
    return row


def _measurement_rows(rng: np.random.Generator, pid: str, mid: str, when: datetime.datetime,
                      phen: dict[str, str]) -> list[dict]:
    """Long-format rows of one study, with MIMIC's string and unit quirks."""
    t = _fmt(when)

    def r(name: str, result: str, unit: str, test: str = "") -> dict:
        test = test or ("TTE" if rng.random() < 0.5 else "tte")
        return {"subject_id": pid, "measurement_id": mid, "measurement_datetime": t, "test_type": test,
                "measurement": name, "measurement_description": name.replace("_", " ").title(),
                "result": result, "unit": unit}

    lvef, edv, esv = float(phen["lvef"]), float(phen["lvedv"]), float(phen["lvesv"])
    ivs, pw, mass = float(phen["ivsd"]), float(phen["lvpwd"]), float(phen["lv_mass"])
    rows = [r("ao_root", f"{rng.uniform(2.8, 3.6):.1f}", "cm")]  # not used
    u = rng.random()
    if u < 0.55:
        rows.append(r("biplane_lvef", f"{lvef:.0f}%" if rng.random() < 0.5 else f"{lvef:.0f}", "%"))
        if rng.random() < 0.3:  # a visual estimate the biplane value must win over
            rows.append(r("lvef", f"{lvef + 10:.0f}", "%"))
    elif u < 0.65:
        rows.append(r("lvef_3d", f"{lvef:.1f}", "%"))
    elif u < 0.85:  # a visual range as two fields
        rows += [r("lvef", f"{lvef - 2.5:.1f}", "%"), r("lvef_upper", f"{lvef + 2.5:.1f}", "%")]
    elif u < 0.95:
        rows.append(r("lvef", f"{lvef - 2.5:.1f}-{lvef + 2.5:.1f}", "%"))  # a range string
    else:
        rows.append(r("lvef", f">{lvef:.0f}" if lvef > 50 else f"<{lvef:.0f}", "%"))
    rows += [r("biplane_lvedv", f"{edv:.0f}", "ml"), r("biplane_lvesv", f"{esv:.0f}", "ml")]
    mm_walls = rng.random() < 0.15  # clearly mm values under a "cm" unit
    rows.append(r("septal_thickness", f"{ivs:.1f}" if mm_walls else f"{ivs / 10:.2f}", "cm"))
    rows.append(r("inf_lat_thickness", f"{pw:.1f}" if mm_walls else f"{pw / 10:.2f}", "cm"))
    d = lvedd_for_mass(mass, ivs, pw)
    rows.append(r("lvedd", f"{d * 10:.1f}" if rng.random() < 0.1 else f"{d:.2f}", "cm"))
    rows.append(r("la_vol", f"{float(phen['la_volume']):.0f}", "ml"))
    rows.append(r("resting_hr", f"{float(phen['heart_rate']):.0f}", "bpm"))
    if rng.random() < 0.1:
        rows.append(r("la_vol", "N/A", "ml"))  # unparseable: counted, first value kept
    if rng.random() < 0.2:
        rows.append(r("biplane_lvef", "20", "%", test="TEE"))  # not a TTE: skipped
    return rows
