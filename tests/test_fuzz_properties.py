"""Property-based layer over the seeded fuzz suite (tests/test_fuzz.py): hypothesis draws the
values a header field can hold and the bytes a flip can write, shrinks any failure to its
smallest input, and the readers' contract is the same: success with sane values, or a named e2r
error. hypothesis was chosen over atheris because it runs inside pytest on CPython as is (no
instrumented build) and prints a minimal reproducing input; the seeded generator covers breadth,
hypothesis the values between its fixed choices. Plus: an archive of good and bad files indexes
every good study exactly once and counts the bad ones by reason."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from e2r.errors import E2RError
from helpers.cohort import write_ecg
from helpers.dicom import write_us_dicom

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def wfdb_seed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wfdb_seed")
    write_ecg(root / "rec", 0.4, np.random.default_rng(1))
    return root


@pytest.fixture(scope="module")
def echo_seed(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("echo_seed") / "v.dcm"
    rng = np.random.default_rng(2)
    return write_us_dicom(path, rng.integers(0, 255, (6, 32, 32), dtype=np.uint8), study_uid="1.2.3.5")


def _copy_record(seed: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in seed.iterdir():
        shutil.copy(f, dst / f.name)
    return dst / "rec.hea"


@SETTINGS
@given(fs=st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.text(alphabet="0123456789.e+-naif", min_size=1, max_size=8)))
def test_any_written_sampling_rate_is_read_right_or_refused(wfdb_seed, tmp_path_factory, fs):
    from e2r.ecg import read_ecg
    from e2r.ecg.record import FS_RANGE

    header = _copy_record(wfdb_seed, tmp_path_factory.mktemp("fs"))
    lines = header.read_text().splitlines()
    fields = lines[0].split()
    fields[2] = fs.replace(" ", "")
    header.write_text("\n".join([" ".join(fields), *lines[1:]]) + "\n")
    try:
        rec = read_ecg(header)
    except E2RError:
        return
    assert FS_RANGE[0] <= rec.fs <= FS_RANGE[1] and math.isclose(rec.fs, float(fields[2]), rel_tol=1e-6)
    assert not np.isinf(rec.signal).any()


@SETTINGS
@given(flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=6))
def test_byte_flips_in_an_echo_video_give_a_video_or_a_named_error(echo_seed, tmp_path_factory, flips):
    from e2r.echo import decode_video, read_video_header

    data = bytearray(echo_seed.read_bytes())
    for where, value in flips:
        data[min(int(where * len(data)), len(data) - 1)] = value
    path = tmp_path_factory.mktemp("flip") / "v.dcm"
    path.write_bytes(bytes(data))
    try:
        clip = decode_video(read_video_header(path), n_frames=4, size=(16, 16))
    except E2RError:
        return
    assert clip.shape == (4, 16, 16) and clip.dtype == np.uint8


@SETTINGS
@given(count=st.text(alphabet="0123456789-abc.", min_size=1, max_size=6))
def test_any_written_sample_count_is_read_right_or_refused(wfdb_seed, tmp_path_factory, count):
    from e2r.ecg import read_ecg

    header = _copy_record(wfdb_seed, tmp_path_factory.mktemp("n"))
    lines = header.read_text().splitlines()
    fields = lines[0].split()
    fields[3] = count
    header.write_text("\n".join([" ".join(fields), *lines[1:]]) + "\n")
    try:
        rec = read_ecg(header)
    except E2RError:
        return
    assert count.isdigit() and rec.signal.shape[1] == int(count)


def test_an_archive_of_good_and_bad_files_indexes_every_good_study_once(tmp_path, tiny_bundle, monkeypatch):
    """Good studies beside the fuzz suite's broken echo files: each good study is indexed exactly
    once (a second run adds nothing), and every bad file is counted under a reason."""
    import indexer.pipeline as pipeline
    from e2r.bundle import load_model
    from e2r.echo import scan_archive
    from e2r.store import open_store
    from helpers.fuzz import materialize, plan_cases
    from indexer.config import IndexConfig

    monkeypatch.setattr(pipeline, "DEFAULT_HOME", tmp_path / "home")
    archive = tmp_path / "archive"
    rng = np.random.default_rng(3)
    good = [f"1.2.826.0.1.999.{i}" for i in range(4)]
    for i, uid in enumerate(good):
        for v in range(2):
            write_us_dicom(archive / f"good{i}" / f"v{v}.dcm", rng.integers(0, 255, (8, 32, 32), dtype=np.uint8),
                           study_uid=uid)
    bad = [c for c in plan_cases(0) if c.kind == "echo" and c.expect == "error"][::12][:25]
    for spec in bad:
        materialize(spec, archive / "bad")
    scan = scan_archive(archive)
    assert sum(scan.skipped.values()) >= 1 and all(reason for reason in scan.skipped)
    loaded = load_model(tiny_bundle)
    cfg = IndexConfig(archive=archive, model_dir=tiny_bundle, collection="mixed", progress=False, workers=0)
    with open_store(tmp_path / "home") as store:
        first = pipeline.index_archive(cfg, store, loaded)
        second = pipeline.index_archive(cfg, store, loaded)
        uids = [r.payload["study_uid"] for r in store.iterate("mixed")]
    assert set(good) <= set(uids) and len(uids) == len(set(uids))  # every good study, exactly once
    assert second.indexed == 0 and second.unchanged == first.total_in_collection
    assert first.failed + sum(first.skipped_files.values()) >= 1  # the bad files were counted, by reason
