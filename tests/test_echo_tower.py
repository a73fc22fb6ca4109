"""Echo-tower pretraining, the tower folder, and alignment against the frozen tower."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from e2r.errors import BundleError, DataError, StoreError
from e2r.presets import get_preset, with_overrides
from trainer.config import make_train_config
from trainer.echo_pretrain import ECHO_DEFAULTS, train_echo_tower
from helpers.cohort import write_tiny_cohort

PRESET = with_overrides(get_preset("tiny"), echo__size=(32, 32), echo__n_frames=8, echo__width=4,
                        ecg__depth=1)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    write_tiny_cohort(root, patients=24, seed=7)
    return root


def _cfg(cohort, out, **kw):
    kw = {"epochs": 6, "batch_size": 8, "progress": False, "seed": 0, "warmup_epochs": 0, **kw}
    return make_train_config(cohort, out, defaults=ECHO_DEFAULTS, cache_dir=str(out.parent / "cache"), **kw)


@pytest.fixture(scope="module")
def tower(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("t") / "tower"
    result = train_echo_tower(_cfg(cohort, out), PRESET.echo, min_studies=4)
    return out, result


def test_tower_describes_itself(tower):
    from e2r.echo_tower import load_echo_tower

    out, result = tower
    meta = json.loads((out / "tower.json").read_text())
    assert meta["kind"] == "e2r-echo-tower" and meta["hash"] == result.bundle_hash
    assert meta["fields"] == ["lvef", "lvedv", "lvesv", "ivsd", "lvpwd", "la_volume", "rv_diameter"]
    assert set(meta["norm"]) == set(meta["fields"]) and all(sd > 0 for _, sd in meta["norm"].values())
    assert meta["trained_on"]["train_studies"] == 18 and meta["trained_on"]["val_studies"] == 6
    assert set(meta["val"]["lvef"]) == {"r", "mae", "study_r"}
    assert result.select_metric == "val_mean_r"
    lines = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and all("val_loss" in r and "val_mean_r" in r for r in lines)
    model, meta2 = load_echo_tower(out)
    assert meta2["hash"] == meta["hash"] and model.head.out_features == 7


# Enough studies and steps that learning is not a coin flip. The module's 24-patient tower (6
# validation studies, 30 steps) gave val r(LVEF) from -0.02 to 0.97 over training seeds 0-9;
# this run gave 0.973-0.992 (`python tests/margins.py --only tower`), so 0.8 leaves a margin of
# over 25 seed SDs for float differences between machines.
LEARNING_PATIENTS, LEARNING_EPOCHS, LEARNING_MIN_R = 96, 12, 0.8


def train_learning_tower(root, seed: int = 0, cohort_seed: int = 7):
    """Pretrain a tower on a 96-patient tiny cohort (24 validation studies) for 12 epochs."""
    if not (root / "cohort" / "pairs.csv").is_file():
        write_tiny_cohort(root / "cohort", patients=LEARNING_PATIENTS, seed=cohort_seed)
    return train_echo_tower(_cfg(root / "cohort", root / f"tower-seed{seed}", seed=seed, epochs=LEARNING_EPOCHS),
                            PRESET.echo, min_studies=4)


def test_tower_learns_the_measurements(tmp_path):
    # The disc radius in the videos follows the same latent as LVEF: the tower must find it.
    result = train_learning_tower(tmp_path)
    assert result.best_metrics["val_r_lvef"] > LEARNING_MIN_R, result.best_metrics


def test_pretraining_never_reads_test_studies(cohort, tmp_path):
    rows = list(csv.DictReader((cohort / "pairs.csv").open()))
    for r in rows[:6]:
        r["split"] = "test"
    copy = tmp_path / "pairs.csv"
    with copy.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    from trainer.echo_pretrain import load_echo_data

    cfg = make_train_config(copy, tmp_path / "o", defaults=ECHO_DEFAULTS, cache_dir=str(tmp_path / "c"),
                            phenotypes=str(cohort / "phenotypes.csv"), archive=str(cohort / "echo"), progress=False)
    data = load_echo_data(cfg, PRESET.echo, ("lvef",), min_studies=4)
    assert data.summary["train_studies"] + data.summary["val_studies"] == 18


def test_too_few_labelled_studies_is_one_clear_error(cohort, tmp_path):
    rows = list(csv.DictReader((cohort / "phenotypes.csv").open()))
    for r in rows[3:]:
        for f in ("lvef", "lvedv", "lvesv", "ivsd", "lvpwd", "la_volume", "rv_diameter"):
            r[f] = ""
    sparse = tmp_path / "sparse.csv"
    with sparse.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(DataError, match=r"(\d) labelled training studies.*\(21 studies carry none.*at least 20"):
        train_echo_tower(_cfg(cohort, tmp_path / "t", phenotypes=str(sparse)), PRESET.echo)


def test_tower_folder_problems_are_one_line(tower, tmp_path):
    from e2r.echo_tower import resolve_echo_encoder

    out, _ = tower
    with pytest.raises(BundleError, match="not an echo-tower folder"):
        resolve_echo_encoder(tmp_path)
    (tmp_path / "bundle.json").write_text("{}")
    with pytest.raises(BundleError, match="model bundle from `e2r train`, not a tower"):
        resolve_echo_encoder(tmp_path)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "tower.json").write_text((out / "tower.json").read_text())
    state = torch.load(out / "weights.pt", weights_only=True)
    state["head.bias"] = state["head.bias"] + 1
    torch.save(state, damaged / "weights.pt")
    with pytest.raises(BundleError, match="does not match tower.json"):
        resolve_echo_encoder(damaged)


def test_alignment_freezes_the_tower_and_records_it(cohort, tower, tmp_path):
    from e2r.bundle import load_model
    from e2r.echo_tower import load_echo_tower
    from trainer.align import train

    out, _ = tower
    cfg = make_train_config(cohort, tmp_path / "model", epochs=2, batch_size=4, min_pairs=4, progress=False,
                            warmup_epochs=0, cache_dir=str(tmp_path / "cache"), echo_encoder=str(out))
    result = train(cfg, preset=PRESET)
    assert result.select_metric == "val_pheno_map"
    for k in ("val_pheno_map", "val_knn_le45_auroc", "val_knn_lvh_auroc", "val_exact_map", "val_loss"):
        assert k in result.best_metrics
    loaded = load_model(tmp_path / "model")
    tower_model, meta = load_echo_tower(out)
    assert loaded.echo_tower_hash == meta["hash"] and loaded.meta["echo_tower"]["kind"] == "e2r-echo-tower"
    assert loaded.preset.echo.frozen and loaded.model.video_encoder_frozen
    for k, v in tower_model.encoder.state_dict().items():  # frozen: the tower's weights, unchanged
        torch.testing.assert_close(loaded.model.video_encoder.state_dict()[k], v)
    assert list((tmp_path / "cache").glob("viewemb-*.npy")), "tower embeddings are computed once and cached"


@pytest.fixture(scope="module")
def aligned(cohort, tower, tmp_path_factory):
    """A model aligned for one epoch to the module's tower (loaded bundle)."""
    from e2r.bundle import load_model
    from trainer.align import train

    out, _ = tower
    root = tmp_path_factory.mktemp("aligned")
    cfg = make_train_config(cohort, root / "model", epochs=1, batch_size=4, min_pairs=4, progress=False,
                            cache_dir=str(root / "cache"), echo_encoder=str(out))
    train(cfg, preset=PRESET)
    return load_model(root / "model")


