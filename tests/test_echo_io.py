"""Echo archive reading: headers, views, regions, decoding (grey/RGB/YBR/JPEG), sampling, scans, bad files.

`write_us_dicom` (tests/helpers/dicom.py) writes a tiny multi-frame ultrasound DICOM.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from e2r.echo import (
    ArchiveScan, VideoInfo, decode_video, parse_view, read_video_header, sample_indices, scan_archive,
)
from e2r.errors import ConfigError, DicomReadError

from helpers.dicom import (  # noqa: E402  (shared with other test files)
    write_other_dicom, write_us_dicom,
)


def _ramp_video(n: int = 12, h: int = 24, w: int = 32) -> np.ndarray:
    """Frame k is filled with the value 10 * k (so a decoded frame tells which source frame it was)."""
    return np.stack([np.full((h, w), 10 * k, np.uint8) for k in range(n)])


def _ybr_path() -> Path:
    import pydicom.examples

    return Path(pydicom.examples.get_path("ybr_color"))


# --- headers ----------------------------------------------------------------------------------

def test_header_of_synthetic_video(tmp_path):
    p = write_us_dicom(tmp_path / "v.dcm", _ramp_video(), region=(4, 2, 27, 21), frame_time_ms=20.0,
                       study_uid="1.2.3", sop_uid="1.2.3.4", patient_id="P9")
    info = read_video_header(p)
    assert isinstance(info, VideoInfo)
    assert (info.study_uid, info.sop_uid, info.patient_id, info.study_date) == ("1.2.3", "1.2.3.4", "P9", "20240102")
    assert info.series_uid and info.path == str(p)
    assert (info.n_frames, info.rows, info.cols) == (12, 24, 32)
    assert info.frame_time_ms == pytest.approx(20.0) and info.fps == pytest.approx(50.0)
    assert info.view == "A4C"
    assert info.photometric == "MONOCHROME2" and info.transfer_syntax == "1.2.840.10008.1.2.1"
    assert info.region == (4, 2, 27, 21)


def test_view_from_view_code_sequence_and_none(tmp_path):
    p = write_us_dicom(tmp_path / "a.dcm", _ramp_video(3), series_description=None,
                       view_code_meaning="Parasternal long axis")
    assert read_video_header(p).view == "PLAX"
    q = write_us_dicom(tmp_path / "b.dcm", _ramp_video(3), series_description="Echo", frame_time_ms=None)
    info = read_video_header(q)
    assert info.view is None and info.frame_time_ms is None and info.fps is None


@pytest.mark.parametrize("text, label", [
    ("A4C", "A4C"), ("apical 4 chamber", "A4C"), ("Apical four-chamber view", "A4C"), ("AP4_zoom", "A4C"),
    ("A2C", "A2C"), ("Apical 2CH", "A2C"), ("a3c", "A3C"), ("APLAX", "A3C"), ("A5C", "A5C"),
    ("PLAX", "PLAX"), ("Parasternal long axis", "PLAX"), ("PSAX mid papillary", "PSAX"),
    ("parasternal short axis", "PSAX"), ("Subcostal 4 chamber", "SUBCOSTAL"), ("SSN arch", "SUPRASTERNAL"),
    ("", None), ("Doppler MV", None), ("Echo study", None),
])
def test_parse_view(text, label):
    assert parse_view(text) == label


def test_region_slightly_outside_is_clipped(tmp_path):
    p = write_us_dicom(tmp_path / "v.dcm", _ramp_video(2), region=(3, 1, 33, 25))  # image 24x32
    assert read_video_header(p).region == (3, 1, 31, 23)


def test_real_echo_cine_header_region_inside_image():
    info = read_video_header(_ybr_path())
    assert (info.n_frames, info.rows, info.cols) == (30, 240, 320)
    assert info.photometric == "YBR_FULL_422" and info.transfer_syntax == "1.2.840.10008.1.2.4.50"
    assert info.frame_time_ms == pytest.approx(33.333)
    # The file's region (84, 31, 595, 414) is in 480x640 coordinates: scaled 1/2 it frames the sector.
    assert info.region == (42, 15, 297, 207)
    x0, y0, x1, y1 = info.region
    assert 0 <= x0 < x1 < info.cols and 0 <= y0 < y1 < info.rows


# --- decoding ---------------------------------------------------------------------------------

def test_sample_indices_stride_fps_and_loop():
    assert sample_indices(10, 4).tolist() == [0, 1, 2, 3]
    assert sample_indices(10, 4, stride=2).tolist() == [0, 2, 4, 6]
    assert sample_indices(10, 4, src_fps=50.0, fps=25.0).tolist() == [0, 2, 4, 6]
    assert sample_indices(10, 3, src_fps=30.0, fps=20.0).tolist() == [0, 2, 3]
    assert sample_indices(5, 8).tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert sample_indices(10, 3, src_fps=None, fps=25.0, stride=3).tolist() == [0, 3, 6]  # no frame time
    assert sample_indices(10, 3, src_fps=50.0, fps=25.0, stride=3).tolist() == [0, 2, 4]  # fps wins


def test_decode_grey_samples_at_target_fps_and_loops(tmp_path):
    p = write_us_dicom(tmp_path / "v.dcm", _ramp_video(12), frame_time_ms=20.0)  # 50 fps
    out = decode_video(p, n_frames=4, size=(8, 8), fps=25.0)
    assert out.shape == (4, 8, 8) and out.dtype == np.uint8
    assert out.mean(axis=(1, 2)).round().tolist() == [0, 20, 40, 60]  # source frames 0, 2, 4, 6
    out = decode_video(read_video_header(p), n_frames=5, size=(8, 8), stride=3)
    assert out.mean(axis=(1, 2)).round().tolist() == [0, 30, 60, 90, 0]  # frames 0,3,6,9 then loop


def _with_tags(path: Path, **tags) -> Path:
    import pydicom

    ds = pydicom.dcmread(path)
    for k, v in tags.items():
        if v is None:
            delattr(ds, k)
        else:
            setattr(ds, k, v)
    ds.save_as(path)
    return path


@pytest.mark.parametrize("frame_time_ms", [1e-300, 1e300, 100000.0, 0.0001, 0.04])
def test_an_implausible_frame_time_is_ignored_with_a_note_not_believed(tmp_path, frame_time_ms):
    """Issue 20 #8: FrameTime 1e-300 ms once read as 1e303 fps and sampled a frozen clip."""
    p = write_us_dicom(tmp_path / "v.dcm", _ramp_video(16), frame_time_ms=frame_time_ms)
    info = read_video_header(p)
    assert info.fps is None and info.frame_time_ms is None
    assert "outside 5-2000 fps" in info.notes[0] and "sampled by stride" in info.notes[-1]
    clip = decode_video(info, n_frames=16, size=(8, 8), fps=16.0)
    assert len({int(m) for m in clip.mean(axis=(1, 2)).round()}) == 16  # consecutive frames, not frozen


