"""Phenotype CSV schema: derived labels and the tolerant reader."""

from __future__ import annotations

import numpy as np
import pytest

from e2r.errors import DataError
from e2r.phenotypes import derive_labels, lvef_class, read_phenotypes, write_phenotypes


@pytest.mark.parametrize(
    "lvef, expected",
    [(10.0, "reduced"), (39.9, "reduced"), (40.0, "mildly_reduced"), (49.9, "mildly_reduced"), (50.0, "preserved")],
)
def test_lvef_class_thresholds(lvef, expected):
    assert lvef_class(lvef) == expected


def test_derived_labels_use_thresholds():
    assert derive_labels({"lvef": 45.0, "ivsd": 12.9, "lvpwd": 13.0}) == {
        "lvef_class": "mildly_reduced", "lvef_le45": 1, "lvh": 1,
    }
    assert derive_labels({"lvef": 45.1, "ivsd": 9.0, "lvpwd": None}) == {
        "lvef_class": "mildly_reduced", "lvef_le45": 0, "lvh": 0,
    }
    assert derive_labels({}) == {"lvef_class": None, "lvef_le45": None, "lvh": None}


def test_round_trip_and_bad_rows_reported_with_line(tmp_path):
    path = tmp_path / "ph.csv"
    write_phenotypes(path, [
        {"study_uid": "1.2.3", "patient_id": "p1", "study_date": "20200101", "lvef": 35.0, "ivsd": 14.0, "lvpwd": 10.0},
        {"study_uid": "1.2.4", "patient_id": "p2", "study_date": "20200102", "lvef": 60.0},
    ])
    with path.open("a") as fh:
        fh.write("1.2.5,p3,20200103,abc,,,,,,,,,,,,\n")
    rows, errors = read_phenotypes(path)
    assert set(rows) == {"1.2.3", "1.2.4"}
    assert rows["1.2.3"]["lvef_class"] == "reduced" and rows["1.2.3"]["lvh"] == 1
    assert rows["1.2.4"]["lvedv"] is None
    assert len(errors) == 1 and errors[0].line == 4 and "lvef='abc'" in errors[0].message


def test_missing_file_and_missing_column(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_phenotypes(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("uid,lvef\n1,50\n")
    with pytest.raises(DataError, match="study_uid"):
        read_phenotypes(bad)


def test_optional_wall_motion_columns(tmp_path):
    from e2r.phenotypes import PHENOTYPE_COLUMNS, cohort_sd, phenotype_arrays

    rows = [{"study_uid": "1.1", "lvef": 35.0, "lvedv": 160.0, "lvesv": 104.0, "wmsi": 1.8, "territory": "LAD"},
            {"study_uid": "1.2", "lvef": 60.0, "lvedv": 110.0, "lvesv": 44.0, "wmsi": 1.0, "territory": "none"},
            {"study_uid": "1.3", "lvef": 55.0}]
    path = tmp_path / "wm.csv"
    write_phenotypes(path, rows)
    assert path.read_text().splitlines()[0].split(",") == [*PHENOTYPE_COLUMNS, "wmsi", "territory"]
    with path.open("a") as fh:  # rows by hand: wmsi and territory are the last two columns
        fh.write("1.4" + "," * 16 + "4.5,LAD\n")        # line 5: WMSI outside 1-4
        fh.write("1.5" + "," * 16 + "2.0,LM\n")         # line 6: not a territory
        fh.write("1.6" + "," * 16 + "4,rca+ lad\n")     # canonical: LAD+RCA
        fh.write("1.7" + "," * 16 + "1, Global\n")
    got, errors = read_phenotypes(path)
    assert got["1.1"]["wmsi"] == 1.8 and got["1.1"]["territory"] == "LAD"
    assert got["1.3"]["wmsi"] is None and got["1.3"]["territory"] is None
    assert got["1.6"]["territory"] == "LAD+RCA" and got["1.6"]["wmsi"] == 4.0
    assert got["1.7"]["territory"] == "global"
    assert [(e.line, "wmsi='4.5'" in e.message or "territory='LM'" in e.message) for e in errors] == [(5, True), (6, True)]
    assert "outside 1-4" in errors[0].message and "LAD+RCA" in errors[1].message
    # lvsv is derived for metrics, and its cohort SD is the SD of the derived values
    lvsv = phenotype_arrays([got["1.1"], got["1.2"], got["1.3"], None], ("lvsv",))["lvsv"]
    np.testing.assert_array_equal(lvsv, [56.0, 66.0, np.nan, np.nan])
    assert cohort_sd(got, ("lvsv",))["lvsv"] == pytest.approx(5.0)


def test_csv_without_optional_columns_reads_as_before(tmp_path):
    path = tmp_path / "v1.csv"
    write_phenotypes(path, [{"study_uid": "1.1", "lvef": 50.0, "wmsi": None}])  # nothing to write: no column
    assert "wmsi" not in path.read_text() and "territory" not in path.read_text()
    rows, errors = read_phenotypes(path)
    assert not errors and set(rows["1.1"]) == {"study_date", "lvef", "lvedv", "lvesv", "ivsd", "lvpwd", "lv_mass",
                                                "la_volume", "rv_diameter", "heart_rate", "rhythm", "lvef_class",
                                                "lvef_le45", "lvh", "patient_id"}
