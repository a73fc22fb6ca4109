"""`e2r pair mimic` on MIMIC-layout fixtures written here: nearest ECG in the window, signed days,
patient splits, archive rows, the StudyInstanceUID-per-folder check, one-line errors, atomic output."""

from __future__ import annotations

import csv
import json

from typer.testing import CliRunner

from e2r.cli import app

from helpers.mimic_files import write_csv, write_mimic_ecg, write_mimic_echo

runner = CliRunner()

ECGS = [
    ("10000001", "40000001", "2180-01-08 12:00:00"),   # 2 days before study A
    ("10000001", "40000002", "2180-01-12 12:00:00"),   # 2 days after: tie, the earlier wins
    ("10000001", "40000003", "2180-06-01 12:00:00"),   # far outside
    ("10000002", "40000004", "2180-04-01 12:00:00"),   # 51 days after study B: outside the default window
    ("10000003", "40000005", "2180-03-03 00:00:00"),   # patient without echo
]
STUDIES = [
    {"subject_id": "10000001", "study_id": "90000001", "study_datetime": "2180-01-10 12:00:00",
     "measurement_id": "m1", "uids": ("1.2.3.1", "1.2.3.1")},
    {"subject_id": "10000002", "study_id": "90000002", "study_datetime": "2180-02-10 12:00:00",
     "measurement_id": "m2", "uids": ("1.2.3.2",)},
    {"subject_id": "10000001", "study_id": "90000003", "study_datetime": "2180-06-03 12:00:00",
     "measurement_id": "m3", "uids": ("1.2.3.3",)},
]


def _roots(tmp_path, studies=STUDIES):
    ecg = write_mimic_ecg(tmp_path / "mimic-iv-ecg", ECGS)
    echo = write_mimic_echo(tmp_path / "mimic-iv-echo", studies, [])
    return ecg, echo


def _run(tmp_path, *extra):
    ecg, echo = _roots(tmp_path)
    out = tmp_path / "out" / "pairs.csv"
    out.parent.mkdir()
    return runner.invoke(app, ["pair", "mimic", "--ecg-root", str(ecg), "--echo-root", str(echo), "--out", str(out),
                               *extra]), out


