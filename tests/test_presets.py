import dataclasses
import json

import pytest

from e2r.errors import ConfigError, PresetError
from e2r.presets import (
    ECHOPRIME_MEAN,
    ECHOPRIME_STD,
    ModelPreset,
    get_preset,
    list_presets,
    preset_from_dict,
    preset_to_dict,
    with_overrides,
)


def test_list_presets_names_the_three_presets():
    assert list_presets() == ["tiny", "base", "base-echoprime"]
    for name in list_presets():
        assert isinstance(get_preset(name), ModelPreset)
        assert get_preset(name).name == name


def test_unknown_preset_names_valid_choices():
    with pytest.raises(PresetError) as exc:
        get_preset("huge")
    msg = str(exc.value)
    assert "'huge'" in msg and "tiny" in msg and "base-echoprime" in msg and "\n" not in msg


def test_base_preset_holds_the_paper_values():
    p = get_preset("base")
    assert (p.ecg.dim, p.ecg.depth, p.ecg.heads, p.ecg.mlp_ratio, p.ecg.patch_size) == (192, 12, 3, 4.0, 24)
    assert (p.ecg_preprocess.fs, p.ecg_preprocess.window_s, p.ecg_samples) == (250.0, 10.0, 2500)
    assert (p.embed_dim, p.temperature, p.learn_temperature) == (512, 0.5, False)
    assert p.aggregation.mode == "attention"
    t = p.train
    assert (t.epochs, t.batch_size, t.lr, t.weight_decay, t.layer_decay, t.warmup_epochs) == (
        50, 256, 5e-4, 1e-7, 0.75, 5)


def test_echoprime_preset_matches_echoprime_input():
    p = get_preset("base-echoprime")
    e = p.echo
    assert (e.kind, e.n_frames, e.stride, e.fps, tuple(e.size), e.color, e.out_dim) == (
        "echoprime", 16, 2, None, (224, 224), "rgb", 512)
    assert e.mean == ECHOPRIME_MEAN and e.std == ECHOPRIME_STD
    assert e.decode_kwargs() == {"n_frames": 16, "size": (224, 224), "fps": None, "color": "rgb", "stride": 2}
    assert p.ecg == get_preset("base").ecg


def test_tiny_preset_is_small_and_cpu_sized():
    p = get_preset("tiny")
    assert p.ecg_samples == 1000 and p.echo.n_frames == 16 and tuple(p.echo.size) == (64, 64)
    assert p.echo.color == "grey" and p.echo.kind == "video"


@pytest.mark.parametrize("name", ["tiny", "base", "base-echoprime"])
def test_preset_dict_round_trip_through_json(name):
    p = get_preset(name)
    back = preset_from_dict(json.loads(json.dumps(preset_to_dict(p))))
    assert back == p


def test_preset_from_dict_rejects_unknown_fields():
    d = preset_to_dict(get_preset("tiny"))
    d["echo"]["frobnicate"] = 3
    with pytest.raises(PresetError, match="frobnicate"):
        preset_from_dict(d)


def test_with_overrides_nested_and_top_level():
    p = with_overrides(get_preset("tiny"), aggregation__mode="single-view", temperature=0.1,
                       train__epochs=3)
    assert p.aggregation.mode == "single-view" and p.temperature == 0.1 and p.train.epochs == 3
    assert p.aggregation.heads == get_preset("tiny").aggregation.heads
    assert dataclasses.replace(p, name="x").name == "x"


def test_with_overrides_validates():
    with pytest.raises(ConfigError, match="aggregation.mode='max'"):
        with_overrides(get_preset("tiny"), aggregation__mode="max")
    with pytest.raises(PresetError, match="aggregation__nope"):
        with_overrides(get_preset("tiny"), aggregation__nope=1)
    with pytest.raises(PresetError, match="unknown preset field 'bogus'"):
        with_overrides(get_preset("tiny"), bogus=1)
    with pytest.raises(ConfigError, match="ecg.dim"):
        with_overrides(get_preset("tiny"), ecg__heads=5)
    with pytest.raises(ConfigError, match="fs"):
        with_overrides(get_preset("tiny"), ecg_preprocess__fs=-1.0)
