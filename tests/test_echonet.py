"""EchoNet-Dynamic: FileList.csv, AVI decoding (PyAV) and echo-tower pretraining on its videos.

The test writes its own tiny EchoNet-Dynamic folder: FileList.csv with the dataset's exact
columns, 112x112 AVIs of a beating phantom LV (its size follows EDV, its area change EF) written with PyAV,
one corrupt AVI, one bad row, TRAIN/VAL/TEST.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from e2r.datasets.echonet import FILELIST_COLUMNS, read_filelist, scan_filelist
from e2r.errors import DataError
from e2r.presets import get_preset, with_overrides

av = pytest.importorskip("av")  # installed by the test extra

PRESET = with_overrides(get_preset("tiny"), echo__size=(32, 32), echo__n_frames=8, echo__width=4,
                        ecg__depth=1)
FPS = 50
N_FRAMES = 40


def write_avi(path: Path, frames: np.ndarray, fps: int = FPS, codec: str = "mpeg4") -> None:
    """uint8 (F, H, W) grey frames -> an AVI file (MPEG-4 part 2 or MJPEG, as EchoNet's are)."""
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.repeat(f[..., None], 3, axis=-1), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def phantom_a4c(ef: float, rng: np.random.Generator, n: int = N_FRAMES, size: int = 112,
                edv: float = 120.0) -> np.ndarray:
    """A dark LV pool in a bright wall: its end-diastolic radius follows EDV, and its area shrinks
    by EF over a 1-s cycle; with speckle."""
    yy, xx = np.mgrid[:size, :size]
    dist = np.hypot(yy - size / 2, xx - size / 2)
    r_d = 18.0 + 16.0 * (edv - 70) / 110  # EDV 70-180 mL -> 18-34 px
    r_s = r_d * np.sqrt(1 - ef / 100)  # area ~ volume: ESA/EDA = 1 - EF
    out = []
    for k in range(n):
        phase = 0.5 - 0.5 * np.cos(2 * np.pi * k / FPS)
        r = r_d - (r_d - r_s) * phase
        img = np.where(dist < r, 20.0, np.where(dist < r + 10, 190.0, 40.0))
        out.append(np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8))
    return np.stack(out)