def test_pairs_nearest_in_window_with_signed_days_and_archive_rows(tmp_path):
    result, out = _run(tmp_path, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    rows = {r["study_uid"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == {"1.2.3.1", "1.2.3.2", "1.2.3.3"} and doc["group_by"] == "uid"
    a, b, c = rows["1.2.3.1"], rows["1.2.3.2"], rows["1.2.3.3"]
    assert a["ecg_path"] == "../mimic-iv-ecg/files/p1000/p10000001/s40000001/40000001.hea" and float(a["days"]) == -2.0
    assert (out.parent / a["ecg_path"]).is_file()
    assert b["ecg_path"] == "" and b["days"] == ""                     # archive row
    assert c["ecg_path"].endswith("40000003.hea") and float(c["days"]) == -2.0
    assert a["split"] == c["split"]                                    # one patient, one split
    assert doc["pairs"] == 2 and doc["archive_rows"] == 1 and doc["patients_paired"] == 1
    assert doc["dropped"] == {"ecg_of_patient_without_echo": 1, "no_ecg_in_window": 1}
    assert sum(h["pairs"] for h in doc["days_histogram"]) == 2
    from e2r.pairs import read_pairs

    assert len(read_pairs(out)) == 3


def test_window_option_and_seed(tmp_path):
    result, out = _run(tmp_path, "--window-days", "0", "60", "--seed", "3", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["study_uid"]: r for r in csv.DictReader(out.open())}
    assert rows["1.2.3.1"]["ecg_path"].endswith("40000002.hea") and float(rows["1.2.3.1"]["days"]) == 2.0
    assert float(rows["1.2.3.2"]["days"]) == 51.0  # 2180 is a leap year
    assert json.loads(result.stdout)["seed"] == 3


def test_human_summary(tmp_path):
    result, _ = _run(tmp_path)
    assert result.exit_code == 0, result.output
    assert "2 pairs of 1 patients" in result.output and "days (ECG minus echo)" in result.output
    assert "no_ecg_in_window=1" in result.output


def test_a_uid_that_differs_within_a_folder_switches_to_folder_keys(tmp_path):
    studies = [dict(STUDIES[0], uids=("1.2.3.1", "1.2.3.1", "1.2.3.8")), *STUDIES[1:]]
    ecg, echo = _roots(tmp_path, studies)
    out = tmp_path / "pairs.csv"
    result = runner.invoke(app, ["pair", "mimic", "--ecg-root", str(ecg), "--echo-root", str(echo), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "--group-by folder" in result.output and "s90000001" in result.output
    keys = sorted(r["study_uid"] for r in csv.DictReader(out.open()))
    assert keys == ["s90000001", "s90000002", "s90000003"]
    # the indexer's folder grouping gives the same keys
    from e2r.echo import scan_archive

    assert sorted(s.study_uid for s in scan_archive(echo, group_by="folder").studies) == keys


def test_missing_column_is_one_line_and_nothing_is_written(tmp_path):
    ecg, echo = _roots(tmp_path)
    write_csv(ecg / "record_list.csv", ["subject_id", "study_id", "file_name", "time", "path"], [])
    out = tmp_path / "pairs.csv"
    out.write_text("old content\n")
    result = runner.invoke(app, ["pair", "mimic", "--ecg-root", str(ecg), "--echo-root", str(echo), "--out", str(out)])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "record_list.csv" in lines[0] and "ecg_time" in lines[0] and "columns found: subject_id" in lines[0]
    assert out.read_text() == "old content\n"       # untouched
    assert not list(tmp_path.glob(".pairs.csv.*"))  # no temporary left behind


def test_bad_rows_are_counted_by_line(tmp_path):
    ecg, echo = _roots(tmp_path)
    with (ecg / "record_list.csv").open("a") as fh:
        fh.write("10000001,40000009,40000009,not a time,files/x\n")
    out = tmp_path / "pairs.csv"
    result = runner.invoke(app, ["pair", "mimic", "--ecg-root", str(ecg), "--echo-root", str(echo), "--out", str(out),
                                 "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["dropped"]["bad_row:bad_time"] == 1 and doc["bad_row_examples"][0].startswith("record_list.csv:7:")


def test_an_interrupted_write_leaves_no_partial_csv(tmp_path, monkeypatch):
    import e2r.pairs

    def broken(path, rows):
        with open(path, "w") as fh:
            fh.write("ecg_path,study")
        raise KeyboardInterrupt

    monkeypatch.setattr(e2r.pairs, "write_pairs", broken)
    result, out = _run(tmp_path)
    assert result.exit_code == 130 and not out.exists() and not list(out.parent.iterdir())


def test_bad_flags(tmp_path):
    result, _ = _run(tmp_path, "--window-days", "-1", "3")
    assert result.exit_code == 1 and "--window-days" in result.output
    missing = runner.invoke(app, ["pair", "mimic", "--ecg-root", str(tmp_path / "none"), "--echo-root", str(tmp_path),
                                  "--out", str(tmp_path / "p.csv")])
    assert missing.exit_code == 1 and "record_list.csv" in missing.output and "Traceback" not in missing.output


def test_index_group_by_folder_matches_the_folder_keys(tmp_path, tiny_bundle):
    studies = [dict(STUDIES[0], uids=("1.2.3.1", "1.2.3.1", "1.2.3.8")), *STUDIES[1:]]
    _, echo = _roots(tmp_path, studies)
    base = ["index", str(echo), "--model", str(tiny_bundle), "--workers", "0", "--json"]
    by_uid = runner.invoke(app, [*base, "--data-dir", str(tmp_path / "h1")])
    assert by_uid.exit_code == 0, by_uid.output
    assert json.loads(by_uid.stdout)["indexed"] == 4            # the folder with two UIDs splits in two
    by_folder = runner.invoke(app, [*base, "--data-dir", str(tmp_path / "h2"), "--group-by", "folder"])
    assert by_folder.exit_code == 0, by_folder.output
    assert json.loads(by_folder.stdout)["indexed"] == 3
    bad = runner.invoke(app, [*base, "--data-dir", str(tmp_path / "h3"), "--group-by", "series"])
    assert bad.exit_code == 1 and "--group-by" in bad.output