def test_frame_timing_falls_back_to_the_next_plausible_tag(tmp_path):
    p = write_us_dicom(tmp_path / "v.dcm", _ramp_video(16), frame_time_ms=1e300)
    _with_tags(p, CineRate=99999999, RecommendedDisplayFrameRate=50)
    info = read_video_header(p)
    assert info.fps == pytest.approx(50.0)
    assert [n.split()[0] for n in info.notes] == ["FrameTime", "CineRate", "frame"]
    assert info.notes[-1] == "frame time from RecommendedDisplayFrameRate 50 fps"
    # one absurd FrameTimeVector interval does not set the rate: the median of the plausible ones does
    q = write_us_dicom(tmp_path / "q.dcm", _ramp_video(16), frame_time_ms=None)
    _with_tags(q, FrameTimeVector=["0"] + ["20"] * 13 + ["25", "1e300"])
    info = read_video_header(q)
    assert info.fps == pytest.approx(50.0) and "1 of 15 FrameTimeVector intervals" in info.notes[0]
    # a plausible FrameTime needs no note, and its fallbacks are not looked at
    r = write_us_dicom(tmp_path / "r.dcm", _ramp_video(16), frame_time_ms=1.0)  # 1000 fps: real HFR
    assert read_video_header(_with_tags(r, CineRate=99999999)).notes == ()


