"""Pairs CSV -> cached arrays -> dataset: missing inputs counted, too few pairs refused."""

from __future__ import annotations

import csv
import os
import shutil

import numpy as np
import pytest

from e2r.errors import DataError
from e2r.presets import get_preset
from trainer.augment import AugmentConfig
from trainer.config import make_train_config
from trainer.paired_data import load_paired_data, read_pairs, resolve_inputs
from trainer.batching import PairDataset, collate


@pytest.fixture(scope="module")
def cohort(tiny_cohort):
    return tiny_cohort


def _cfg(data, tmp_path, **kw):
    kw.setdefault("min_pairs", 4)
    return make_train_config(data, tmp_path / "out", cache_dir=str(tmp_path / "cache"),
                             progress=False, **kw)


def _append_rows(src_csv, dst_csv, rows):
    shutil.copy(src_csv, dst_csv)
    with open(dst_csv, "a", newline="") as fh:
        csv.writer(fh).writerows(rows)


def test_loads_cohort_folder(cohort, tmp_path):
    data = load_paired_data(_cfg(cohort, tmp_path), get_preset("tiny"))
    s = data.summary
    assert (s.train_pairs, s.val_pairs, s.skipped, s.val_source) == (9, 3, 0, "csv")
    assert data.ecg.shape[1:] == (12, 1000) and data.ecg.dtype == np.float32
    assert data.videos.shape[1:] == (16, 64, 64) and data.videos.dtype == np.uint8
    assert s.videos == len(data.videos) and data.videos.max() > 0


def test_missing_record_and_study_are_counted_and_training_data_kept(cohort, tmp_path):
    pairs = tmp_path / "pairs.csv"
    uid0 = read_pairs(cohort / "pairs.csv")[0].study_uid
    _append_rows(cohort / "pairs.csv", pairs, [
        ["ecg/does_not_exist", uid0, "P9990", 0, "train"],           # missing ECG record
        ["ecg/p0000", "1.2.3.404", "P9991", 0, "train"],               # study not in archive
        ["", uid0, "P0000", "", "train"],                              # unpaired archive study
        ["ecg/p0001", "1.2.3.77", "P9992", 0, "test"],                  # test rows are not used
    ])
    (tmp_path / "ecg").mkdir()
    (tmp_path / "ecg" / "broken.hea").write_text("this is not a header\n")
    with open(pairs, "a", newline="") as fh:
        csv.writer(fh).writerow(["ecg/broken", uid0, "P9993", 0, "train"])  # unreadable ECG
    # The copied CSV's relative ECG paths point next to it: link the cohort's records there.
    for f in (cohort / "ecg").iterdir():
        os.symlink(f, tmp_path / "ecg" / f.name)
    data = load_paired_data(_cfg(pairs, tmp_path, archive=str(cohort / "echo")), get_preset("tiny"))
    s = data.summary
    assert (s.missing_ecg, s.missing_study, s.unreadable_ecg) == (1, 1, 1)
    assert (s.unpaired_rows, s.test_rows, s.skipped) == (1, 1, 3)
    assert (s.train_pairs, s.val_pairs) == (9, 3)
    assert any("does_not_exist" in e for e in s.examples)
    assert any("1.2.3.404" in e for e in s.examples)
    assert s.to_dict()["skipped"] == 3


def test_a_patient_in_two_splits_is_refused_in_one_line(cohort, tmp_path):
    pairs = tmp_path / "pairs.csv"
    uid0 = read_pairs(cohort / "pairs.csv")[0].study_uid
    _append_rows(cohort / "pairs.csv", pairs, [["ecg/p0001", uid0, "P9992", 0, "test"]])
    with pytest.raises(DataError, match=r"study .* is in several splits \(test, train\).*split by patient"):
        load_paired_data(_cfg(pairs, tmp_path, archive=str(cohort / "echo")), get_preset("tiny"))


def test_too_few_pairs_is_a_clear_error(cohort, tmp_path):
    with pytest.raises(DataError, match=r"only 9 usable training pairs.*--min-pairs"):
        load_paired_data(_cfg(cohort, tmp_path, min_pairs=50), get_preset("tiny"))


