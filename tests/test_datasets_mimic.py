"""MIMIC-IV-ECG / MIMIC-IV-ECHO readers, result-string parsing, units, pairing rules, study keys,
and bounded-memory streaming of the long measurement file. Fixtures are written here in the
datasets' layouts (tests/helpers/mimic_files.py); no real data."""

from __future__ import annotations

import datetime
import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from e2r.datasets.columns import RowErrors, read_rows
from e2r.datasets.mimic_ecg import (
    MimicECG, read_machine_measurements, read_record_list, rhythm_from_report,
)
from e2r.datasets.mimic_echo import (
    ase_lv_mass, find_measurements, import_mimic_echo, length_mm, read_study_list, study_keys,
    read_record_list as read_echo_records,
)
from e2r.datasets.pairing import days_histogram, nearest_ecg, patient_split
from e2r.datasets.values import parse_result
from e2r.errors import DataError

from helpers.mimic_files import MEAS_COLUMNS, meas, write_csv, write_mimic_ecg, write_mimic_echo


@pytest.mark.parametrize("text, value, kind", [
    ("55", 55.0, "plain"), ("55%", 55.0, "percent"), ("55 %", 55.0, "percent"), ("<20", 20.0, "bound"),
    ("> 70", 70.0, "bound"), ("1.5-2.0", 1.75, "range"), ("55 - 60%", 57.5, "range"), ("50 to 60", 55.0, "range"),
    ("1,2", 1.2, "plain"), ("", None, "empty"), ("N/A", None, "unparsed"), ("normal", None, "unparsed"),
])
def test_result_strings(text, value, kind):
    got, got_kind = parse_result(text)
    assert got_kind == kind
    assert got == (pytest.approx(value) if value is not None else None)


def test_length_rule_and_ase_cube():
    assert length_mm("septal_thickness", 1.1) == pytest.approx(11.0)   # cm -> mm
    assert length_mm("septal_thickness", 11.0) == 11.0                 # clearly mm already
    assert length_mm("lvedd", 4.8) == pytest.approx(48.0)
    assert length_mm("lvedd", 48.0) == 48.0
    # 0.8 * 1.04 * ((4.8 + 1.0 + 1.0)^3 - 4.8^3) + 0.6 = 170.2 g
    assert ase_lv_mass(48.0, 10.0, 10.0) == pytest.approx(0.832 * (6.8 ** 3 - 4.8 ** 3) + 0.6)


def test_rhythm_from_report_text():
    assert rhythm_from_report(["Atrial fibrillation with rapid ventricular response", "Abnormal ECG"]) == "af"
    assert rhythm_from_report(["Sinus rhythm", "Normal ECG"]) == "sinus"
    assert rhythm_from_report(["Sinus rhythm", "with atrial flutter"]) == "af"
    assert rhythm_from_report(["Pacemaker rhythm", ""]) is None


def test_record_list_and_machine_sentinels(tmp_path):
    root = write_mimic_ecg(tmp_path / "ecg", [("10000001", "40000001", "2180-01-01 10:00:00")],
                           reports={"40000001": {"rr_interval": 65535, "qrs_axis": 32767, "qrs_onset": 29999,
                                                 "report_0": "Atrial fibrillation"}},
                           extra_rows=[{"subject_id": "x1", "study_id": "1", "ecg_time": "2180-01-01", "path": "a"},
                                       {"subject_id": "10000002", "study_id": "2", "ecg_time": "yesterday",
                                        "path": "b"}])
    errors = RowErrors()
    ecgs = read_record_list(root, errors)
    assert [e.study_id for e in ecgs] == ["40000001"]
    assert errors.counts == {"bad_id": 1, "bad_time": 1}
    assert errors.examples[0].startswith("record_list.csv:3:") and errors.examples[1].startswith("record_list.csv:4:")
    m = read_machine_measurements(root / "machine_measurements.csv", None, errors)["40000001"]
    assert m.rr_interval is None and m.heart_rate is None and m.qrs_axis is None and m.qrs_duration is None
    assert m.rhythm == "af"
    header = (root / ecgs[0].path).with_suffix(".hea").read_text().splitlines()
    assert [ln.split()[-1] for ln in header[1:7]] == ["I", "II", "III", "aVR", "aVF", "aVL"]
    assert header[0].split()[2:4] == ["500", "5000"] and "200(0)/mV" in header[1] and header[1].split()[1] == "16"


def test_the_wfdb_reader_reorders_avf_avl_by_name(tmp_path):
    from e2r.ecg import read_ecg

    root = write_mimic_ecg(tmp_path / "ecg", [("10000001", "40000001", "2180-01-01 10:00:00")])
    rec = read_ecg(root / "files/p1000/p10000001/s40000001/40000001.hea")
    assert rec.fs == 500 and rec.signal.shape == (12, 5000)
    # the fixture's canonical lead k has amplitude rising with k; the file stores aVF before aVL, and
    # reading by name gives the canonical order back
    amp = abs(rec.signal).max(axis=1)
    assert (amp[1:] > amp[:-1]).all()
    assert rec.source_leads[4:6] == ("aVF", "aVL")


