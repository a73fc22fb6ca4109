import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from e2r.errors import ConfigError
from e2r.models import Echo2ECG
from e2r.models.aggregation import StudyAggregator
from e2r.models.ecg_vit import Attention, ECGViT, count_params, sincos_1d
from e2r.models.video_encoder import VideoEncoder
from e2r.presets import (
    AggregationConfig,
    ECGEncoderConfig,
    EchoEncoderConfig,
    get_preset,
    with_overrides,
)

SMALL_ECG = ECGEncoderConfig(dim=32, depth=2, heads=2, patch_size=25)


def test_base_ecg_vit_has_about_7_1m_params():
    n = count_params(ECGViT(get_preset("base").ecg))
    print(f"base ECG ViT params: {n:,}")
    assert abs(n - 7.1e6) / 7.1e6 < 0.05


def test_tiny_param_counts():
    torch.manual_seed(0)
    m = Echo2ECG(get_preset("tiny"))
    counts = {k: count_params(getattr(m, k)) for k in ("ecg_encoder", "video_encoder", "aggregator")}
    print("tiny params:", counts, "total", count_params(m))
    assert count_params(m) < 1_000_000


def test_sincos_matches_otis_formula():
    dim, n = 8, 5
    omega = 1.0 / 10000 ** (np.arange(dim // 2) / (dim / 2))
    out = np.arange(n)[:, None] * omega[None]
    ref = np.concatenate([np.sin(out), np.cos(out)], axis=1)
    np.testing.assert_allclose(sincos_1d(n, dim).numpy(), ref, atol=1e-6)


def test_attention_equals_otis_qkv_then_multihead_attention():
    torch.manual_seed(0)
    dim, heads = 16, 2
    ours = Attention(dim, heads)
    qkv, mha, proj = nn.Linear(dim, 3 * dim), nn.MultiheadAttention(dim, heads, batch_first=True), nn.Linear(dim, dim)
    with torch.no_grad():
        qkv.load_state_dict(ours.qkv.state_dict())
        mha.in_proj_weight.copy_(ours.in_proj_weight)
        mha.in_proj_bias.copy_(ours.in_proj_bias)
        mha.out_proj.load_state_dict(ours.out_proj.state_dict())
        proj.load_state_dict(ours.proj.state_dict())
    x = torch.randn(3, 7, dim)
    q, k, v = qkv(x).reshape(3, 7, 3, dim).permute(2, 0, 1, 3)
    ref = proj(mha(q, k, v)[0])
    torch.testing.assert_close(ours(x), ref, atol=1e-5, rtol=1e-5)


def test_ecg_vit_pads_to_whole_patches_and_uses_lead_identity():
    torch.manual_seed(0)
    vit = ECGViT(SMALL_ECG).eval()
    x = torch.randn(2, 12, 110)  # 110 = 4 patches + 10 samples
    y = vit(x)
    assert y.shape == (2, 32)
    torch.testing.assert_close(y, vit(F.pad(x, (0, 15))))  # explicit zero pad == implicit pad
    swapped = x[:, [1, 0, *range(2, 12)]]
    assert not torch.allclose(vit(swapped), y, atol=1e-4)  # lead embedding tells leads apart
    with pytest.raises(ValueError, match="leads"):
        vit(torch.randn(2, 8, 100))


def _otis_state_dict(vit: ECGViT) -> dict:
    """Our weights written under OTiS's names and shapes (what an OTiS checkpoint holds)."""
    otis = {}
    for k, v in vit.state_dict().items():
        k = k.replace("attn.in_proj_", "attn.mha.in_proj_").replace("attn.out_proj.", "attn.mha.out_proj.")
        if k == "patch_embed.proj.weight":
            v = v.reshape(v.shape[0], 1, 1, -1)
        if k == "lead_embed":
            k, v = "pos_embed_y.weight", torch.cat([torch.zeros(1, v.shape[1]), v])
        otis[k] = v
    otis["pos_embed_x"] = torch.zeros(1, 41, vit.cfg.dim // 2)
    otis["head.weight"] = torch.zeros(5, vit.cfg.dim)
    otis["decoder_embed.weight"] = torch.zeros(3, 3)
    return otis


def test_load_otis_weights_maps_names(tmp_path, caplog):
    torch.manual_seed(1)
    src = ECGViT(SMALL_ECG).eval()
    sd = _otis_state_dict(src)
    sd["unexpected_thing"] = torch.zeros(2)
    path = tmp_path / "otis.pth"
    torch.save({"model": {"module." + k: v for k, v in sd.items()}, "epoch": 3}, path)
    preset = with_overrides(get_preset("tiny"), ecg=SMALL_ECG, ecg__weights=str(path))
    torch.manual_seed(2)
    model = Echo2ECG(preset).eval()
    x = torch.randn(2, 12, 100)
    torch.testing.assert_close(model.ecg_encoder(x), src(x))
    from e2r.models.ecg_vit import load_otis_weights

    del sd["fc_norm.weight"]
    torch.save(sd, path)
    missing, unexpected = load_otis_weights(ECGViT(SMALL_ECG), path)
    print("missing", missing, "unexpected", unexpected)
    assert missing == ["fc_norm.weight"] and unexpected == ["unexpected_thing"]


def test_load_otis_weights_errors(tmp_path):
    from e2r.models.ecg_vit import load_otis_weights

    with pytest.raises(ConfigError, match="not found"):
        load_otis_weights(ECGViT(SMALL_ECG), tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="cannot read"):
        load_otis_weights(ECGViT(SMALL_ECG), bad)
    torch.save(_otis_state_dict(ECGViT(SMALL_ECG)), bad)
    with pytest.raises(ConfigError, match="shape"):
        load_otis_weights(ECGViT(ECGEncoderConfig(dim=32, depth=2, heads=2, patch_size=20)), bad)


@pytest.mark.parametrize("color,channels", [("grey", 1), ("rgb", 3)])
def test_video_encoder_shapes(color, channels):
    cfg = EchoEncoderConfig(color=color, n_frames=8, size=(32, 32), patch=(2, 4), width=8, depth=2, out_dim=24)
    enc = VideoEncoder(cfg)
    assert enc(torch.randn(3, 8, channels, 32, 32)).shape == (3, 24)


def _agg(mode: str) -> StudyAggregator:
    torch.manual_seed(0)
    return StudyAggregator(AggregationConfig(mode=mode, heads=2, proj_dim=8), in_dim=6)


@pytest.mark.parametrize("mode", ["attention", "mean", "single-view"])
def test_aggregation_ignores_padding_and_view_order(mode):
    agg = _agg(mode).eval()
    emb = torch.randn(2, 4, 6)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    out = agg(emb, mask)
    garbage = emb.clone()
    garbage[~mask] = 1e3
    torch.testing.assert_close(agg(garbage, mask), out)
    perm = emb[:, [2, 0, 1, 3]]
    torch.testing.assert_close(agg(perm, mask)[0], out[0], atol=1e-5, rtol=1e-5)
    # a study of one video: the result does not depend on how much padding follows it
    torch.testing.assert_close(agg(emb[1:, :1], mask[1:, :1]), out[1:], atol=1e-5, rtol=1e-5)


def test_attention_pooling_is_not_mean_pooling():
    agg = _agg("attention").eval()
    emb = torch.randn(1, 3, 6)
    mask = torch.ones(1, 3, dtype=torch.bool)
    h = agg.proj(emb)
    q = h.mean(1, keepdim=True)
    ref, _ = agg.attn(q, h, h)
    torch.testing.assert_close(agg(emb, mask), ref[:, 0])


def test_mean_and_single_view_modes():
    emb = torch.randn(3, 4, 6)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 1, 0]], dtype=torch.bool)
    mean = _agg("mean").eval()
    h = mean.proj(emb)
    ref = torch.stack([h[i][mask[i]].mean(0) for i in range(3)])
    torch.testing.assert_close(mean(emb, mask), ref)
    single = _agg("single-view")
    single.load_state_dict(mean.state_dict())
    torch.testing.assert_close(single.eval()(emb, mask), ref)  # eval: mean of projections
    single.train()
    torch.manual_seed(0)
    for _ in range(5):
        out = single(emb, mask)
        for i in range(3):  # each study's output is the projection of one of its real views
            dists = (h[i][mask[i]] - out[i]).abs().amax(dim=-1)
            assert float(dists.detach().min()) < 1e-6
    with pytest.raises(ValueError, match="at least one"):
        single(emb, torch.zeros(3, 4, dtype=torch.bool))


