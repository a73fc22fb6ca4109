"""`e2r phenotypes import {mimic-iv-echo, echonet, csv}` on fixtures written here."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from e2r.cli import app
from e2r.phenotypes import read_phenotypes

from helpers.mimic_files import meas, write_csv, write_mimic_ecg, write_mimic_echo

runner = CliRunner()

STUDIES = [
    {"subject_id": "10000001", "study_id": "90000001", "study_datetime": "2180-01-10 12:00:00",
     "measurement_id": "m1", "uids": ("1.2.3.1",)},
    {"subject_id": "10000002", "study_id": "90000002", "study_datetime": "2180-02-10 12:00:00",
     "measurement_id": "m2", "uids": ("1.2.3.2", "1.2.3.2")},
]
MEAS = [
    meas("m1", "biplane_lvef", "35%"), meas("m1", "septal_thickness", "1.3", "cm"),
    meas("m1", "inf_lat_thickness", "1.2-1.4", "cm"), meas("m1", "lvedd", "52", "cm"),   # mm under cm
    meas("m2", "lvef", "55"), meas("m2", "lvef_upper", "60"), meas("m2", "biplane_lvedv", "900", "ml"),
    meas("m2", "la_vol", "abc", "ml"), meas("m2", "resting_hr", "64", "bpm", test="Tte"),
]


@pytest.mark.parametrize("hyphen, gz", [(False, True), (True, True), (True, False)])
def test_mimic_import_keys_by_uid_and_reports_per_field(tmp_path, hyphen, gz):
    echo = write_mimic_echo(tmp_path / "echo", STUDIES, MEAS, hyphen=hyphen, gz=gz)
    out = tmp_path / "phenotypes.csv"
    result = runner.invoke(app, ["phenotypes", "import", "mimic-iv-echo", "--measurements", str(echo),
                                 "--studies", str(echo / "echo-study-list.csv"), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    rows, bad = read_phenotypes(out)
    assert not bad and set(rows) == {"1.2.3.1", "1.2.3.2"} and doc["group_by"] == "uid"
    a, b = rows["1.2.3.1"], rows["1.2.3.2"]
    assert a["lvef"] == 35 and a["ivsd"] == 13 and a["lvpwd"] == 13 and a["lvh"] == 1 and a["lvef_class"] == "reduced"
    assert a["lv_mass"] == pytest.approx(0.832 * ((5.2 + 1.3 + 1.3) ** 3 - 5.2 ** 3) + 0.6, abs=0.1)
    assert b["lvef"] == 57.5 and b["lvedv"] is None and b["heart_rate"] == 64 and b["la_volume"] is None
    assert doc["rejected"] == {"lvedv": {"above_500": 1}}
    assert doc["values"]["lvef"] == 2 and doc["values"]["lv_mass"] == 1 and doc["values"]["rhythm"] == 0
    assert doc["bad_rows"] == {"unparsed_result": 1} and "line" not in doc["bad_row_examples"][0]
    assert doc["bad_row_examples"][0].split(":")[1] == "9"


def test_mimic_import_human_table_and_rhythm_from_the_nearest_ecg(tmp_path):
    echo = write_mimic_echo(tmp_path / "echo", STUDIES, MEAS)
    ecg = write_mimic_ecg(tmp_path / "ecg", [("10000001", "40000001", "2180-01-11 09:00:00"),
                                             ("10000002", "40000002", "2180-02-01 09:00:00")],
                          reports={"40000001": {"report_0": "Atrial fibrillation", "p_onset": 29999}})
    out = tmp_path / "phenotypes.csv"
    result = runner.invoke(app, ["phenotypes", "import", "mimic-iv-echo", "--measurements",
                                 str(echo / "structured_measurement.csv.gz"), "--studies", str(echo),
                                 "--out", str(out), "--ecg-root", str(ecg)])
    assert result.exit_code == 0, result.output
    assert "studies_with_value" in result.output and "above_500=1" in result.output
    rows, _ = read_phenotypes(out)
    assert rows["1.2.3.1"]["rhythm"] == "af" and rows["1.2.3.2"]["rhythm"] == "sinus"  # 9 days: in the window


def test_mimic_import_with_a_mixed_uid_folder_uses_folder_keys(tmp_path):
    studies = [STUDIES[0], dict(STUDIES[1], uids=("1.2.3.2", "1.2.3.5"))]
    echo = write_mimic_echo(tmp_path / "echo", studies, MEAS)
    out = tmp_path / "phenotypes.csv"
    result = runner.invoke(app, ["phenotypes", "import", "mimic-iv-echo", "--measurements", str(echo),
                                 "--studies", str(echo), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "--group-by folder" in result.output
    assert set(read_phenotypes(out)[0]) == {"s90000001", "s90000002"}


def test_missing_measurement_column_is_one_line_and_nothing_written(tmp_path):
    echo = write_mimic_echo(tmp_path / "echo", STUDIES, MEAS)
    write_csv(echo / "structured_measurement.csv.gz",
              ["subject_id", "measurement_id", "test", "measurement", "result", "unit"], [], gz=True)
    out = tmp_path / "phenotypes.csv"
    result = runner.invoke(app, ["phenotypes", "import", "mimic-iv-echo", "--measurements", str(echo),
                                 "--studies", str(echo), "--out", str(out)])
    assert result.exit_code == 1, result.output
    err = [ln for ln in result.output.splitlines() if ln.startswith("Error:")]
    assert len(err) == 1 and "structured_measurement.csv.gz" in err[0] and "test_type" in err[0]
    assert "columns found: subject_id, measurement_id, test," in err[0]
    assert not out.exists() and not list(tmp_path.glob(".phenotypes.csv.*"))


def test_generic_csv_with_a_map_units_and_bad_rows(tmp_path):
    src = write_csv(tmp_path / "report.csv", ["StudyUID", "MRN", "EF", "IVS_cm", "PW", "Rhythm"], [
        {"StudyUID": "u1", "MRN": "p1", "EF": "0.55", "IVS_cm": "1.1", "PW": "10", "Rhythm": "Atrial fibrillation"},
        {"StudyUID": "", "MRN": "p2", "EF": "0.6"},
        {"StudyUID": "u3", "MRN": "p3", "EF": "0.95", "IVS_cm": "n/a", "PW": "9", "Rhythm": "SR"},
        {"StudyUID": "u1", "MRN": "p1", "EF": "0.5"},
    ])
    out = tmp_path / "phenotypes.csv"
    result = runner.invoke(app, ["phenotypes", "import", "csv", str(src), "--map",
                                 "study_uid=StudyUID,patient_id=MRN,lvef=EF:fraction,ivsd=IVS_cm:cm,lvpwd=PW:mm,"
                                 "rhythm=Rhythm", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    rows, _ = read_phenotypes(out)
    assert set(rows) == {"u1", "u3"}
    assert rows["u1"]["lvef"] == 55 and rows["u1"]["ivsd"] == 11 and rows["u1"]["rhythm"] == "af"
    assert rows["u3"]["lvef"] is None and rows["u3"]["rhythm"] == "sinus"
    assert doc["rejected"] == {"lvef": {"above_85": 1}}
    assert doc["bad_rows"] == {"no_study_uid": 1, "unparsed_value": 1, "duplicate_study": 1}
    assert [e.split(":")[1] for e in doc["bad_row_examples"]] == ["3", "4", "5"]


@pytest.mark.parametrize("mapping, message", [
    ("lvef", "expected field=COLUMN"), ("ef=EF", "unknown field 'ef'"), ("lvef=EF:cm", "units for lvef: %, fraction"),
    ("lvef=Nope", "missing column(s) Nope"),
])
def test_generic_csv_bad_maps_are_one_line(tmp_path, mapping, message):
    src = write_csv(tmp_path / "r.csv", ["study_uid", "EF"], [{"study_uid": "u1", "EF": "50"}])
    result = runner.invoke(app, ["phenotypes", "import", "csv", str(src), "--map", mapping,
                                 "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "p.csv").exists()


def test_echonet_filelist(tmp_path):
    cols = ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split"]
    src = write_csv(tmp_path / "FileList.csv", cols, [
        {"FileName": "0X1A", "EF": "55.1", "ESV": "40", "EDV": "89", "FrameHeight": 112, "FrameWidth": 112,
         "FPS": 50, "NumberOfFrames": 100, "Split": "TRAIN"},
        {"FileName": "0X2B", "EF": "92", "ESV": "5", "EDV": "60", "FrameHeight": 112, "FrameWidth": 112,
         "FPS": 50, "NumberOfFrames": 100, "Split": "TEST"},
    ])
    out = tmp_path / "phenotypes.csv"
    result = runner.invoke(app, ["phenotypes", "import", "echonet", "--filelist", str(src), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    rows, _ = read_phenotypes(out)
    assert rows["0X1A"]["lvef"] == 55.1 and rows["0X1A"]["lvedv"] == 89 and rows["0X2B"]["lvef"] is None
    assert json.loads(result.stdout)["rejected"] == {"lvef": {"above_85": 1}}
    with out.open() as fh:
        assert next(csv.reader(fh))[0] == "study_uid"


def test_an_unwritable_out_is_one_line(tmp_path):
    src = write_csv(tmp_path / "r.csv", ["study_uid", "lvef"], [{"study_uid": "u1", "lvef": "50"}])
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, ["phenotypes", "import", "csv", str(src), "--out", str(tmp_path / "file" / "p.csv")])
    assert result.exit_code == 1 and "cannot be written" in result.output and "Traceback" not in result.output