def test_no_val_rows_holds_out_patients(cohort, tmp_path):
    pairs = tmp_path / "pairs.csv"
    text = (cohort / "pairs.csv").read_text().replace(",val", ",train")
    pairs.write_text(text)
    os.symlink(cohort / "ecg", tmp_path / "ecg")
    data = load_paired_data(_cfg(pairs, tmp_path, archive=str(cohort / "echo"), val_fraction=0.25),
                            get_preset("tiny"))
    assert data.summary.val_pairs == 3 and data.summary.train_pairs == 9
    assert data.summary.val_source.startswith("held out")
    assert not {p.patient_id for p in data.val} & {p.patient_id for p in data.train}


def test_cache_is_reused(cohort, tmp_path):
    cfg = _cfg(cohort, tmp_path)
    load_paired_data(cfg, get_preset("tiny"))
    files = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(files) == 2
    stamps = [f.stat().st_mtime_ns for f in files]
    load_paired_data(cfg, get_preset("tiny"))
    assert sorted((tmp_path / "cache").glob("*.npy")) == files
    assert [f.stat().st_mtime_ns for f in files] == stamps


def test_bad_inputs(tmp_path, cohort):
    with pytest.raises(DataError, match="no such file"):
        resolve_inputs(tmp_path / "nope", None)
    with pytest.raises(DataError, match="no pairs.csv"):
        resolve_inputs(tmp_path, None)
    bad = tmp_path / "bad.csv"
    bad.write_text("ecg,study\n1,2\n")
    with pytest.raises(DataError, match="missing column"):
        read_pairs(bad)


def test_dataset_items_and_collate(cohort, tmp_path):
    data = load_paired_data(_cfg(cohort, tmp_path), get_preset("tiny"))
    aug = AugmentConfig()
    ds = PairDataset(data, data.train, train=True, augment=aug, seed=0, max_videos=2)
    ds.set_epoch(3)
    a, b = ds[0], ds[0]
    np.testing.assert_array_equal(a["ecg"], b["ecg"])  # reproducible per (seed, epoch, item)
    ds.set_epoch(4)
    assert not np.array_equal(ds[0]["ecg"], a["ecg"])
    assert all(len(ds[i]["videos"]) <= 2 for i in range(len(ds)))
    batch = collate([ds[i] for i in range(4)])
    assert batch["ecg"].shape == (4, 12, 1000)
    assert batch["videos"].shape[0] == 4 and batch["videos"].shape[2:] == (16, 64, 64)
    assert batch["mask"].sum(1).tolist() == [len(ds[i]["videos"]) for i in range(4)]
    single = PairDataset(data, data.train, train=True, augment=aug, seed=0, max_videos=8,
                         single_view=True)
    assert all(len(single[i]["videos"]) == 1 for i in range(len(single)))
    val = PairDataset(data, data.val, train=False, augment=aug, seed=0, max_videos=8)
    np.testing.assert_array_equal(val[0]["ecg"], data.ecg[data.val[0].ecg_row])


def test_frozen_echo_encoder_caches_view_embeddings(cohort, tmp_path):
    """With a frozen video encoder (EchoPrime) the data set holds per-video embeddings."""
    from e2r.models import Echo2ECG
    from e2r.presets import with_overrides

    preset = with_overrides(get_preset("tiny"), echo__size=(32, 32), echo__n_frames=8)

    class Frozen(Echo2ECG):
        video_encoder_frozen = True

    model = Frozen(preset)
    cfg = _cfg(cohort, tmp_path)
    data = load_paired_data(cfg, preset, embedder=model)
    assert data.videos is None and data.view_emb.shape == (data.summary.videos, preset.echo.out_dim)
    assert any((tmp_path / "cache").glob("viewemb-*.npy"))
    again = load_paired_data(cfg, preset, embedder=model)
    np.testing.assert_array_equal(again.view_emb, data.view_emb)
    ds = PairDataset(data, data.train, train=True, augment=AugmentConfig(), seed=0, max_videos=8)
    batch = collate([ds[i] for i in range(3)])
    assert batch["view_emb"].shape[0] == 3 and batch["view_emb"].shape[2] == preset.echo.out_dim
    assert "videos" not in batch