def test_missing_column_is_one_line_naming_file_column_and_found(tmp_path):
    path = write_csv(tmp_path / "record_list.csv", ["subject_id", "study", "ecg_time", "path"], [])
    with pytest.raises(DataError) as err:
        list(read_rows(path, ("subject_id", "study_id", "ecg_time", "path")))
    msg = str(err.value)
    assert "\n" not in msg and "record_list.csv" in msg and "study_id" in msg and "columns found: subject_id, study" in msg


def test_truncated_gzip_is_one_clear_error(tmp_path):
    rows = [meas("1", "lvef", "55")] * 2000
    path = write_csv(tmp_path / "structured_measurement.csv.gz", MEAS_COLUMNS, rows, gz=True)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError, match="cannot be read past line"):
        list(read_rows(path, ("measurement_id",)))


def _ecg(study: str, when: str, subject: str = "1") -> MimicECG:
    return MimicECG(subject, study, datetime.datetime.fromisoformat(when), f"files/{study}", 2)


def test_nearest_ecg_window_ties_and_sign():
    echo = datetime.datetime(2180, 1, 10, 12, 0)
    ecgs = sorted([_ecg("30", "2180-01-08 12:00"), _ecg("20", "2180-01-12 12:00"), _ecg("10", "2180-01-12 12:00"),
                   _ecg("40", "2180-03-01 00:00")], key=lambda e: (e.ecg_time, int(e.study_id)))
    times = [e.ecg_time.timestamp() for e in ecgs]
    got, days = nearest_ecg(echo, ecgs, times, 14, 14)
    assert got.study_id == "30" and days == pytest.approx(-2.0)    # tie at 2 days: the earlier ECG
    got, days = nearest_ecg(echo, ecgs, times, 1, 14)
    assert got.study_id == "10" and days == pytest.approx(2.0)     # same time: the smaller study_id
    assert nearest_ecg(echo, ecgs, times, 1, 1) is None
    assert nearest_ecg(echo, ecgs, times, 2, 0)[0].study_id == "30"  # the window edge is inside


def test_patient_split_is_seeded_stable_and_proportional():
    ids = [str(10000000 + i) for i in range(6000)]
    a = [patient_split(i, 0) for i in ids]
    assert a == [patient_split(i, 0) for i in ids]
    assert a != [patient_split(i, 1) for i in ids]
    share = {s: a.count(s) / len(a) for s in ("train", "val", "test")}
    assert abs(share["train"] - 0.70) < 0.03 and abs(share["val"] - 0.15) < 0.03


def test_days_histogram_bins():
    hist = {h["days"]: h["pairs"] for h in days_histogram([-20, -3, 0.0, 0.5, 13.9, 900])}
    assert hist["[-30, -14)"] == 1 and hist["[-7, -1)"] == 1 and hist["[0, 1)"] == 2 and hist["[7, 14)"] == 1
    assert hist["[30, 365)"] == 1  # beyond the last edge: the end bin


def _echo_root(tmp_path, uids_a, uids_b=("1.2.3.2",), hyphen=False, measurements=()):
    studies = [
        {"subject_id": "10000001", "study_id": "90000001", "study_datetime": "2180-01-10 12:00:00",
         "measurement_id": "m1", "uids": uids_a},
        {"subject_id": "10000002", "study_id": "90000002", "study_datetime": "2180-02-10 12:00:00",
         "measurement_id": "m2", "uids": uids_b},
    ]
    return write_mimic_echo(tmp_path / "echo", studies, list(measurements), hyphen=hyphen)


@pytest.mark.parametrize("uids_a, uids_b, group_by", [
    (("1.2.3.1", "1.2.3.1", "1.2.3.1"), ("1.2.3.2",), "uid"),
    (("1.2.3.1", "1.2.3.1", "1.2.3.9"), ("1.2.3.2",), "folder"),   # a UID that differs within a folder
    (("1.2.3.1",), ("1.2.3.1",), "folder"),                        # one UID in two folders
])
def test_study_keys_check_the_uid_per_folder(tmp_path, uids_a, uids_b, group_by):
    root = _echo_root(tmp_path, uids_a, uids_b)
    errors = RowErrors()
    folders = read_echo_records(root / "echo-record-list.csv", errors)
    keys, report = study_keys(root, folders, "ends")
    assert report.group_by == group_by and report.folders == report.folders_read == 2
    if group_by == "uid":
        assert keys == {"90000001": "1.2.3.1", "90000002": "1.2.3.2"}
    else:
        assert keys == {"90000001": "s90000001", "90000002": "s90000002"}
    if len(set(uids_a)) > 1:
        assert report.mixed_uid_folders == ["s90000001"]


