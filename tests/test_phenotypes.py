"""Phenotype CSV schema: derived labels and the tolerant reader."""

from __future__ import annotations

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