@pytest.mark.parametrize("photometric", ["YBR_FULL", "YBR_FULL_422"])
def test_grey_jpeg_labelled_ybr_decodes_as_grey_in_rgb(tmp_path, photometric):
    """Issue 20 #8: Pillow's 'Invalid mode for data type' once escaped decode_video(color="rgb")."""
    p = write_us_dicom(tmp_path / "v.dcm", _ramp_video(4), jpeg=True)
    _with_tags(p, PhotometricInterpretation=photometric)
    rgb = decode_video(p, n_frames=4, size=(8, 8), color="rgb")
    grey = decode_video(p, n_frames=4, size=(8, 8), color="grey")
    assert rgb.shape == (4, 8, 8, 3)
    assert (rgb == rgb[..., :1]).all()  # grey in every channel
    assert np.abs(rgb[..., 0].astype(int) - grey).max() <= 2


def test_decode_crops_to_region_else_centre(tmp_path):
    frames = np.full((3, 24, 32), 50, np.uint8)
    frames[:, 4:20, 8:24] = 200  # a 16x16 "sector"
    p = write_us_dicom(tmp_path / "r.dcm", frames, region=(8, 4, 23, 19))
    out = decode_video(p, n_frames=2, size=(16, 16))
    assert out.min() >= 195
    centre = np.zeros((3, 24, 48), np.uint8)
    centre[:, :, 12:36] = 120  # centre 24x24 square is bright, the side strips black
    q = write_us_dicom(tmp_path / "c.dcm", centre)
    out = decode_video(q, n_frames=1, size=(12, 12))
    assert out.min() >= 115


def test_wide_region_is_padded_not_stretched(tmp_path):
    frames = np.zeros((2, 24, 32), np.uint8)
    frames[:, 4:12, 0:32] = 200
    p = write_us_dicom(tmp_path / "w.dcm", frames, region=(0, 4, 31, 11))  # 32 wide, 8 tall
    out = decode_video(p, n_frames=1, size=(32, 32))[0]
    assert out[:10].max() < 10 and out[-10:].max() < 10  # black bars top and bottom
    assert out[14:18].min() > 190


def _colour_frames(n: int = 3) -> np.ndarray:
    f = np.zeros((n, 16, 24, 3), np.uint8)
    f[:, :, :8] = (200, 30, 30)
    f[:, :, 8:16] = (30, 180, 40)
    f[:, :, 16:] = (40, 50, 210)
    return f


@pytest.mark.parametrize("kind", ["RGB", "YBR_FULL", "jpeg"])
def test_colour_decodes_to_rgb_and_luma(tmp_path, kind):
    frames = _colour_frames()
    p = write_us_dicom(tmp_path / "c.dcm", frames, photometric=None if kind == "jpeg" else kind,
                       jpeg=kind == "jpeg")
    tol = 12 if kind == "jpeg" else 2
    rgb = decode_video(p, n_frames=2, size=(16, 24), color="rgb")
    assert rgb.shape == (2, 16, 24, 3)
    # compare the middle of each colour band (away from resampling/JPEG edges)
    for x, colour in ((3, (200, 30, 30)), (12, (30, 180, 40)), (20, (40, 50, 210))):
        assert np.abs(rgb[:, 4:12, x].astype(int) - colour).max() <= tol, (kind, x)
    grey = decode_video(p, n_frames=2, size=(16, 24), color="grey")
    luma = 0.299 * 200 + 0.587 * 30 + 0.114 * 30
    assert grey.shape == (2, 16, 24) and abs(int(grey[:, 8, 3].mean()) - luma) <= tol