def test_study_keys_without_dicoms_fall_back_to_folder_names(tmp_path):
    root = _echo_root(tmp_path, ("1.2.3.1",))
    for p in (root / "files").rglob("*.dcm"):
        p.unlink()
    folders = read_echo_records(root / "echo-record-list.csv", RowErrors())
    keys, report = study_keys(root, folders)
    assert report.group_by == "folder" and report.folders_read == 0 and keys["90000001"] == "s90000001"


def test_scan_archive_group_by_folder(tmp_path):
    from e2r.echo import scan_archive

    root = _echo_root(tmp_path, ("1.2.3.1", "1.2.3.1", "1.2.3.9"))
    by_uid = scan_archive(root)
    assert sorted(s.study_uid for s in by_uid.studies) == ["1.2.3.1", "1.2.3.2", "1.2.3.9"]
    by_folder = scan_archive(root, group_by="folder")
    assert {s.study_uid: len(s.videos) for s in by_folder.studies} == {"s90000001": 3, "s90000002": 1}
    # two folders of the same name elsewhere get distinct keys
    import shutil

    shutil.copytree(root / "files/p10/p10000002/s90000002", root / "other/s90000002")
    for k, p in enumerate(sorted((root / "other").rglob("*.dcm"))):
        p.rename(p.with_name(f"copy{k}.dcm"))
    from helpers.dicom import write_us_dicom
    import numpy as np

    write_us_dicom(root / "other/s90000002/new.dcm", np.zeros((4, 16, 16), np.uint8), study_uid="1.2.3.7")
    keys = sorted(s.study_uid for s in scan_archive(root, group_by="folder").studies)
    assert keys[0] == "s90000001" and len(keys) == 3 and all(k.startswith("s90000002~") for k in keys[1:])
    with pytest.raises(DataError, match="--group-by"):
        scan_archive(root, group_by="series")


def test_measurements_priority_units_and_plausibility(tmp_path):
    rows = [
        meas("m1", "biplane_lvef", "60%"), meas("m1", "lvef", "70"),               # biplane wins
        meas("m1", "septal_thickness", "1.1", "cm"), meas("m1", "inf_lat_thickness", "10", "cm"),  # mm under cm
        meas("m1", "lvedd", "4.8", "cm"), meas("m1", "biplane_lvedv", "120", "ml"),
        meas("m1", "biplane_lvesv", "50", "ml"), meas("m1", "la_vol", "N/A", "ml"), meas("m1", "la_vol", "55", "ml"),
        meas("m1", "resting_hr", "72", "bpm", test="tte"), meas("m1", "biplane_lvef", "15", test="TEE"),
        meas("m2", "lvef", "<20"), meas("m2", "lvef_upper", "30"), meas("m2", "lvef_3d", "2"),   # 3d implausible
        meas("m2", "septal_thickness", "0.2"),  # 2 mm: implausible
        meas("m9", "lvef", "55"),                                                  # no such study
    ]
    root = _echo_root(tmp_path, ("1.2.3.1",), hyphen=True, measurements=rows)
    path = find_measurements(root)
    assert path.name == "structured-measurement.csv.gz"
    errors = RowErrors()
    studies = read_study_list(root / "echo-study-list.csv", errors)
    keys = {"90000001": "1.2.3.1", "90000002": "1.2.3.2"}
    out, summary = import_mimic_echo(path, studies, keys)
    a, b = out
    assert a["study_uid"] == "1.2.3.1" and a["patient_id"] == "10000001" and a["study_date"] == "21800110"
    assert a["lvef"] == 60 and a["ivsd"] == 11 and a["lvpwd"] == 10 and a["la_volume"] == 55 and a["heart_rate"] == 72
    assert a["lv_mass"] == pytest.approx(ase_lv_mass(48, 11, 10), abs=0.1)
    assert a["rv_diameter"] is None and a["rhythm"] is None
    # lvef_3d = 2 outranks the lvef/lvef_upper range, and is rejected as implausible
    assert b["lvef"] is None and b["ivsd"] is None
    assert summary.rejected == {"lvef": {"below_5": 1}, "ivsd": {"below_3": 1}}
    assert summary.values["lvef"] == 1 and summary.values["lv_mass"] == 1
    assert summary.rows_skipped == {"not_tte": 1, "no_study": 1}
    assert summary.bad_rows.counts == {"unparsed_result": 1}
    assert summary.bad_rows.examples[0].startswith("structured-measurement.csv.gz:9:")
    assert summary.unit_converted == {"septal_thickness": 2, "lvedd": 1}


