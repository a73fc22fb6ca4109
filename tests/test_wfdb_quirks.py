"""WFDB headers as public ECG collections really write them, beyond the WFDB specification.

Each quirk here has a source that shows a real collection writing it (cited at its fixture in
tests/helpers/wfdb_quirks.py); each is read, with a note where e2r repairs something, and each
near miss ends in one named error line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb
from typer.testing import CliRunner

from e2r.ecg import read_ecg
from e2r.ecg.wfdb import _header_lines, _parse_lines
from e2r.errors import ECGReadError
from helpers.wfdb_quirks import georgia_signal, write_georgia_original

SHARED_CINC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ecg" / "cinc2021"
NOTE = "the record line names the record 'E00271.mat', its signal file's name"


def _error(path: Path) -> str:
    with pytest.raises(ECGReadError) as info:
        read_ecg(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


# ---------------------------------------------------------------- CinC 2020/2021 Georgia


def test_original_georgia_header_reads_by_every_name_with_a_note(tmp_path):
    """`E00271.mat 12 500 5000 05-May-2020 14:50:55`: the record name is taken without `.mat`."""
    header = write_georgia_original(tmp_path)
    truth = georgia_signal()
    for name in ("E00271", "E00271.hea", "E00271.mat"):
        record = read_ecg(tmp_path / name)
        assert record.record_name == "E00271" and record.fs == 500.0 and record.signal.shape == (12, 5000)
        assert record.derived == ()
        np.testing.assert_allclose(record.signal, truth, atol=1e-3)
        assert [w for w in record.warnings if w.startswith(NOTE)], record.warnings
    assert header.read_text().startswith("E00271.mat 12 500 5000 05-May-2020 14:50:55\n")  # left as it was


def test_original_georgia_header_reads_as_its_rewritten_copy(tmp_path):
    """The same record with the record name fixed (the form wfdb rewrites it to) reads the same."""
    write_georgia_original(tmp_path / "original", gain=4880.0)  # E00001's gain
    write_georgia_original(tmp_path / "fixed", gain=4880.0, record="E00271")
    original, fixed = read_ecg(tmp_path / "original" / "E00271"), read_ecg(tmp_path / "fixed" / "E00271")
    np.testing.assert_array_equal(original.signal, fixed.signal)
    assert not [w for w in fixed.warnings if "record line" in w]


@pytest.mark.parametrize("when", [
    "05-May-2020 14:50:55",   # CinC 2020/2021 (wfdb-python issue 415): date first, dd-Mon-yyyy
    "31-Dec-2020 23:59:59",
    "1-Jan-2021 00:00:00",
    "14:50:55 05/05/2020",    # the WFDB form: time, then dd/mm/yyyy
    "14:50:55",
    "",
])
@pytest.mark.parametrize("record", [None, "E00271"], ids=["georgia", "fixed_name"])
def test_record_line_dates_and_times_read(tmp_path, when, record):
    """The record line's date and time (any of the forms the collections write) never stop a read."""
    write_georgia_original(tmp_path, when=when, record=record)
    rec = read_ecg(tmp_path / "E00271.hea")
    assert rec.fs == 500.0 and rec.signal.shape == (12, 5000)


def test_chapman_ningbo_header_form_reads(tmp_path):
    """PhysioNet ecg-arrhythmia (Chapman-Shaoxing/Ningbo) and CinC 2021 `JS` records:
    `JS00001 12 500 5000 23-Mar-2021 20:20:47` over `JS00001.mat 16+24 1000/mV ...` lines."""
    write_georgia_original(tmp_path, name="JS00001", record="JS00001", when="23-Mar-2021 20:20:47")
    rec = read_ecg(tmp_path / "JS00001.mat")
    np.testing.assert_allclose(rec.signal, georgia_signal(), atol=1e-3)
    assert not [w for w in rec.warnings if "record line" in w]


