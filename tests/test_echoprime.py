"""The optional EchoPrime encoder (needs torchvision; skipped without it).

The weight file is written by the test in EchoPrime's format: the state_dict of
torchvision's mvit_v2_s with head[-1] = Linear(768, 512).
"""

import numpy as np
import pytest
import torch

torchvision = pytest.importorskip("torchvision")

from e2r import encode
from e2r.bundle import load_model, save_bundle
from e2r.errors import ConfigError
from e2r.models import Echo2ECG
from e2r.models.echoprime import build_mvit, read_echoprime_state_dict
from e2r.presets import get_preset, with_overrides


@pytest.fixture(scope="module")
def echoprime_file(tmp_path_factory):
    torch.manual_seed(0)
    mvit = torchvision.models.video.mvit_v2_s(weights=None)
    mvit.head[-1] = torch.nn.Linear(mvit.head[-1].in_features, 512)
    path = tmp_path_factory.mktemp("ep") / "echo_prime_encoder.pt"
    torch.save(mvit.state_dict(), path)
    return path, mvit.eval()


@pytest.fixture(scope="module")
def echoprime_model(echoprime_file):
    return Echo2ECG(_preset(echoprime_file[0]))


def _preset(path):
    # a small ECG side keeps the test fast; the echo side is the real base-echoprime encoder
    return with_overrides(get_preset("base-echoprime"), echo__weights=str(path),
                          ecg=get_preset("tiny").ecg, ecg_preprocess=get_preset("tiny").ecg_preprocess)


def test_echoprime_loads_weights_frozen_and_matches_mvit(echoprime_file, echoprime_model):
    _, mvit = echoprime_file
    model = echoprime_model
    assert model.video_encoder_frozen
    assert not any(p.requires_grad for p in model.video_encoder.parameters())
    grouped = {id(p) for g in model.param_groups(1e-3, 0.0) for p in g["params"]}
    assert not grouped & {id(p) for p in model.video_encoder.parameters()}
    model.train()
    assert not model.video_encoder.training and not model.video_encoder.mvit.training
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, (16, 224, 224, 3), dtype=np.uint8)
    emb = encode.embed_videos(model, [video])
    assert emb.shape == (1, 512)
    x = encode.videos_to_tensor([video], model.preset.echo)  # (1, 16, 3, 224, 224)
    mean = torch.tensor([29.110628, 28.076836, 29.096405]).view(3, 1, 1)
    std = torch.tensor([47.989223, 46.456997, 47.20083]).view(3, 1, 1)
    ref_in = ((torch.from_numpy(video).float().permute(0, 3, 1, 2) - mean) / std)  # (F, 3, H, W)
    torch.testing.assert_close(x[0], ref_in)
    with torch.no_grad():
        ref = mvit(ref_in.permute(1, 0, 2, 3)[None])  # (1, 3, F, H, W) as EchoPrime feeds it
    np.testing.assert_allclose(emb, ref.numpy(), atol=1e-4)
    study = encode.encode_echo_studies(model, [emb])  # cached view embeddings work as input
    assert study.shape == (1, 512)


@pytest.mark.parametrize("wrap", ["state_dict", "module"])
def test_echoprime_accepts_wrapped_files(tmp_path, echoprime_file, wrap):
    path, mvit = echoprime_file
    sd = torch.load(path, weights_only=True)
    if wrap == "state_dict":
        sd = {"state_dict": sd}
    else:
        sd = {"module." + k: v for k, v in sd.items()}
    wrapped = tmp_path / "w.pt"
    torch.save(sd, wrapped)
    read = read_echoprime_state_dict(wrapped)
    assert read.keys() == mvit.state_dict().keys()
    for k, v in mvit.state_dict().items():
        assert torch.equal(read[k], v), k


def test_echoprime_weight_errors(tmp_path):
    with pytest.raises(ConfigError, match="needs EchoPrime's weight file"):
        Echo2ECG(with_overrides(_preset("x"), echo__weights=None))
    with pytest.raises(ConfigError, match="not found"):
        Echo2ECG(_preset(tmp_path / "missing.pt"))
    bad = tmp_path / "bad.pt"
    torch.save(build_mvit(256).state_dict(), bad)  # a 256-d head: not EchoPrime's
    with pytest.raises(ConfigError, match="does not fit"):
        Echo2ECG(_preset(bad))


def test_echoprime_bundle_round_trip(tmp_path, echoprime_file, echoprime_model):
    path, _ = echoprime_file
    model = echoprime_model
    digest = save_bundle(model, tmp_path / "b", {}, {})
    path.rename(path.with_suffix(".moved"))  # the bundle must not need the original file
    try:
        loaded = load_model(tmp_path / "b")
    finally:
        path.with_suffix(".moved").rename(path)
    assert loaded.hash == digest
    emb = np.random.default_rng(1).standard_normal((3, 512)).astype(np.float32)
    np.testing.assert_array_equal(encode.encode_echo_studies(loaded, [emb]),
                                  encode.encode_echo_studies(model, [emb]))
