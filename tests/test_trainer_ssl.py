"""The ECG-only SSL baseline (trainer.ssl): NT-Xent against a loop reference, one tiny training run
through the shared loop into a bundle that the query side loads, and the ECG-only encoder bundle."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from trainer.loss import NTXentLoss


def _normed(rng, n, d):
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def loop_nt_xent(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    """SimCLR's NT-Xent written out: for each of the 2N views, -log of its partner's share of the
    exp-similarities to every other view."""
    z = np.concatenate([a, b])
    n = len(a)
    losses = []
    for i in range(2 * n):
        partner = i + n if i < n else i - n
        others = [j for j in range(2 * n) if j != i]
        denom = sum(math.exp(scale * float(z[i] @ z[j])) for j in others)
        losses.append(-math.log(math.exp(scale * float(z[i] @ z[partner])) / denom))
    return float(np.mean(losses))


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_nt_xent_matches_the_loop_reference(temperature):
    rng = np.random.default_rng(0)
    a, b = _normed(rng, 7, 16), _normed(rng, 7, 16)
    got = NTXentLoss(gather=False)(torch.from_numpy(a), torch.from_numpy(b), torch.tensor(math.log(1 / temperature)))
    assert float(got) == pytest.approx(loop_nt_xent(a, b, 1 / temperature), rel=1e-6)


def test_nt_xent_is_low_for_matching_views_and_high_for_shuffled_ones():
    rng = np.random.default_rng(1)
    a = _normed(rng, 16, 32)
    near = a + 0.05 * rng.standard_normal(a.shape)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    scale = torch.tensor(math.log(10.0))
    loss = NTXentLoss(gather=False)
    same = float(loss(torch.from_numpy(a), torch.from_numpy(a), scale))
    close = float(loss(torch.from_numpy(a), torch.from_numpy(near), scale))
    shuffled = float(loss(torch.from_numpy(a), torch.from_numpy(a[rng.permutation(16)]), scale))
    assert same < close < shuffled
    assert shuffled > math.log(2 * 16 - 1) - 1.0  # near chance: the partner is one of 31 candidates
    assert same < 1.0


def _small_preset():
    from e2r.presets import get_preset, with_overrides

    return with_overrides(get_preset("tiny"), ecg__dim=32, ecg__depth=1, ecg__heads=2)


def _ecgs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """ECG-shaped noise with a level set by LVEF (and a wall thickness that follows it)."""
    lvef = rng.uniform(20, 70, n)
    x = rng.standard_normal((n, 12, 1000)).astype(np.float32) * 0.1
    x[:, :, :500] += ((lvef - 45) / 25)[:, None, None]
    rows = [{"lvef": float(v), "ivsd": 14.0 if v < 40 else 9.0, "lvpwd": 9.0} for v in lvef]
    return x, rows


def test_train_ssl_writes_a_bundle_the_query_side_loads(tmp_path):
    from e2r.bundle import load_model
    from e2r.embed import encode_ecgs
    from e2r.models import Echo2ECG
    from helpers.cohort import write_ecg
    from trainer.augment import AugmentConfig
    from trainer.config import make_train_config
    from trainer.ssl import ECG_ONLY_MARK, SELECT_METRIC, train_ssl

    rng = np.random.default_rng(2)
    train_x, train_rows = _ecgs(24, rng)
    val_x, val_rows = _ecgs(12, rng)
    train_rows[0] = None  # a study without phenotypes: unlabelled for the validation kNN
    preset = _small_preset()
    out = tmp_path / "ssl"
    cfg = make_train_config("", out, preset="tiny", epochs=2, batch_size=8, warmup_epochs=0, seed=3, progress=False,
                            augment=AugmentConfig())
    result = train_ssl(cfg, train_x, train_rows, val_x, val_rows, preset=preset)

    assert result.epochs == 2 and result.select_metric == SELECT_METRIC and 1 <= result.best_epoch <= 2
    for rec in result.history:
        assert np.isfinite(rec["train_loss"]) and np.isfinite(rec["val_loss"])
        assert 0.0 <= rec["val_knn_le45_auroc"] <= 1.0 and 0.0 <= rec["val_knn_lvh_auroc"] <= 1.0
        assert rec[SELECT_METRIC] == pytest.approx((rec["val_knn_le45_auroc"] + rec["val_knn_lvh_auroc"]) / 2)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and (out / "checkpoints" / "best.pt").is_file()

    loaded = load_model(out)  # an ordinary bundle: the hash verifies, the preset rebuilds
    tc = loaded.meta["train_config"]
    assert tc["objective"] == "simclr" and {k: tc[k] for k in ECG_ONLY_MARK} == ECG_ONLY_MARK
    assert tc["best_epoch"] == result.best_epoch and loaded.meta["data_summary"]["train_ecgs"] == 24
    # no echo at all: the echo side is the seeded initialisation, the ECG side moved
    torch.manual_seed(3)
    init = Echo2ECG(preset).state_dict()
    state = loaded.model.state_dict()
    for name, value in state.items():
        if name.startswith(("video_encoder.", "aggregator.", "echo_head.")):
            assert torch.equal(value, init[name]), name
    assert not torch.equal(state["ecg_head.weight"], init["ecg_head.weight"])
    # an ECG feature extractor, not a retrieval model: indexing echo with it is refused
    from e2r.errors import BundleError
    from indexer.config import IndexConfig
    from indexer.pipeline import index_archive

    with pytest.raises(BundleError, match="ECG-only model"):
        index_archive(IndexConfig(archive=tmp_path, model_dir=out), store=None, loaded=loaded)
    # the query side reads its features like any bundle's (e2r embed's encode path)
    for i in range(2):
        write_ecg(tmp_path / "ecg" / f"r{i}", 0.3 * i, rng)
    feats, ids = encode_ecgs(tmp_path / "ecg", out, array="features")
    assert feats.shape == (2, 32) and len(ids) == 2 and np.isfinite(feats).all()


def test_ssl_refuses_an_echo_encoder_and_too_few_validation_ecgs(tmp_path):
    from e2r.errors import ConfigError, DataError
    from trainer.config import make_train_config
    from trainer.ssl import train_ssl

    x, rows = _ecgs(6, np.random.default_rng(4))
    cfg = make_train_config("", tmp_path / "a", epochs=1, progress=False)
    with pytest.raises(DataError, match="1 validation ECGs"):
        train_ssl(cfg, x[:5], rows[:5], x[5:], rows[5:], preset=_small_preset())
    with pytest.raises(ConfigError, match="trains no echo side"):
        train_ssl(make_train_config("", tmp_path / "b", epochs=1, progress=False, freeze_echo=True),
                  x[:4], rows[:4], x[4:], rows[4:], preset=_small_preset())


def test_any_ecg_encoder_saved_as_an_ecg_only_bundle_keeps_its_features(tmp_path):
    from e2r.bundle import load_model
    from e2r.encode import encode_ecg_features
    from e2r.models.ecg_vit import ECGViT
    from trainer.ssl import save_encoder_bundle

    preset = _small_preset()
    torch.manual_seed(7)
    encoder = ECGViT(preset.ecg).eval()
    save_encoder_bundle(encoder, preset, tmp_path / "enc", {"objective": "supervised-phenotypes"}, seed=1)
    loaded = load_model(tmp_path / "enc")
    assert loaded.meta["train_config"]["ecg_only"] is True
    x = np.random.default_rng(5).standard_normal((3, 12, 1000)).astype(np.float32)
    with torch.no_grad():
        want = encoder(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(encode_ecg_features(loaded, x)[0], want, rtol=1e-5, atol=1e-5)