def test_echo2ecg_outputs_and_study_videos_path():
    torch.manual_seed(0)
    m = Echo2ECG(get_preset("tiny")).eval()
    B, V = 2, 3
    ecg = torch.randn(B, 12, 1000)
    vids = torch.randn(B, V, 16, 1, 64, 64)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    a, b = m(ecg, vids, mask)
    assert a.shape == b.shape == (B, 128)
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(B))
    torch.testing.assert_close(b.norm(dim=-1), torch.ones(B))
    emb = m.embed_videos(vids.flatten(0, 1)).view(B, V, -1)
    torch.testing.assert_close(b, m.encode_study(emb, mask), atol=1e-5, rtol=1e-5)
    a2, b2 = m(ecg, view_emb=emb, mask=mask)
    torch.testing.assert_close(b2, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a2, a)
    with pytest.raises(ValueError, match="exactly one"):
        m(ecg, vids, mask, view_emb=emb)
    assert math.isclose(float(m.logit_scale), math.log(1 / m.preset.temperature), rel_tol=1e-6)
    assert not m.logit_scale.requires_grad and not m.video_encoder_frozen


def test_param_groups_layer_decay_and_no_decay():
    preset = with_overrides(get_preset("tiny"), learn_temperature=True)
    m = Echo2ECG(preset)
    lr, wd, decay = 1e-3, 0.05, 0.5
    groups = m.param_groups(lr, wd, decay)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in m.parameters() if p.requires_grad}
    where = {id(p): g for g in groups for p in g["params"]}
    depth = preset.ecg.depth
    named = dict(m.named_parameters())
    for i in range(depth):
        g = where[id(named[f"ecg_encoder.blocks.{i}.attn.qkv.weight"])]
        assert math.isclose(g["lr"], lr * decay ** (depth - i)) and g["weight_decay"] == wd
        assert where[id(named[f"ecg_encoder.blocks.{i}.norm1.weight"])]["weight_decay"] == 0.0
    emb_lr = where[id(named["ecg_encoder.patch_embed.proj.weight"])]["lr"]
    assert math.isclose(emb_lr, lr * decay ** (depth + 1))
    assert min(g["lr"] for g in groups) == pytest.approx(emb_lr)
    for name in ("ecg_encoder.lead_embed", "ecg_encoder.cls_token", "logit_scale", "ecg_head.bias"):
        assert where[id(named[name])]["weight_decay"] == 0.0, name
    for name in ("ecg_head.weight", "echo_head.weight", "aggregator.proj.weight", "logit_scale",
                 "video_encoder.head.weight"):
        assert where[id(named[name])]["lr"] == lr, name
    assert where[id(named["video_encoder.stem.proj.weight"])]["lr"] < where[
        id(named["video_encoder.stages.1.spatial.weight"])]["lr"] < lr
    assert all(math.isclose(g["lr"], lr * g["lr_scale"]) for g in groups)
    torch.optim.AdamW(groups)  # the groups are what AdamW accepts