def test_jpeg_grey_decodes_only_sampled_frames(tmp_path, monkeypatch):
    import e2r.echo.decode as dec

    p = write_us_dicom(tmp_path / "j.dcm", _ramp_video(12), jpeg=True)
    info = read_video_header(p)
    assert info.transfer_syntax == "1.2.840.10008.1.2.4.50" and info.pixel_data_offset is not None
    decoded = []
    real = dec._jpeg_grey

    def spy(data, rows, cols, scale):
        decoded.append(scale)
        return real(data, rows, cols, scale)

    monkeypatch.setattr(dec, "_jpeg_grey", spy)
    out = decode_video(info, n_frames=3, size=(8, 8), stride=4)
    assert decoded == [1, 1, 1]  # frames 0, 4, 8 only (24 px -> 8 px: 1/2 would leave 12 < 2 x 8)
    assert np.abs(out.mean(axis=(1, 2)) - [0, 40, 80]).max() < 3


def _texture_video(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth speckle-like frames (what JPEG and resizing treat like an echo image)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (n, h // 8, w // 8), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC)) for f in small])


def _generic(monkeypatch, *args, **kw):
    """decode_video through pydicom's decoders (today's path before the direct JPEG one)."""
    import e2r.echo.decode as dec

    with monkeypatch.context() as m:
        m.setattr(dec, "_jpeg_direct", lambda info, mode: False)
        return decode_video(*args, **kw)


def _full_scale(monkeypatch, *args, **kw):
    """decode_video through the direct JPEG path, never in draft mode."""
    import e2r.echo.decode as dec

    with monkeypatch.context() as m:
        m.setattr(dec, "_draft_scale", lambda box, size: 1)
        return decode_video(*args, **kw)


@pytest.mark.parametrize("region", [None, (10, 6, 120, 90)])
def test_direct_jpeg_decode_equals_pydicoms_at_full_scale(tmp_path, monkeypatch, region):
    """Frame bytes decoded by Pillow directly (and cropped/padded for the whole stack at once)
    give exactly the pixels of pydicom's iter_pixels + per-frame crop/resize."""
    p = write_us_dicom(tmp_path / "t.dcm", _texture_video(20, 128, 128), jpeg=True, region=region)
    kw = dict(n_frames=16, size=(64, 64), fps=16.0, color="grey")
    np.testing.assert_array_equal(_full_scale(monkeypatch, p, **kw), _generic(monkeypatch, p, **kw))


def test_direct_jpeg_decode_of_ybr_colour_takes_the_luma_exactly(monkeypatch):
    p = _ybr_path()
    kw = dict(n_frames=8, size=(112, 112), fps=15.0, color="grey")
    np.testing.assert_array_equal(_full_scale(monkeypatch, p, **kw), _generic(monkeypatch, p, **kw))


def test_draft_scale_only_where_no_output_resolution_is_lost():
    from e2r.echo.decode import _draft_scale

    assert _draft_scale((0, 0, 127, 127), (64, 64)) == 1  # the phantom's 128 px frames: full scale
    assert _draft_scale((0, 0, 255, 255), (64, 64)) == 2
    assert _draft_scale((0, 0, 799, 599), (112, 112)) == 2  # 800 px: 400 >= 2 x 112, 200 is not
    assert _draft_scale((0, 0, 799, 599), (224, 224)) == 1
    assert _draft_scale((0, 0, 1023, 767), (64, 64)) == 8


@pytest.mark.parametrize("h, w, size, region", [(480, 640, (112, 112), None), (600, 800, (64, 64), (80, 40, 719, 559)),
                                               (256, 256, (64, 64), None), (768, 1024, (64, 64), None)])
def test_draft_mode_decode_matches_full_scale_within_tolerance(tmp_path, monkeypatch, h, w, size, region):
    """Decoding at 1/2-1/8 scale (libjpeg DCT scaling) then resizing, against decoding at full
    scale then resizing: mean absolute difference <= 1.5 grey levels, 99th percentile <= 6."""
    from e2r.echo.decode import _draft_scale

    p = write_us_dicom(tmp_path / "big.dcm", _texture_video(6, h, w, seed=1), jpeg=True, region=region)
    info = read_video_header(p)
    assert _draft_scale(info.region or (0, 0, w - 1, h - 1), size) > 1
    kw = dict(n_frames=4, size=size, stride=1, color="grey")
    fast = decode_video(p, **kw).astype(int)
    full = _generic(monkeypatch, p, **kw).astype(int)
    diff = np.abs(fast - full)
    assert diff.mean() <= 1.5 and np.percentile(diff, 99) <= 6, (diff.mean(), np.percentile(diff, 99))


def test_stack_crop_resize_equals_the_per_frame_one():
    from e2r.echo.decode import _crop_resize, _crop_resize_all

    frames = _texture_video(3, 96, 128)
    for box in ((0, 0, 127, 95), (5, 7, 100, 60), (30, 0, 60, 95)):
        for size in ((64, 64), (48, 80)):
            expected = np.stack([_crop_resize(f, box, size, "grey") for f in frames])
            np.testing.assert_array_equal(_crop_resize_all(frames, box, size, "grey"), expected)
    rgb = np.stack([frames] * 3, axis=-1)
    np.testing.assert_array_equal(_crop_resize_all(rgb, (5, 7, 100, 60), (32, 32), "rgb"),
                                  np.stack([_crop_resize(f, (5, 7, 100, 60), (32, 32), "rgb") for f in rgb]))


def test_real_echo_cine_decodes():
    p = _ybr_path()
    grey = decode_video(p, n_frames=16, size=(112, 112), fps=15.0)
    assert grey.shape == (16, 112, 112) and grey.dtype == np.uint8
    assert 2 < grey.mean() < 60 and grey.max() > 150  # dark background, bright tissue
    assert np.abs(grey[0].astype(int) - grey[1].astype(int)).mean() > 0.3  # it moves
    rgb = decode_video(p, n_frames=2, size=(64, 64), color="rgb")
    # A grey-scale ultrasound image: YBR->RGB done right gives nearly equal channels
    # (undecoded YBR would put Cb/Cr near 128).
    means = rgb.reshape(-1, 3).mean(axis=0)
    assert np.ptp(means) < 3 and means.max() < 60


def test_decode_option_errors(tmp_path):
    p = write_us_dicom(tmp_path / "v.dcm", _ramp_video(3))
    with pytest.raises(ConfigError, match="color"):
        decode_video(p, color="sepia")
    with pytest.raises(ConfigError, match="stride"):
        decode_video(p, stride=0)
    with pytest.raises(ConfigError, match="n_frames"):
        decode_video(p, n_frames=0)


def test_undecodable_pixels_raise_decode_failed(tmp_path):
    from pydicom import dcmread
    from pydicom.encaps import encapsulate

    p = write_us_dicom(tmp_path / "j.dcm", _ramp_video(3), jpeg=True)
    ds = dcmread(p)
    ds.PixelData = encapsulate([b"\xff\xd8 not really a jpeg " * 4] * 3)
    ds.save_as(p)
    with pytest.raises(DicomReadError, match="cannot be decoded") as err:
        decode_video(p, n_frames=2)
    assert err.value.reason == "decode_failed" and str(p) in str(err.value)


# --- bad input --------------------------------------------------------------------------------

def _truncate(path: Path, keep: int) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:len(data) + keep])
    return path


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    text = tmp_path / "notes.dcm"
    text.write_text("this is a text file, not DICOM\n" * 10)
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    trunc_raw = _truncate(write_us_dicom(tmp_path / "trunc_raw.dcm", _ramp_video(6)), -500)
    trunc_jpeg = _truncate(write_us_dicom(tmp_path / "trunc_jpeg.dcm", _ramp_video(6), jpeg=True), -100)
    trunc_head = _truncate(write_us_dicom(tmp_path / "trunc_head.dcm", _ramp_video(6)), 300)
    return {
        "not_dicom": text, "empty_file": empty,
        "other_modality": write_other_dicom(tmp_path / "ct.dcm", "ct"),
        "single_frame": write_other_dicom(tmp_path / "still.dcm", "single_frame_us"),
        "structured_report": write_other_dicom(tmp_path / "sr.dcm", "sr"),
        "corrupt": trunc_raw, "corrupt_jpeg": trunc_jpeg, "corrupt_header": trunc_head,
    }


