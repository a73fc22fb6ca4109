"""`e2r inspect`: archive folders, single echo videos, ECGs, and bad input through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from e2r.cli import app
from e2r.cli.inspect_cmd import detect_kind
from helpers.dicom import write_other_dicom, write_us_dicom
from test_echo_io import _ramp_video

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, ["inspect", *args])


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _example(name: str) -> Path:
    import pydicom.examples

    return Path(pydicom.examples.get_path(name))


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """The real echo cine beside junk: text .dcm, zero-byte, CT image, single-frame US, SR."""
    root = tmp_path / "archive"
    (root / "study").mkdir(parents=True)
    shutil.copy(_example("ybr_color"), root / "study" / "cine.dcm")
    (root / "notes.dcm").write_text("not a DICOM file\n")
    (root / "zero.dcm").write_bytes(b"")
    write_other_dicom(root / "other" / "ct.dcm", "ct")
    write_other_dicom(root / "other" / "still", "single_frame_us")
    write_other_dicom(root / "other" / "report.dcm", "sr")
    return root


def test_mixed_folder_json(mixed_folder):
    r = _json(_invoke(str(mixed_folder), "--json"))
    assert r["kind"] == "archive"
    assert (r["n_files"], r["n_studies"], r["n_videos"], r["n_skipped"]) == (6, 1, 1, 5)
    assert r["skipped"] == {"empty_file": 1, "not_dicom": 1, "other_modality": 1,
                            "single_frame": 1, "structured_report": 1}
    assert r["frames"]["total"] == 30 and r["views"] == {"unknown": 1}
    assert r["skipped_examples"]["other_modality"][0]["path"].endswith("ct.dcm")
    study = r["studies"][0]
    assert study["study_date"] == "20160503" and study["n_videos"] == 1
    video = study["videos"][0]
    assert (video["n_frames"], video["rows"], video["cols"]) == (30, 240, 320)
    assert video["region"] == [42, 15, 297, 207] and video["fps"] == pytest.approx(30.0, rel=1e-3)


def test_mixed_folder_text(mixed_folder):
    result = _invoke(str(mixed_folder))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "6 files, 1 studies, 1 videos, 5 skipped" in out
    assert "frames per video: min 30" in out
    for reason in ("empty_file", "not_dicom", "other_modality", "single_frame", "structured_report"):
        assert reason in out
    assert "1.2.840.114340.3.8251017118051.1.20160503.120850.2171" in out


def test_single_synthetic_video(tmp_path):
    p = write_us_dicom(tmp_path / "v.dcm", _ramp_video(6), region=(2, 2, 29, 21), series_description="PSAX")
    r = _json(_invoke(str(p), "--json"))
    assert r["kind"] == "echo" and r["view"] == "PSAX" and r["n_frames"] == 6
    assert r["fps"] == pytest.approx(25.0) and r["duration_s"] == pytest.approx(0.24)
    assert r["region"] == [2, 2, 29, 21] and r["decodes"] is True
    text = _invoke(str(p))
    assert text.exit_code == 0 and "PSAX" in text.stdout and "MONOCHROME2" in text.stdout


def test_an_implausible_frame_time_is_shown_as_a_note(tmp_path):
    p = write_us_dicom(tmp_path / "v.dcm", _ramp_video(6), frame_time_ms=1e-300)
    r = _json(_invoke(str(p), "--json"))
    assert r["fps"] is None and r["frame_time_ms"] is None and r["duration_s"] is None
    assert "FrameTime 1e-300 ms" in r["notes"][0] and "outside 5-2000 fps" in r["notes"][0]
    text = _invoke(str(p))
    assert text.exit_code == 0 and "note: FrameTime 1e-300 ms" in text.stdout


def test_real_echo_cine_text():
    result = _invoke(str(_example("ybr_color")))
    assert result.exit_code == 0, result.output
    assert "YBR_FULL_422" in result.stdout and "42,15,297,207" in result.stdout


@pytest.mark.parametrize("case", ["text", "empty", "ct", "truncated", "missing"])
def test_bad_echo_input_is_one_error_line(tmp_path, case):
    if case == "text":
        path = tmp_path / "scan.dcm"
        path.write_text("patient notes, not an image\n")
        expect = "not a DICOM file"
    elif case == "empty":
        path = tmp_path / "zero.dcm"
        path.write_bytes(b"")
        expect = "empty"
    elif case == "ct":
        path = write_other_dicom(tmp_path / "ct.dcm", "ct")
        expect = "modality CT"
    elif case == "truncated":
        path = write_us_dicom(tmp_path / "cut.dcm", _ramp_video(6))
        path.write_bytes(path.read_bytes()[:-700])
        expect = "truncated"
    else:
        path = tmp_path / "nowhere.dcm"
        expect = "no such file"
    result = _invoke(str(path))
    assert result.exit_code == 1
    assert result.stdout == ""
    err = result.stderr.strip()
    assert err.startswith("Error: ") and str(path) in err and expect in err
    assert len(err.splitlines()) == 1 and "Traceback" not in result.output


def test_detect_kind(tmp_path):
    (tmp_path / "rec.hea").write_text("rec 12 500 5000\n")
    (tmp_path / "rec.dat").write_bytes(b"\x00" * 8)
    assert detect_kind(tmp_path) == "archive"
    assert detect_kind(tmp_path / "rec") == "ecg"
    assert detect_kind(tmp_path / "rec.dat") == "ecg"
    assert detect_kind(_example("waveform")) == "ecg"
    assert detect_kind(_example("ybr_color")) == "echo"
    assert detect_kind(write_other_dicom(tmp_path / "ct.dcm", "ct")) == "echo"  # refused by the echo reader


def test_dicom_ecg():
    pytest.importorskip("e2r.ecg")
    r = _json(_invoke(str(_example("waveform")), "--json"))
    assert r["kind"] == "ecg" and r["fs_hz"] == pytest.approx(1000.0)
    assert [lead["lead"] for lead in r["leads"]] == ["I", "II", "III", "aVR", "aVL", "aVF",
                                                     "V1", "V2", "V3", "V4", "V5", "V6"]
    assert r["duration_s"] == pytest.approx(10.0) and r["derived"] == []
    ranges = np.array([[lead["min_mv"], lead["max_mv"]] for lead in r["leads"]])
    assert np.all(ranges[:, 0] < ranges[:, 1]) and np.abs(ranges).max() < 10  # mV, not raw counts


@pytest.mark.parametrize("drop_meta_class", [False, True])
def test_a_dicom_ecg_without_modality_or_sop_class_is_shown_as_read_ecg_reads_it(tmp_path, drop_meta_class):
    """Issue 20 #8: inspect once sent such a file to the echo reader ("pass an echo video")."""
    import pydicom

    from e2r.ecg import read_ecg

    ds = pydicom.dcmread(_example("waveform"))
    del ds.Modality, ds.SOPClassUID
    if drop_meta_class:
        del ds.file_meta.MediaStorageSOPClassUID
    p = tmp_path / "ecg.dcm"
    ds.save_as(p, enforce_file_format=False)
    assert detect_kind(p) == "ecg"
    r = _json(_invoke(str(p), "--json"))
    assert r["kind"] == "ecg" and r["fs_hz"] == read_ecg(p).fs


def test_ecg_bad_header_is_error(tmp_path):
    pytest.importorskip("e2r.ecg")
    (tmp_path / "bad.hea").write_text("this is not a WFDB header\n")
    result = _invoke(str(tmp_path / "bad.hea"))
    assert result.exit_code == 1 and result.stderr.startswith("Error: ") and "Traceback" not in result.output


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent")
def test_shared_ecgs_text_and_json():
    pytest.importorskip("e2r.ecg")
    ptb = SHARED / "ecg" / "ptbdb" / "s0010_re"
    result = _invoke(str(ptb))
    assert result.exit_code == 0, result.output
    assert "1000 Hz" in result.stdout and "V6" in result.stdout
    r = _json(_invoke(str(SHARED / "ecg" / "cinc2021" / "E07500.hea"), "--json"))
    assert r["kind"] == "ecg" and len(r["leads"]) == 12 and r["fs_hz"] > 0
