"""The model bundle and the one encode path (e2r.encode), with the golden-vector test."""

import json

import numpy as np
import pytest
import torch

from e2r import encode
from e2r.bundle import bundle_hash, load_model, save_bundle
from e2r.ecg.preprocess import PreprocessedECG
from e2r.errors import BundleError, DataError
from e2r.models import Echo2ECG
from e2r.presets import get_preset, with_overrides

# First values of a fixed-seed tiny model's embeddings (torch.manual_seed(0); Echo2ECG(tiny)) on
# the seeded inputs of `_inputs`. A change here means every index built before it is stale.
GOLDEN_ECG = [0.05298935, 0.21749961, 0.01857674, -0.10335052, 0.01409804]
GOLDEN_STUDY = [0.07852284, -0.06047254, 0.07484280, 0.11319310, -0.03082701]


def _inputs(n_ecg=3, n_videos=3):
    rng = np.random.default_rng(0)
    ecgs = [rng.standard_normal((12, 1000)).astype(np.float32) for _ in range(n_ecg)]
    videos = [rng.integers(0, 255, (16, 64, 64), dtype=np.uint8) for _ in range(n_videos)]
    return ecgs, videos


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return Echo2ECG(get_preset("tiny"))


def test_golden_vectors(tiny):
    ecgs, videos = _inputs()
    e = encode.encode_ecg(tiny, ecgs)
    s = encode.encode_echo_study(tiny, videos)
    print("ecg", e[0, :5].tolist(), "study", s[:5].tolist())
    assert e.dtype == np.float32 and e.shape == (3, 128) and s.shape == (128,)
    np.testing.assert_allclose(e[0, :5], GOLDEN_ECG, atol=1e-4)
    np.testing.assert_allclose(s[:5], GOLDEN_STUDY, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


def test_encode_paths_agree(tiny):
    ecgs, videos = _inputs()
    pre = [PreprocessedECG(signal=x, fs=100.0, cropped_s=0.0, padded_s=0.0, notes=()) for x in ecgs]
    np.testing.assert_array_equal(encode.encode_ecg(tiny, pre), encode.encode_ecg(tiny, ecgs))
    np.testing.assert_allclose(encode.encode_ecg(tiny, ecgs, batch_size=1), encode.encode_ecg(tiny, ecgs),
                               atol=1e-5)
    one = encode.encode_echo_study(tiny, videos)
    view_emb = encode.embed_videos(tiny, videos, batch_size=2)
    assert view_emb.shape == (3, 64)
    batch = encode.encode_echo_studies(tiny, [videos, videos[:1], view_emb[1:]])
    np.testing.assert_allclose(batch[0], one, atol=1e-5)
    np.testing.assert_allclose(batch[1], encode.encode_echo_study(tiny, videos[:1]), atol=1e-5)
    np.testing.assert_allclose(batch[2], encode.encode_echo_study(tiny, videos[1:]), atol=1e-5)
    np.testing.assert_allclose(encode.encode_study_embeddings(tiny, [view_emb]), one[None], atol=1e-5)
    # the same numbers as the model's own torch path (what training computes)
    with torch.no_grad():
        x = encode.videos_to_tensor(videos, tiny.preset.echo)[None]
        ref = tiny.eval().encode_study_videos(x, torch.ones(1, 3, dtype=torch.bool))
    np.testing.assert_allclose(one, ref[0].numpy(), atol=1e-5)


def test_encode_restores_training_mode(tiny):
    tiny.train()
    encode.encode_ecg(tiny, _inputs()[0])
    assert tiny.training
    tiny.eval()


def test_videos_to_tensor_normalises_and_converts_colour():
    cfg = get_preset("tiny").echo
    grey = np.full((16, 64, 64), 29, dtype=np.uint8)
    grey[0, 0, 0] = 76
    t = encode.videos_to_tensor([grey], cfg)
    assert t.shape == (1, 16, 1, 64, 64) and t.dtype == torch.float32
    assert float(t[0, 1, 0, 5, 5]) == 0.0 and float(t[0, 0, 0, 0, 0]) == pytest.approx(1.0)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    torch.testing.assert_close(encode.videos_to_tensor([rgb], cfg), t)
    rgb_cfg = get_preset("base-echoprime").echo
    as_rgb = encode.normalize_videos(torch.from_numpy(grey)[None], rgb_cfg)
    assert as_rgb.shape == (1, 16, 3, 64, 64)
    assert float(as_rgb[0, 1, 2, 0, 0]) == pytest.approx((29 - 29.096405) / 47.20083)
    with pytest.raises(DataError, match=r"decode_kwargs"):
        encode.videos_to_tensor([np.zeros((8, 64, 64), np.uint8)], cfg)


def test_encode_input_errors(tiny):
    with pytest.raises(DataError, match="one length"):
        encode.encode_ecg(tiny, [np.zeros((12, 1000), np.float32), np.zeros((12, 900), np.float32)])
    with pytest.raises(DataError, match="100 Hz x 10 s"):
        encode.encode_ecg(tiny, [np.zeros((12, 2500), np.float32)])
    with pytest.raises(DataError, match="no ECGs"):
        encode.encode_ecg(tiny, [])
    with pytest.raises(DataError, match="study 1: has no videos"):
        encode.encode_echo_studies(tiny, [_inputs()[1], []])


def test_save_load_rebuilds_bitwise(tmp_path, tiny):
    ecgs, videos = _inputs()
    preset = with_overrides(get_preset("tiny"), aggregation__mode="mean", learn_temperature=True)
    torch.manual_seed(3)
    model = Echo2ECG(preset)
    digest = save_bundle(model, tmp_path / "m", {"epochs": 2, "out": tmp_path}, {"n_pairs": 10})
    assert len(digest) == 16
    loaded = load_model(tmp_path / "m")
    assert loaded.hash == digest == bundle_hash(tmp_path / "m")
    assert loaded.preset == preset and not loaded.model.training
    assert loaded.meta["train_config"] == {"epochs": 2, "out": str(tmp_path)}
    assert loaded.meta["data_summary"] == {"n_pairs": 10}
    assert loaded.meta["preprocessing"]["ecg"]["fs"] == 100.0
    np.testing.assert_array_equal(encode.encode_ecg(loaded, ecgs), encode.encode_ecg(model, ecgs))
    np.testing.assert_array_equal(encode.encode_echo_study(loaded, videos),
                                  encode.encode_echo_study(model, videos))
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.model.state_dict()[k]), k
    assert loaded.model.logit_scale.requires_grad