@pytest.mark.parametrize("case", ["not_dicom", "empty_file", "other_modality", "single_frame",
                                  "structured_report", "corrupt", "corrupt_jpeg", "corrupt_header"])
def test_bad_input_raises_one_line_error(tmp_path, case):
    path = _bad_files(tmp_path)[case]
    for fn in (read_video_header, decode_video):
        with pytest.raises(DicomReadError) as err:
            fn(path)
        msg = str(err.value)
        assert err.value.reason == case.split("_jpeg")[0].split("_header")[0]
        assert str(path) in msg and "\n" not in msg and msg.rstrip().endswith(".")


# --- archive scans ----------------------------------------------------------------------------

def _archive(root: Path) -> Path:
    s1, s2 = "1.2.840.1.1", "1.2.840.1.2"
    write_us_dicom(root / "files/p10/p1000/s1/b_a2c.dcm", _ramp_video(4), study_uid=s1, sop_uid="9.1",
                   series_description="A2C")
    write_us_dicom(root / "files/p10/p1000/s1/a_a4c.dcm", _ramp_video(5), study_uid=s1, sop_uid="9.2")
    write_us_dicom(root / "files/p10/p1001/s2/IM0001", _ramp_video(3), study_uid=s2, sop_uid="9.3",
                   series_description="PLAX", patient_id="P002")  # no extension
    shutil.copy(root / "files/p10/p1001/s2/IM0001", root / "files/p10/p1001/s2/IM0001_copy")
    _bad_files(root / "junk")
    (root / "files" / ".DS_Store").write_bytes(b"\x00\x01")  # hidden: ignored
    return root