def test_inspect_shows_the_repair_note(tmp_path):
    from e2r.cli import app

    write_georgia_original(tmp_path)
    runner = CliRunner()
    text = runner.invoke(app, ["inspect", str(tmp_path / "E00271.hea")])
    assert text.exit_code == 0, text.output
    assert "record E00271)" in text.output and f"warning: {NOTE}" in text.output
    js = runner.invoke(app, ["inspect", "--json", str(tmp_path / "E00271.mat")])
    report = json.loads(js.stdout)
    assert report["record_name"] == "E00271" and any(w.startswith(NOTE) for w in report["warnings"])


@pytest.mark.parametrize("written, expect", [
    ("E00271.dat", "names the record 'E00271.dat', which is not a WFDB record name"),  # not its signal file
    ("E00271.MAT", "names the record 'E00271.MAT', which is not a WFDB record name"),
    ("E00271.mat.mat", "which is not a WFDB record name"),
    (".mat", "which is not a WFDB record name"),
])
def test_record_name_with_an_extension_that_is_no_signal_file_is_one_clear_error(tmp_path, written, expect):
    write_georgia_original(tmp_path, record=written)
    message = _error(tmp_path / "E00271.hea")
    assert expect in message and "write the record's name there, e.g. 'E00271'" in message


def test_repaired_header_that_is_still_broken_is_a_named_error(tmp_path):
    header = write_georgia_original(tmp_path)
    lines = header.read_text().splitlines()
    header.write_text("\n".join([lines[0].replace(" 500 ", " abc "), *lines[1:]]) + "\n")
    message = _error(header)
    assert "not a valid WFDB header" in message or "sampling rate" in message
    header.write_text("\n".join([lines[0], *lines[1:12]]) + "\n")  # one signal line short
    assert "not a complete WFDB header" in _error(header)


def test_lines_parse_as_wfdb_rdheader_parses_the_file(tmp_path):
    """The parse of a repaired header (`_parse_lines`) is wfdb.rdheader's, field for field, on
    headers both can read."""
    headers = [write_georgia_original(tmp_path / "a", record="E00271")]
    wfdb.wrsamp("w", fs=250, units=["mV"] * 2, sig_name=["I", "II"], p_signal=np.zeros((10, 2)), fmt=["212"] * 2,
                write_dir=str(tmp_path))
    headers.append(tmp_path / "w.hea")
    if SHARED_CINC.is_dir():
        headers += sorted(SHARED_CINC.glob("*.hea"))[:3]
    for path in headers:
        ref, got = wfdb.rdheader(str(path.with_suffix(""))), _parse_lines(_header_lines(path))
        for name in ("record_name", "n_sig", "fs", "sig_len", "file_name", "fmt", "byte_offset", "adc_gain",
                     "baseline", "units", "sig_name", "adc_zero", "init_value", "samps_per_frame", "skew"):
            assert getattr(got, name) == getattr(ref, name), (path, name)


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_CINC.is_dir(), reason="../shared/data/ecg/cinc2021 not present")
def test_real_georgia_record_in_its_original_form_reads_as_the_shared_copy(tmp_path):
    """A real Georgia record (E07500, whose shared copy went through a library that rewrote its
    header) with its header put back in the original form reads to the same values."""
    src = SHARED_CINC / "E07500.hea"
    shutil.copyfile(SHARED_CINC / "E07500.mat", tmp_path / "E07500.mat")
    lines = src.read_text().splitlines()
    original = ["E07500.mat 12 500 5000 05-May-2020 14:50:55"]
    for line in lines[1:]:
        fields = line.split()
        if not line.startswith("#"):  # `16x1+24 1000.0(0)/mV` as the challenge wrote it: `16+24 1000/mV`
            fields[1], fields[2] = "16+24", "1000/mV"
        original.append(" ".join(fields))
    (tmp_path / "E07500.hea").write_text("\n".join(original) + "\n")
    got, ref = read_ecg(tmp_path / "E07500.hea"), read_ecg(src)
    assert got.record_name == "E07500" and any("'E07500.mat'" in w for w in got.warnings)
    np.testing.assert_array_equal(got.signal, ref.signal)