def write_echonet(root: Path, n_train: int = 14, n_val: int = 6, n_test: int = 2, seed: int = 0) -> dict:
    """A tiny EchoNet-Dynamic folder; returns what it wrote."""
    rng = np.random.default_rng(seed)
    (root / "Videos").mkdir(parents=True)
    rows = []
    splits = ["TRAIN"] * n_train + ["VAL"] * n_val + ["TEST"] * n_test
    for i, split in enumerate(splits):
        name = f"0X{1000 + i:016X}"
        ef = float(rng.uniform(20, 75))
        edv = float(rng.uniform(70, 180))
        esv = edv * (1 - ef / 100)
        write_avi(root / "Videos" / f"{name}.avi", phantom_a4c(ef, rng, edv=edv), codec="mjpeg" if i == 0 else "mpeg4")
        rows.append({"FileName": name, "EF": f"{ef:.4f}", "ESV": f"{esv:.4f}", "EDV": f"{edv:.4f}",
                     "FrameHeight": 112, "FrameWidth": 112, "FPS": FPS, "NumberOfFrames": N_FRAMES, "Split": split})
    corrupt = "0XDEADBEEFDEADBEEF"
    (root / "Videos" / f"{corrupt}.avi").write_bytes(b"RIFF\x10\x00\x00\x00AVI LIST" + bytes(range(256)) * 4)
    rows.insert(3, {**rows[3], "FileName": corrupt, "Split": "TRAIN"})
    bad = {**rows[4], "FileName": "0XBADROW", "EF": "n/a"}
    rows.insert(5, bad)
    with (root / "FileList.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(FILELIST_COLUMNS))
        w.writeheader()
        w.writerows(rows)
    return {"rows": rows, "corrupt": corrupt, "train": n_train + 1, "val": n_val, "test": n_test}


# 40 training and 20 validation videos, 12 epochs: with 14 and 6 for 6 epochs, val r(EDV) ranged
# 0.21-0.94 over training seeds 0-9 (a coin flip against 0.5); with these it ranged 0.80-0.96
# (`python tests/margins.py --only echonet`).
N_TRAIN, N_VAL, TOWER_EPOCHS = 40, 20, 12


@pytest.fixture(scope="module")
def echonet(tmp_path_factory):
    root = tmp_path_factory.mktemp("EchoNet-Dynamic")
    return root, write_echonet(root, n_train=N_TRAIN, n_val=N_VAL)


def test_filelist_reads_every_column_and_reports_bad_rows_by_line(echonet):
    root, wrote = echonet
    videos, errors = scan_filelist(root / "FileList.csv")
    assert len(videos) == wrote["train"] + wrote["val"] + wrote["test"]
    assert [e.line for e in errors] == [7] and "EF='n/a' is not a number" in errors[0].message
    assert str(root / "FileList.csv") in errors[0].message
    v = videos[0]
    first = wrote["rows"][0]
    assert v.file_name == first["FileName"] and not v.file_name.endswith(".avi")
    assert v.ef == pytest.approx(float(first["EF"])) and v.edv == pytest.approx(float(first["EDV"]))
    assert (v.fps, v.n_frames, v.height, v.width, v.split) == (50.0, N_FRAMES, 112, 112, "train")
    assert {x.split for x in videos} == {"train", "val", "test"}
    with pytest.raises(Exception):
        v.ef = 1.0  # frozen
    assert read_filelist(root / "FileList.csv") == videos


def test_filelist_missing_column_is_one_line_naming_file_column_and_found(tmp_path):
    path = tmp_path / "FileList.csv"
    path.write_text("FileName,EjectionFraction,ESV,EDV,FrameHeight,FrameWidth,FPS,NumberOfFrames,Split\n"
                    "0X1,50,40,80,112,112,50,100,TRAIN\n")
    with pytest.raises(DataError) as err:
        read_filelist(path)
    msg = str(err.value)
    assert str(path) in msg and "missing column(s) EF;" in msg and "columns found: FileName, EjectionFraction" in msg
    assert "\n" not in msg
    with pytest.raises(DataError, match="FileList.csv not found"):
        read_filelist(tmp_path / "nope" / "FileList.csv")


def test_filelist_odd_rows(tmp_path):
    path = tmp_path / "FileList.csv"
    path.write_text(",".join(FILELIST_COLUMNS) + "\n"
                    "0XA.avi,50,40,80,112,112,50,100,train\n"   # .avi tolerated, split in any case
                    "0XB,,,,112,112,50,100,VAL\n"                # no labels: None, still a video
                    "0XC,50,40,80,112,112,50,100,HOLDOUT\n"      # unknown split
                    "0XD,50,40,80,112,112,0,100,TEST\n"          # FPS 0
                    "0XA,50,40,80,112,112,50,100,TRAIN\n")       # duplicate
    videos, errors = scan_filelist(path)
    assert [v.file_name for v in videos] == ["0XA", "0XB"] and videos[1].ef is None and videos[1].split == "val"
    assert [e.line for e in errors] == [4, 5, 6]
    assert "Split 'HOLDOUT'" in errors[0].message and "FPS" in errors[1].message and "twice" in errors[2].message


def test_decode_avi_samples_frames_like_the_dicom_path(tmp_path):
    from e2r.echo import sample_indices
    from e2r.echo.avi import decode_avi

    frames = np.stack([np.full((112, 112), 6 * k, np.uint8) for k in range(N_FRAMES)])  # brightness = 6 x index
    for codec in ("mjpeg", "mpeg4"):
        path = tmp_path / f"ramp-{codec}.avi"
        write_avi(path, frames, codec=codec)
        every = decode_avi(path, n_frames=N_FRAMES, size=(32, 32), stride=1).mean(axis=(1, 2))
        np.testing.assert_allclose(every, np.arange(N_FRAMES) * 6, atol=8)  # (the codec's range mapping)
        assert np.all(np.diff(every) > 0)  # every frame decoded, in order
        out = decode_avi(path, n_frames=8, size=(32, 32), fps=25.0)
        assert out.shape == (8, 32, 32) and out.dtype == np.uint8
        want = sample_indices(N_FRAMES, 8, src_fps=FPS, fps=25.0)  # every 2nd frame
        np.testing.assert_array_equal(out.mean(axis=(1, 2)), every[want])
        wrapped = decode_avi(path, n_frames=8, size=(32, 32), stride=7)  # 0, 7, ... 35, then 2, 9 (loops)
        np.testing.assert_array_equal(wrapped.mean(axis=(1, 2)), every[sample_indices(N_FRAMES, 8, stride=7)])
        rgb = decode_avi(path, n_frames=20, size=(32, 32), color="rgb", stride=3)  # longer than the video: loops
        assert rgb.shape == (20, 32, 32, 3)
        np.testing.assert_allclose(rgb.mean(axis=(1, 2, 3)), every[sample_indices(N_FRAMES, 20, stride=3)], atol=2)


def test_decode_avi_bad_files_are_named_errors(tmp_path, echonet):
    from e2r.echo.avi import VideoReadError, decode_avi

    root, wrote = echonet
    with pytest.raises(VideoReadError) as err:
        decode_avi(root / "Videos" / f"{wrote['corrupt']}.avi")
    assert err.value.reason in ("corrupt", "no_video_stream") and wrote["corrupt"] in str(err.value)
    good = root / "Videos" / f"{wrote['rows'][0]['FileName']}.avi"
    (tmp_path / "cut.avi").write_bytes(good.read_bytes()[:500])
    (tmp_path / "empty.avi").write_bytes(b"")
    for name in ("cut.avi", "empty.avi"):
        with pytest.raises(VideoReadError, match="re-download"):
            decode_avi(tmp_path / name)
    with pytest.raises(VideoReadError, match="not found") as err:
        decode_avi(tmp_path / "absent.avi")
    assert err.value.reason == "missing"


def test_pyav_wheel_bundles_its_codecs():
    """The decoder brings FFmpeg's libraries in its wheel (no system ffmpeg needed)."""
    assert {"mjpeg", "mpeg4", "h264"} <= set(av.codecs_available)
    assert "libavcodec" in av.library_versions


def train_echonet_tower(root: Path, out: Path, seed: int = 0):
    """Pretrain the tower on an EchoNet folder as the tests do (tests/margins.py sweeps the seed)."""
    from trainer.config import make_train_config
    from trainer.echo_pretrain import ECHO_DEFAULTS, train_echo_tower

    cfg = make_train_config(root, out, defaults=ECHO_DEFAULTS, epochs=TOWER_EPOCHS, batch_size=8, progress=False,
                            warmup_epochs=0, cache_dir=str(out.parent / "cache"), seed=seed)
    return train_echo_tower(cfg, PRESET.echo, min_studies=4)


@pytest.fixture(scope="module")
def echonet_tower(echonet, tmp_path_factory):
    root, _ = echonet
    out = tmp_path_factory.mktemp("echonet-tower") / "tower"
    return out, train_echonet_tower(root, out)


def test_train_echo_on_echonet_learns_the_volume_and_skips_the_corrupt_video(echonet, echonet_tower):
    _, wrote = echonet
    out, result = echonet_tower
    meta = json.loads((out / "tower.json").read_text())
    assert meta["fields"] == ["lvef", "lvedv", "lvesv"]  # the other tower fields have no EchoNet label
    trained = meta["trained_on"]
    assert trained["failed_videos"] == 1 and trained["missing_videos"] == 0 and trained["bad_rows"] == 1
    assert trained["train_studies"] == wrote["train"] - 1 and trained["val_studies"] == wrote["val"]
    assert trained["test_videos_not_read"] == wrote["test"]
    assert set(meta["val_r_by_view"]) == {"A4C"}
    assert result.epochs == TOWER_EPOCHS and np.isfinite(result.best_metrics["val_loss"])
    # The pool's size in the AVI pixels follows EDV: labels and videos must reach the tower aligned.
    # (EF, the pool's area change, is not reliably learnt from 40 training videos: 0.27-0.79.)
    assert result.best_metrics["val_r_lvedv"] > 0.5, result.best_metrics


def test_echonet_tower_aligns_on_a_dicom_cohort(echonet_tower, tiny_cohort, tmp_path):
    """Pretrain on EchoNet, align on another (DICOM) cohort: the tower's decode settings apply."""
    from e2r.bundle import load_model
    from trainer.align import train
    from trainer.config import make_train_config

    out, result = echonet_tower
    cfg = make_train_config(tiny_cohort, tmp_path / "model", epochs=1, batch_size=4, min_pairs=4, progress=False,
                            warmup_epochs=0, cache_dir=str(tmp_path / "cache"), echo_encoder=str(out))
    train(cfg, preset=PRESET)
    loaded = load_model(tmp_path / "model")
    assert loaded.echo_tower_hash == result.bundle_hash and loaded.preset.echo.frozen


def test_train_echo_cli_on_an_echonet_folder(echonet, tmp_path):
    from e2r.cli import app

    root, _ = echonet
    runner = CliRunner()
    res = runner.invoke(app, ["train-echo", "--data", str(root), "--out", str(tmp_path / "t"), "--epochs", "1",
                              "--min-studies", "4", "--cache-dir", str(tmp_path / "c"), "--quiet", "--json",
                              "--workers", "2", "--batch-size", "8"])  # decode worker processes
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["echonet"] == str(root) and doc["failed_videos"] == 1 and doc["bad_rows"] == 1
    assert [f["field"] for f in doc["fields"]] == ["lvef", "lvedv", "lvesv"]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "FileList.csv").write_text("FileName,EF,Split\n0X1,50,TRAIN\n")
    res = runner.invoke(app, ["train-echo", "--data", str(broken), "--out", str(tmp_path / "t2"), "--quiet"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "missing column(s) ESV, EDV, FrameHeight" in res.output and "columns found: FileName, EF, Split" in res.output