@pytest.mark.parametrize("workers", [1, 3])
def test_scan_archive_groups_studies_and_counts_skips(tmp_path, workers):
    scan = scan_archive(_archive(tmp_path), workers=workers)
    assert isinstance(scan, ArchiveScan)
    assert [s.study_uid for s in scan.studies] == ["1.2.840.1.1", "1.2.840.1.2"]
    s1, s2 = scan.studies
    assert [Path(v.path).name for v in s1.videos] == ["a_a4c.dcm", "b_a2c.dcm"]
    assert s1.views == ("A4C", "A2C") and s2.views == ("PLAX",)
    assert (s1.patient_id, s1.study_date, s2.patient_id) == ("P001", "20240102", "P002")
    assert scan.n_videos == 3 and scan.n_files == 4 + 8
    assert scan.skipped == {"corrupt": 3, "duplicate": 1, "empty_file": 1, "not_dicom": 1,
                            "other_modality": 1, "single_frame": 1, "structured_report": 1}
    assert len(scan.skipped_files) == 9
    for path, reason, message in scan.skipped_files:
        assert path in message and Path(path).exists()


def test_scan_archive_progress_and_not_a_folder(tmp_path, capsys, caplog):
    write_us_dicom(tmp_path / "a" / "v.dcm", _ramp_video(2))
    with caplog.at_level("INFO", logger="e2r.progress"):
        scan = scan_archive(tmp_path, progress=True)
    # stderr is captured, not a terminal: no bar, one summary line in the log (e2r/progress.py)
    assert scan.n_videos == 1 and "scanning: 1/1" in caplog.text and "\r" not in capsys.readouterr().err
    from e2r.errors import DataError

    with pytest.raises(DataError, match="not a folder"):
        scan_archive(tmp_path / "a" / "v.dcm")


def test_scan_survives_unexpected_reader_errors(tmp_path, monkeypatch):
    import e2r.echo.archive as echo_io

    good = write_us_dicom(tmp_path / "good.dcm", _ramp_video(2))
    write_us_dicom(tmp_path / "weird.dcm", _ramp_video(2))
    real = echo_io.read_video_header

    def flaky(path):
        if str(path).endswith("weird.dcm"):
            raise RuntimeError("reader bug")
        return real(path)

    monkeypatch.setattr(echo_io, "read_video_header", flaky)
    scan = scan_archive(tmp_path)
    assert scan.n_videos == 1 and scan.studies[0].videos[0].path == str(good)
    assert scan.skipped == {"unreadable": 1} and "reader bug" in scan.skipped_files[0][2]