def test_lvef_range_midpoint_when_nothing_better(tmp_path):
    rows = [meas("m1", "lvef", "<20"), meas("m1", "lvef_upper", "30"), meas("m2", "lvef", "55-65")]
    root = _echo_root(tmp_path, ("1.2.3.1",), measurements=rows)
    studies = read_study_list(root / "echo-study-list.csv", RowErrors())
    out, summary = import_mimic_echo(find_measurements(root), studies, {})
    assert [r["lvef"] for r in out] == [25.0, 60.0]
    assert [r["study_uid"] for r in out] == ["s90000001", "s90000002"]  # no keys: folder names
    assert summary.result_kinds == {"bound": 1, "plain": 1, "range": 1}


_STREAM_SCRIPT = r"""
import resource, sys, time
from e2r.datasets.mimic_echo import import_mimic_echo, EchoStudy
import datetime
studies = {str(i): EchoStudy(str(10000000 + i), str(i), datetime.datetime(2180, 1, 1), (f"m{i}",))
           for i in range(int(sys.argv[2]))}
t = time.perf_counter()
rows, s = import_mimic_echo(sys.argv[1], studies, {})
# VmHWM is this program's own peak; ru_maxrss can carry the parent's peak across fork + exec.
try:
    peak = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmHWM:")) // 1024
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(s.rows_read, round(time.perf_counter() - t, 2), peak)
"""


def write_long_gzip(path: Path, n_rows: int, n_studies: int) -> Path:
    """A structured_measurement.csv.gz of n_rows rows over n_studies measurement IDs (bench too)."""
    names = ("biplane_lvef", "septal_thickness", "inf_lat_thickness", "lvedd", "ao_root", "mv_e", "tr_vmax",
             "la_vol", "biplane_lvedv", "biplane_lvesv")
    results = ("55%", "1.1", "1.0", "4.8", "3.2", "0.9", "<2.0", "1.5-2.0", "120", "50")
    with gzip.open(path, "wt", compresslevel=1, newline="") as fh:
        fh.write(",".join(MEAS_COLUMNS) + "\n")
        for i in range(n_rows):
            k = i % len(names)
            fh.write(f"{10000000 + i % n_studies},m{(i // len(names)) % n_studies},2180-01-01 10:00:00,"
                     f"{'TTE' if i % 7 else 'TEE'},{names[k]},{names[k]} description,{results[k]},cm\n")
    return path


def test_streaming_import_stays_in_bounded_memory(tmp_path):
    """300k rows in a child process: peak RSS far under 1 GB (bench/bench_import.py scales it up)."""
    path = write_long_gzip(tmp_path / "structured_measurement.csv.gz", 300_000, 5_000)
    out = subprocess.run([sys.executable, "-c", _STREAM_SCRIPT, str(path), "5000"], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    rows_read, seconds, rss_mb = out.stdout.split()
    assert int(rows_read) == 300_000
    assert int(rss_mb) < 400, f"peak RSS {rss_mb} MB"


def test_synth_mimic_layout_writes_both_datasets(tmp_path):
    from e2r.phantom.mimic_layout import write_mimic_cohort

    out = tmp_path / "c"
    write_mimic_cohort(out, 4, 1, size=32, frames=4, workers=1)
    ecg, echo = out / "mimic-iv-ecg", out / "mimic-iv-echo"
    errors = RowErrors()
    ecgs = read_record_list(ecg, errors)
    assert ecgs and not errors.counts
    assert all((ecg / f"{e.path}.hea").is_file() for e in ecgs)
    assert all(e.path.startswith(f"files/p{e.subject_id[:4]}/p{e.subject_id}/s{e.study_id}/") for e in ecgs)
    header = (ecg / f"{ecgs[0].path}.hea").read_text().splitlines()
    assert header[0].split()[2:4] == ["500", "5000"] and " 200(0)/mV " in header[1]
    assert [ln.split()[-1] for ln in header[5:7]] == ["aVF", "aVL"]
    folders = read_echo_records(echo / "echo-record-list.csv", errors)
    assert all(r.startswith(f"files/p{f.subject_id[:2]}/p{f.subject_id}/s{sid}/") and (echo / r).is_file()
               for sid, f in folders.items() for r in f.files)
    studies = read_study_list(echo / "echo-study-list.csv", errors)
    assert set(studies) == set(folders) and not errors.counts
    with gzip.open(echo / "structured_measurement.csv.gz", "rt") as fh:
        header_line = fh.readline().strip()
    assert header_line.split(",") == list(MEAS_COLUMNS)
    keys, report = study_keys(echo, folders)
    assert report.group_by == "uid" and len(set(keys.values())) == len(keys)
    assert not (out / "pairs.csv").exists() and (out / "phantom_truth" / "pairs.csv").is_file()
    assert not list(out.glob(".phantom_build"))
