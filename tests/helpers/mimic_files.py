"""Tiny MIMIC-IV-ECG / MIMIC-IV-ECHO folders written by the tests in the datasets' exact layouts
(no real data): WFDB headers with aVF before aVL at gain 200/mV, format 16; DICOMs under
files/pNN/pSUBJ/sSTUDY/; the CSVs with their column names and quirks."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from helpers.dicom import write_us_dicom

MACHINE_COLUMNS = ["subject_id", "study_id", "cart_id", "ecg_time", *(f"report_{i}" for i in range(18)),
                   "bandwidth", "filtering", "rr_interval", "p_onset", "p_end", "qrs_onset", "qrs_end", "t_end",
                   "p_axis", "qrs_axis", "t_axis"]
MEAS_COLUMNS = ["subject_id", "measurement_id", "measurement_datetime", "test_type", "measurement",
                "measurement_description", "result", "unit"]


def write_csv(path: Path, columns: Sequence[str], rows: list[dict], gz: bool = False) -> Path:
    """A CSV (gzip when gz) with exactly these columns."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = buf.getvalue().encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_mimic_ecg(root: Path, ecgs: list[tuple[str, str, str]], reports: Optional[dict[str, dict]] = None,
                    extra_rows: Sequence[dict] = ()) -> Path:
    """MIMIC-IV-ECG root with one 500 Hz record per (subject_id, study_id, ecg_time)."""
    from e2r.phantom.writers import write_ecg_wfdb

    rows = []
    rng = np.random.default_rng(0)
    for subject, study, when in ecgs:
        rel = Path("files") / f"p{subject[:4]}" / f"p{subject}" / f"s{study}"
        t = np.arange(5000) / 500.0
        sig = 0.5 * np.sin(2 * np.pi * 1.2 * t)[None, :] * np.linspace(0.5, 1.5, 12)[:, None]
        write_ecg_wfdb(root / rel, study, sig + 0.01 * rng.standard_normal(sig.shape), 500.0, "mimic", gain=200.0)
        rows.append({"subject_id": subject, "study_id": study, "file_name": study, "ecg_time": when,
                     "path": (rel / study).as_posix()})
    write_csv(root / "record_list.csv", ["subject_id", "study_id", "file_name", "ecg_time", "path"],
              rows + list(extra_rows))
    mrows = []
    for subject, study, when in ecgs:
        r = {"subject_id": subject, "study_id": study, "cart_id": 6001, "ecg_time": when, "rr_interval": 800,
             "p_onset": 40, "p_end": 140, "qrs_onset": 200, "qrs_end": 290, "t_end": 600, "p_axis": 50,
             "qrs_axis": 20, "t_axis": 40, "report_0": "Sinus rhythm", "report_1": "Normal ECG"}
        r.update((reports or {}).get(study, {}))
        mrows.append(r)
    write_csv(root / "machine_measurements.csv", MACHINE_COLUMNS, mrows)
    return root


def write_mimic_echo(root: Path, studies: list[dict], measurements: list[dict], hyphen: bool = False,
                     gz: bool = True) -> Path:
    """MIMIC-IV-ECHO root. Each study dict: subject_id, study_id, study_datetime, measurement_id,
    uids (one StudyInstanceUID per DICOM file to write; may differ within the folder)."""
    records, study_rows = [], []
    for s in studies:
        sub, sid = s["subject_id"], s["study_id"]
        folder = root / "files" / f"p{sub[:2]}" / f"p{sub}" / f"s{sid}"
        for k, uid in enumerate(s.get("uids", ()), start=1):
            frames = np.full((4, 16, 16), 60 + 10 * k, dtype=np.uint8)
            write_us_dicom(folder / f"{sid}_{k:04d}.dcm", frames, study_uid=uid, patient_id=sub,
                           sop_uid=f"1.2.826.0.1.3680043.10.777.{sid}.{k}")
            records.append({"subject_id": sub, "study_id": sid, "acquisition_datetime": s["study_datetime"],
                            "dicom_filepath": (folder / f"{sid}_{k:04d}.dcm").relative_to(root).as_posix()})
        study_rows.append({"subject_id": sub, "study_id": sid, "study_datetime": s["study_datetime"],
                           "measurement_id": s.get("measurement_id", ""), "measurement_datetime": s["study_datetime"],
                           "note_id": f"n{sid}", "note_seq": 1, "note_charttime": s["study_datetime"]})
    write_csv(root / "echo-record-list.csv", ["subject_id", "study_id", "acquisition_datetime", "dicom_filepath"],
              records)
    write_csv(root / "echo-study-list.csv", ["subject_id", "study_id", "study_datetime", "measurement_id",
                                             "measurement_datetime", "note_id", "note_seq", "note_charttime"],
              study_rows)
    name = "structured-measurement.csv" if hyphen else "structured_measurement.csv"
    write_csv(root / (name + (".gz" if gz else "")), MEAS_COLUMNS, measurements, gz=gz)
    return root


def meas(mid: str, name: str, result: str, unit: str = "", test: str = "TTE", subject: str = "10000001") -> dict:
    """One long-format structured_measurement row."""
    return {"subject_id": subject, "measurement_id": mid, "measurement_datetime": "2180-01-01 10:00:00",
            "test_type": test, "measurement": name, "measurement_description": name, "result": result, "unit": unit}