def test_hash_is_content_hash(tmp_path):
    torch.manual_seed(0)
    model = Echo2ECG(get_preset("tiny"))
    h1 = save_bundle(model, tmp_path / "a", {}, {})
    assert save_bundle(model, tmp_path / "b", {"other": 1}, {"x": 2}) == h1  # logs don't count
    with torch.no_grad():
        model.ecg_head.bias[0] += 1e-6
    assert save_bundle(model, tmp_path / "c", {}, {}) != h1
    torch.manual_seed(0)
    other = Echo2ECG(with_overrides(get_preset("tiny"), temperature=0.25))
    other.load_state_dict({k: v for k, v in Echo2ECG(get_preset("tiny")).state_dict().items()
                           if k != "logit_scale"}, strict=False)
    assert save_bundle(other, tmp_path / "d", {}, {}) != h1


@pytest.fixture()
def bundle_dir(tmp_path):
    torch.manual_seed(0)
    save_bundle(Echo2ECG(get_preset("tiny")), tmp_path / "m", {}, {})
    return tmp_path / "m"


def _one_line_bundle_error(path, match):
    with pytest.raises(BundleError, match=match) as exc:
        load_model(path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)


def test_missing_bundle_errors(tmp_path, bundle_dir):
    _one_line_bundle_error(tmp_path / "nope", "no such model bundle")
    (tmp_path / "file").write_text("x")
    _one_line_bundle_error(tmp_path / "file", "not a model bundle directory")
    (bundle_dir / "weights.pt").unlink()
    _one_line_bundle_error(bundle_dir, "weights.pt: missing")
    (bundle_dir / "bundle.json").unlink()
    _one_line_bundle_error(bundle_dir, "bundle.json: missing")


def test_corrupt_bundle_errors(bundle_dir):
    meta_path, weights = bundle_dir / "bundle.json", bundle_dir / "weights.pt"
    good_meta, good_weights = meta_path.read_text(), weights.read_bytes()
    weights.write_bytes(good_weights[: len(good_weights) // 2])
    _one_line_bundle_error(bundle_dir, "corrupt or unreadable")
    weights.write_bytes(good_weights)
    sd = torch.load(weights, weights_only=True)
    sd["ecg_head.bias"] = sd["ecg_head.bias"] + 1
    torch.save(sd, weights)
    _one_line_bundle_error(bundle_dir, "content hash .* does not match")
    with pytest.raises(BundleError, match="does not match"):
        bundle_hash(bundle_dir)
    weights.write_bytes(good_weights)
    meta_path.write_text(good_meta[:40])
    _one_line_bundle_error(bundle_dir, "corrupt")
    meta = json.loads(good_meta)
    meta["format"] = 99
    meta_path.write_text(json.dumps(meta))
    _one_line_bundle_error(bundle_dir, "newer e2r")


def test_bundle_with_edited_preset_is_refused(bundle_dir):
    meta_path = bundle_dir / "bundle.json"
    meta = json.loads(meta_path.read_text())
    meta["preset"]["embed_dim"] = 64
    meta_path.write_text(json.dumps(meta))
    _one_line_bundle_error(bundle_dir, "does not match")