def test_index_refuses_a_model_aligned_to_another_tower(aligned, tmp_path):
    from dataclasses import replace

    from e2r.store import open_store
    from indexer.pipeline import ensure_collection

    loaded = aligned
    with open_store(tmp_path / "home") as store:
        ensure_collection(store, "c", loaded)
        assert store.get_metadata("c")["echo_tower_hash"] == loaded.echo_tower_hash
        other = replace(loaded, meta={**loaded.meta, "echo_tower": {"hash": "0" * 16}})
        with pytest.raises(StoreError, match="aligned to echo tower"):
            ensure_collection(store, "c", other)


def test_train_echo_cli_json_and_help(cohort, tmp_path):
    from e2r.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["train-echo", "--help"])
    assert res.exit_code == 0 and "--min-studies" in res.output and "--phenotypes" in res.output
    res = runner.invoke(app, ["train-echo", "--data", str(cohort), "--out", str(tmp_path / "t"), "--epochs", "1",
                              "--min-studies", "4", "--cache-dir", str(tmp_path / "c"), "--quiet", "--json",
                              "--workers", "0"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["hash"] == json.loads((tmp_path / "t" / "tower.json").read_text())["hash"]
    assert [f["field"] for f in doc["fields"]][0] == "lvef" and doc["train_studies"] == 18
    res = runner.invoke(app, ["train-echo", "--data", str(cohort), "--out", str(tmp_path / "t2"), "--epochs", "1",
                              "--cache-dir", str(tmp_path / "c"), "--quiet", "--workers", "0"])
    assert res.exit_code == 1 and "at least 20 (--min-studies)" in res.output and "Traceback" not in res.output


def test_motion_pooling_concatenates_temporal_mean_and_std():
    """The head reads the temporal mean and SD of the per-step features; a beating clip and a still
    clip with the same mean frame embed differently."""
    from e2r.models.video_encoder import VideoEncoder

    torch.manual_seed(0)
    enc = VideoEncoder(PRESET.echo).eval()
    t = torch.arange(8).float()
    still = torch.zeros(1, 8, 1, 32, 32)
    beat = torch.zeros(1, 8, 1, 32, 32) + torch.sin(2 * np.pi * t / 8).view(1, 8, 1, 1, 1)
    with torch.no_grad():
        a, b = enc(still), enc(beat)
    assert enc.head.in_features == 2 * enc.stages[-1].temporal.out_channels
    assert not torch.allclose(a, b, atol=1e-4)


def test_search_refuses_a_model_aligned_to_another_tower(aligned, tmp_path):
    from dataclasses import replace

    from e2r.store import open_store
    from indexer.pipeline import ensure_collection
    from queries.search import Searcher

    loaded = aligned
    with open_store(tmp_path / "home") as store:
        ensure_collection(store, "c", loaded)
        Searcher(store, "c", model=loaded)  # the model it was built with: accepted
        other = replace(loaded, meta={**loaded.meta, "echo_tower": {"hash": "f" * 16}})
        with pytest.raises(BundleError, match="aligned to echo tower f{16} but collection 'c' was built with tower"):
            Searcher(store, "c", model=other)


def test_an_echoprime_weight_file_takes_the_towers_place(tmp_path):
    from e2r.echo_tower import resolve_echo_encoder

    weights = tmp_path / "echo_prime_encoder.pt"
    weights.write_bytes(b"not read until the model is built")
    source = resolve_echo_encoder(weights)
    assert source.kind == "echoprime" and source.echo.kind == "echoprime" and source.echo.weights == str(weights)
    assert source.encoder_state is None and len(source.hash) == 16
    assert source.describe()["kind"] == "echoprime"