def test_echoprime_without_torchvision_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    monkeypatch.setitem(sys.modules, "torchvision.models.video", None)
    with pytest.raises(ConfigError, match=r"pip install 'e2r\[echoprime\]'"):
        Echo2ECG(get_preset("base-echoprime"))


def test_tiny_learns_paired_structure():
    """A few AdamW steps on one batch whose ECG and video share a latent lower the InfoNCE loss."""
    torch.manual_seed(0)
    m = Echo2ECG(get_preset("tiny")).train()
    opt = torch.optim.AdamW(m.param_groups(1e-3, 1e-7))
    B = 8
    g = torch.Generator().manual_seed(0)
    z = torch.randn(B, 4, generator=g)
    ecg = z[:, torch.arange(12) % 4, None] + 0.3 * torch.randn(B, 12, 1000, generator=g)
    vids = 0.3 * torch.randn(B, 1, 16, 1, 64, 64, generator=g) + z[:, 0, None, None, None, None, None]
    vids[..., :32, :] += z[:, 1, None, None, None, None, None]
    mask = torch.ones(B, 1, dtype=torch.bool)
    labels = torch.arange(B)
    losses = []
    for _ in range(6):
        a, b = m(ecg, vids, mask)
        logits = m.logit_scale.exp() * a @ b.T
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    print("losses", [round(x, 3) for x in losses])
    assert min(losses[-2:]) < losses[0] - 0.15


def test_frozen_own_video_encoder_is_not_trained_and_is_cacheable():
    from e2r.presets import with_overrides

    m = Echo2ECG(with_overrides(get_preset("tiny"), echo__frozen=True))
    assert m.video_encoder_frozen
    assert not any(p.requires_grad for p in m.video_encoder.parameters())
    assert any(p.requires_grad for p in m.ecg_encoder.parameters())
    names = {n for g in m.param_groups(1e-3, 0.0, 0.75) for n in [g["name"]]}
    assert not any("video" in n for n in names)
