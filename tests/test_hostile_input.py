"""Hostile input, site by site (issue 15): each case is one the issue found, turned into a named
error or a correct read -- never a traceback, never a silent misread, never a stopped batch."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from e2r.cli import app
from e2r.errors import DataError, DicomReadError, ECGReadError
from helpers.cohort import write_ecg
from helpers.dicom import write_us_dicom

runner = CliRunner()


def _wfdb(tmp_path: Path, name: str = "rec") -> Path:
    write_ecg(tmp_path / name, 0.5, np.random.default_rng(0))
    return tmp_path / f"{name}.hea"


def _set_fs(header: Path, fs_text: str) -> None:
    lines = header.read_text().splitlines()
    fields = lines[0].split()
    fields[2] = fs_text
    header.write_text("\n".join([" ".join(fields), *lines[1:]]) + "\n")


@pytest.mark.parametrize("fs", ["-500", "nan", "inf", "abc", "1e9", "1e400", "0.0001", "1.5e3"])
def test_a_wfdb_sampling_rate_is_never_guessed(tmp_path, fs):
    from e2r.ecg import read_ecg

    header = _wfdb(tmp_path)
    _set_fs(header, fs)
    with pytest.raises(ECGReadError, match="sampling rate"):
        read_ecg(header)


def test_a_wfdb_header_without_a_rate_is_refused_not_read_as_250_hz(tmp_path):
    from e2r.ecg import read_ecg

    header = _wfdb(tmp_path)
    lines = header.read_text().splitlines()
    fields = lines[0].split()
    header.write_text("\n".join([" ".join(fields[:2]), *lines[1:]]) + "\n")  # name and n_sig only
    with pytest.raises(ECGReadError, match="sampling rate"):
        read_ecg(header)


def test_a_two_sample_record_is_refused(tmp_path):
    import wfdb

    from e2r.ecg import read_ecg

    sig = np.zeros((2, 12)) + np.arange(12)
    wfdb.wrsamp("short", fs=500, units=["mV"] * 12, sig_name=["I", "II", "III", "aVR", "aVL", "aVF",
                "V1", "V2", "V3", "V4", "V5", "V6"], p_signal=sig, fmt=["16"] * 12, write_dir=str(tmp_path))
    with pytest.raises(ECGReadError, match=r"2 samples .* at least 1 s"):
        read_ecg(tmp_path / "short.hea")


def test_a_header_cut_inside_its_last_line_is_a_named_error(tmp_path):
    from e2r.ecg import read_ecg

    header = _wfdb(tmp_path)
    text = header.read_text()
    header.write_text(text[: text.rstrip().rfind(" ") + 1])  # the last lead's name cut off
    with pytest.raises(ECGReadError):
        read_ecg(header)


def test_resampling_refuses_an_absurd_rate_before_allocating():
    from e2r.ecg.preprocess import resample

    with pytest.raises(ECGReadError, match="sampling rate"):
        resample(np.zeros((12, 10)), 0.0001, 100.0)


def _dicom_ecg(tmp_path: Path):
    import pydicom
    import pydicom.examples

    ds = pydicom.dcmread(pydicom.examples.get_path("waveform"))
    return ds, tmp_path / "ecg.dcm"


def test_a_blank_dicom_ecg_unit_is_not_read_as_mv(tmp_path):
    from e2r.ecg import read_ecg

    ds, path = _dicom_ecg(tmp_path)
    for ch in ds.WaveformSequence[0].ChannelDefinitionSequence:
        ch.ChannelSensitivityUnitsSequence[0].CodeValue = ""
    ds.save_as(path)
    with pytest.raises(ECGReadError, match="no signal unit"):
        read_ecg(path)


def test_a_dicom_ecg_units_item_without_code_value_is_a_named_error(tmp_path):
    from e2r.ecg import read_ecg

    ds, path = _dicom_ecg(tmp_path)
    for ch in ds.WaveformSequence[0].ChannelDefinitionSequence:
        del ch.ChannelSensitivityUnitsSequence[0].CodeValue
    ds.save_as(path)
    with pytest.raises(ECGReadError, match="no signal unit"):
        read_ecg(path)


def _echo(tmp_path: Path, name: str = "v.dcm", **tags) -> Path:
    import pydicom

    path = write_us_dicom(tmp_path / name, np.full((4, 32, 32), 90, np.uint8), study_uid="1.2.3.4")
    if tags:
        ds = pydicom.dcmread(path)
        for tag, value in tags.items():
            if value is None:
                ds[tag].value = None
            else:
                setattr(ds, tag, value)
        ds.save_as(path)
    return path


@pytest.mark.parametrize("tags,match", [
    ({"Rows": None}, "Rows is None"),
    ({"Columns": [32, 32]}, "Columns is"),
    ({"Rows": 1}, "Rows is 1"),
])
def test_broken_image_sizes_are_named_corrupt(tmp_path, tags, match):
    from e2r.echo import read_video_header

    with pytest.raises(DicomReadError, match=match) as err:
        read_video_header(_echo(tmp_path, **tags))
    assert err.value.reason == "corrupt"


def test_pixel_data_longer_than_the_header_says_is_refused(tmp_path):
    import pydicom

    from e2r.echo import read_video_header

    path = _echo(tmp_path)
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData + bytes(32 * 32)  # one frame more than NumberOfFrames says
    ds.save_as(path)
    with pytest.raises(DicomReadError, match="header does not describe the pixels"):
        read_video_header(path)


def test_ultrasound_regions_that_are_not_a_sequence_fall_back_to_a_centre_crop(tmp_path):
    import pydicom
    from pydicom.dataelem import DataElement

    from e2r.echo import decode_video, read_video_header

    path = _echo(tmp_path)
    ds = pydicom.dcmread(path)
    ds.add(DataElement(0x00186011, "LO", "not a sequence"))  # SequenceOfUltrasoundRegions
    ds.save_as(path)
    info = read_video_header(path)
    assert info.region is None
    assert decode_video(info, n_frames=4, size=(16, 16)).shape == (4, 16, 16)


def test_a_zero_study_date_reads_as_no_date(tmp_path):
    from e2r.echo import read_video_header

    assert read_video_header(_echo(tmp_path, StudyDate="00000000")).study_date == ""


def test_bad_names_and_dates_never_stop_an_index_run(tmp_path, tiny_bundle, monkeypatch):
    """A Latin-1 file name and a 00000000 StudyDate beside a good study: all three are indexed."""
    import indexer.pipeline as pipeline
    from e2r.bundle import load_model
    from e2r.store import open_store
    from indexer.config import IndexConfig

    monkeypatch.setattr(pipeline, "DEFAULT_HOME", tmp_path / "home")  # the salt lands here, not in ~
    archive = tmp_path / "archive"
    archive.mkdir()
    frames = np.full((8, 32, 32), 70, np.uint8)
    write_us_dicom(archive / "good.dcm", frames, study_uid="1.2.3.1")
    write_us_dicom(Path(os.fsdecode(bytes(archive) + b"/caf\xe9.dcm")), frames, study_uid="1.2.3.2")
    _echo(archive, "zero-date.dcm", StudyDate="00000000")  # study 1.2.3.4
    with open_store(tmp_path / "home") as store:
        summary = pipeline.index_archive(IndexConfig(archive=archive, model_dir=tiny_bundle, collection="c",
                                                     progress=False, workers=0), store, load_model(tiny_bundle))
        assert (summary.indexed, summary.failed) == (3, 0)
        payloads = {r.payload["study_uid"]: r.payload for r in store.iterate("c")}
    assert "study_date" not in payloads["1.2.3.4"]
    assert any("\\xe9" in p for p in payloads["1.2.3.2"]["source_paths"])
    assert (tmp_path / "home" / "patient_salt").is_file()  # hashed with a salt even without salt_path


def test_patient_ids_are_never_hashed_without_a_salt():
    from indexer.payload import hash_patient_id

    with pytest.raises(ValueError, match="salt"):
        hash_patient_id("P001", b"")


def test_no_phi_in_the_index_the_logs_or_a_json_document(tmp_path, tiny_bundle, caplog):
    import logging

    import pydicom

    archive = tmp_path / "archive"
    path = write_us_dicom(archive / "v.dcm", np.full((8, 32, 32), 70, np.uint8), study_uid="1.2.3.9")
    ds = pydicom.dcmread(path)
    ds.PatientName, ds.PatientBirthDate = "Doe^Jane", "19500101"
    ds.save_as(path)
    caplog.set_level(logging.DEBUG)
    home = tmp_path / "home"
    res = runner.invoke(app, ["index", str(archive), "--model", str(tiny_bundle), "--data-dir", str(home),
                              "--workers", "0", "--json"])
    assert res.exit_code == 0, res.output
    inspected = runner.invoke(app, ["inspect", str(path), "--json"])
    from e2r.store import open_store

    with open_store(home) as store:
        stored = json.dumps([r.payload for r in store.iterate("echo_studies")])
    for text in (res.output, inspected.output, stored, caplog.text):
        assert "Doe" not in text and "Jane" not in text and "19500101" not in text


def test_json_documents_are_strict(capsys):
    from e2r.cli.common import print_json

    print_json({"fs": float("nan"), "d": float("inf"), "ok": 1.5, "arr": np.array([np.nan, 2.0])})
    doc = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert doc == {"fs": None, "d": None, "ok": 1.5, "arr": [None, 2.0]}


def test_inspect_decodes_what_the_indexer_decodes(tmp_path):
    from e2r.presets import get_preset

    res = runner.invoke(app, ["inspect", str(_echo(tmp_path)), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["decodes"] is True and doc["decoded_frames"] == get_preset("tiny").echo.n_frames


def test_unknown_or_empty_splits_are_refused(tmp_path):
    from e2r.pairs import read_pairs

    for split in ("training", ""):
        (tmp_path / "pairs.csv").write_text(f"ecg_path,study_uid,patient_id,split\n,1.2.3,P1,{split}\n")
        with pytest.raises(DataError, match=r"pairs.csv:2: split .* is not one of train, val, test"):
            read_pairs(tmp_path / "pairs.csv")


def test_an_unreadable_phenotype_csv_is_one_line(tmp_path):
    from e2r.phenotypes import read_phenotypes

    path = tmp_path / "phenotypes.csv"
    path.write_bytes(b"study_uid,lvef\n1.2.3,\xff\xfe50\n")
    with pytest.raises(DataError, match="cannot read the phenotype CSV"):
        read_phenotypes(path)


def test_a_batch_search_never_stops_and_never_leaves_a_partial_file(tmp_path, tiny_bundle, monkeypatch):
    from queries.search import Searcher

    archive = tmp_path / "archive"
    write_us_dicom(archive / "v.dcm", np.full((8, 32, 32), 70, np.uint8), study_uid="1.2.3.7")
    home = tmp_path / "home"
    assert runner.invoke(app, ["index", str(archive), "--model", str(tiny_bundle), "--data-dir", str(home),
                               "--workers", "0"]).exit_code == 0
    ecgs = tmp_path / "ecgs"
    ecgs.mkdir()
    for name in ("a", "b"):
        _wfdb(ecgs, name)
    bad = _wfdb(ecgs, "c")
    _set_fs(bad, "nan")
    out = tmp_path / "results.jsonl"
    res = runner.invoke(app, ["search", str(ecgs), "--out", str(out), "--data-dir", str(home)])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 3 and sum("error" in x for x in lines) == 1
    previous = out.read_text()

    def dies(self, paths, **kw):
        yield str(paths[0]), None, "first"
        raise KeyboardInterrupt

    monkeypatch.setattr(Searcher, "search_many", dies)
    runner.invoke(app, ["search", str(ecgs), "--out", str(out), "--data-dir", str(home)])
    assert out.read_text() == previous  # the interrupted run left the old results in place


def test_a_valid_deflated_video_reads_and_a_fake_one_is_named(tmp_path):
    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from e2r.echo import decode_video, read_video_header

    path = _echo(tmp_path)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    deflated = tmp_path / "deflated.dcm"
    ds.save_as(deflated, enforce_file_format=True)
    info = read_video_header(deflated)
    assert decode_video(info, n_frames=4, size=(16, 16)).shape == (4, 16, 16)
    # a header that claims deflate over a body that is not deflated
    raw = bytearray(path.read_bytes())
    uid = b"1.2.840.10008.1.2.1\x00"
    at = raw.find(uid)
    assert at > 0
    fake = tmp_path / "fake.dcm"
    fake.write_bytes(bytes(raw[:at]) + b"1.2.840.10008.1.2.1.99" + bytes(raw[at + len(uid) + 3:]))
    with pytest.raises(DicomReadError) as err:
        read_video_header(fake)
    assert err.value.reason == "corrupt"
