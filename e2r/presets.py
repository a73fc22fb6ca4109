"""Model presets: every architecture, input and training default in one place.

A preset names the ECG encoder, the echo encoder, the study aggregation, the shared embedding
space, the ECG preprocessing (sampling rate and window are part of the model's input) and the
paper's training defaults. `get_preset(name)` returns one; `with_overrides` derives a variant
(for example the aggregation ablations) and validates it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from e2r.ecg.preprocess import ECGPreprocessConfig
from e2r.errors import ConfigError, PresetError

AGGREGATION_MODES = ("attention", "mean", "single-view")
ECHO_KINDS = ("video", "echoprime")
COLORS = ("grey", "rgb")

# EchoPrime's pixel statistics (0-255 scale, RGB), from its preprocessing code.
ECHOPRIME_MEAN = (29.110628, 28.076836, 29.096405)
ECHOPRIME_STD = (47.989223, 46.456997, 47.20083)


@dataclass(frozen=True)
class ECGEncoderConfig:
    """ViT over per-lead patches (OTiS shape)."""

    dim: int = 192  # token width
    depth: int = 12  # transformer blocks
    heads: int = 3  # attention heads
    mlp_ratio: float = 4.0  # MLP hidden width / dim
    patch_size: int = 24  # samples per patch (1 lead x patch_size)
    n_leads: int = 12  # leads = rows of the input
    dropout: float = 0.0  # attention + MLP dropout
    drop_path: float = 0.0  # stochastic depth rate of the last block (linear ramp from 0)
    weights: str | None = None  # optional OTiS state_dict to start from


@dataclass(frozen=True)
class EchoEncoderConfig:
    """Per-video encoder and the decode settings its input needs (see e2r.echo.decode_video)."""

    kind: str = "video"  # "video" (e2r's own, trainable) or "echoprime" (MViT-v2-S, frozen)
    n_frames: int = 16  # frames per clip
    size: tuple[int, int] = (64, 64)  # (H, W) of each frame
    fps: float | None = 16.0  # target frame rate for decode_video; None = native rate
    stride: int | None = None  # frame stride for decode_video (used when fps is None)
    color: str = "grey"  # "grey" (1 channel) or "rgb" (3 channels)
    mean: tuple[float, ...] = (29.0,)  # pixel mean on the 0-255 scale, 1 or 3 values
    std: tuple[float, ...] = (47.0,)  # pixel std on the 0-255 scale, 1 or 3 values
    patch: tuple[int, int] = (2, 4)  # own encoder: stem patch (frames, pixels)
    width: int = 16  # own encoder: stem channels (doubling per stage)
    depth: int = 3  # own encoder: number of (2+1)-D conv stages after the stem
    out_dim: int = 64  # E, the per-video embedding width (512 for echoprime)
    weights: str | None = None  # echoprime: the EchoPrime encoder state_dict file
    frozen: bool = False  # "video": freeze e2r's encoder (the paper freezes its echo encoder; embeddings are cached)

    @property
    def channels(self) -> int:
        """Input channels: 1 for grey, 3 for rgb."""
        return 3 if self.color == "rgb" else 1

    def decode_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for e2r.echo.decode_video that produce this encoder's input."""
        return {"n_frames": self.n_frames, "size": tuple(self.size), "fps": self.fps,
                "color": self.color, "stride": self.stride}


@dataclass(frozen=True)
class AggregationConfig:
    """How per-video embeddings become one study embedding."""

    mode: str = "attention"  # "attention" | "mean" | "single-view"
    heads: int = 4  # attention heads (attention mode)
    proj_dim: int = 256  # width the view embeddings are projected to before pooling


@dataclass(frozen=True)
class TrainDefaults:
    """The paper's training recipe; the trainer's config starts from these."""

    epochs: int = 50
    batch_size: int = 256
    lr: float = 5e-4
    weight_decay: float = 1e-7
    layer_decay: float = 0.75
    warmup_epochs: int = 5
    grad_clip: float = 1.0


@dataclass(frozen=True)
class ModelPreset:
    """A complete model description: rebuilding Echo2ECG from it gives the same architecture."""

    name: str
    ecg: ECGEncoderConfig
    echo: EchoEncoderConfig
    aggregation: AggregationConfig
    embed_dim: int = 512  # D, the shared embedding space
    temperature: float = 0.5  # InfoNCE temperature (logit scale = 1 / temperature)
    learn_temperature: bool = False  # train the logit scale
    ecg_preprocess: ECGPreprocessConfig = field(default_factory=ECGPreprocessConfig)
    train: TrainDefaults = field(default_factory=TrainDefaults)

    @property
    def ecg_samples(self) -> int:
        """Samples per lead of the ECG window the model reads (fs x window_s)."""
        return self.ecg_preprocess.n_samples


# e2r's ECG input: mV on a fixed scale with a soft limit, which keeps the QRS voltage of LV
# hypertrophy. Chosen over the paper's per-group z-score ("lead_groups", ECGPreprocessConfig's
# default, still a setting) by the validation rule of bench/ablate_ecg_normalise.py on the default
# benchmark (issue 22; docs/benchmarks.md, "ECG input ablation"). Bundles record their own choice.
E2R_ECG_NORMALISE = "mv_softclip"


def _tiny() -> ModelPreset:
    # Sized for a 2-core CPU. Two measured departures from the paper's settings (docs/benchmarks.md):
    # 1-s ECG patches (100 samples at 100 Hz) halve the token count, and the InfoNCE temperature is
    # 0.1, not 0.5: with a few hundred pairs and batch 32, 0.5 did not learn on CPU-sized runs.
    return ModelPreset(
        name="tiny",
        ecg=ECGEncoderConfig(dim=64, depth=3, heads=4, patch_size=100),
        echo=EchoEncoderConfig(kind="video", n_frames=16, size=(64, 64), fps=16.0, color="grey",
                               patch=(2, 8), width=32, depth=2, out_dim=64),
        aggregation=AggregationConfig(mode="attention", heads=4, proj_dim=64),
        embed_dim=128,
        temperature=0.1,
        ecg_preprocess=ECGPreprocessConfig(fs=100.0, window_s=10.0, normalise=E2R_ECG_NORMALISE),
        train=TrainDefaults(epochs=20, batch_size=32, lr=1e-3, warmup_epochs=2),
    )


def _base() -> ModelPreset:
    return ModelPreset(
        name="base",
        ecg=ECGEncoderConfig(dim=192, depth=12, heads=3, patch_size=24),
        echo=EchoEncoderConfig(kind="video", n_frames=16, size=(112, 112), fps=16.0, color="grey",
                               patch=(2, 4), width=32, depth=4, out_dim=512),
        aggregation=AggregationConfig(mode="attention", heads=8, proj_dim=512),
        embed_dim=512,
        ecg_preprocess=ECGPreprocessConfig(fs=250.0, window_s=10.0, normalise=E2R_ECG_NORMALISE),
    )


def _base_echoprime() -> ModelPreset:
    base = _base()
    return dataclasses.replace(
        base,
        name="base-echoprime",
        echo=EchoEncoderConfig(kind="echoprime", n_frames=16, size=(224, 224), fps=None, stride=2,
                               color="rgb", mean=ECHOPRIME_MEAN, std=ECHOPRIME_STD, out_dim=512),
    )


_PRESETS = {"tiny": _tiny, "base": _base, "base-echoprime": _base_echoprime}


def list_presets() -> list[str]:
    """Names of the built-in presets."""
    return list(_PRESETS)


def get_preset(name: str) -> ModelPreset:
    """The preset called `name`; PresetError naming the valid choices otherwise."""
    if name not in _PRESETS:
        raise PresetError(f"unknown preset {name!r}; choose one of: {', '.join(_PRESETS)}")
    preset = _PRESETS[name]()
    validate_preset(preset)
    return preset


def validate_preset(preset: ModelPreset) -> None:
    """Raise ConfigError naming the first invalid setting of `preset`."""
    e, v, a = preset.ecg, preset.echo, preset.aggregation
    checks = [
        (a.mode in AGGREGATION_MODES, (f"aggregation.mode={a.mode!r}: choose one of "
                                      f"{', '.join(AGGREGATION_MODES)}")),
        (v.kind in ECHO_KINDS, f"echo.kind={v.kind!r}: choose one of {', '.join(ECHO_KINDS)}"),
        (v.color in COLORS, f"echo.color={v.color!r}: choose one of {', '.join(COLORS)}"),
        (len(v.mean) in (1, v.channels) and len(v.std) in (1, v.channels),
         f"echo.mean/std need 1 or {v.channels} values for color={v.color!r}"),
        (all(s > 0 for s in v.std), "echo.std values must be > 0"),
        (v.kind != "echoprime" or (v.color == "rgb" and v.out_dim == 512),
         "echo.kind='echoprime' needs color='rgb' and out_dim=512"),
        (v.n_frames > 0 and len(v.size) == 2 and min(v.size) > 0, "echo.n_frames/size must be > 0"),
        (v.kind != "video" or (v.n_frames % v.patch[0] == 0 and v.size[0] % v.patch[1] == 0
                               and v.size[1] % v.patch[1] == 0),
         f"echo.n_frames={v.n_frames} and size={v.size} must be multiples of echo.patch={v.patch}"),
        (e.dim % e.heads == 0 and e.dim % 4 == 0, (f"ecg.dim={e.dim} must be divisible by "
                                                  f"ecg.heads={e.heads} and by 4")),
        (e.patch_size > 0 and e.depth > 0, "ecg.patch_size and ecg.depth must be > 0"),
        (a.proj_dim % a.heads == 0, (f"aggregation.proj_dim={a.proj_dim} must be divisible by "
                                    f"aggregation.heads={a.heads}")),
        (preset.temperature > 0, f"temperature={preset.temperature} must be > 0"),
        (preset.embed_dim > 0, f"embed_dim={preset.embed_dim} must be > 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"preset {preset.name!r}: {message}")
    preset.ecg_preprocess.validate()


def with_overrides(preset: ModelPreset, **changes: Any) -> ModelPreset:
    """A copy of `preset` with fields replaced and the result validated.

    Top-level fields by name (`temperature=0.1`); nested fields with a double underscore
    (`aggregation__mode="mean"`, `echo__weights="/x/echo_prime_encoder.pt"`, `train__epochs=5`).
    """
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in changes.items():
        section, _, sub = key.partition("__")
        if section not in _field_names(ModelPreset):
            raise PresetError(f"unknown preset field {key!r}; valid: {', '.join(_field_names(ModelPreset))}")
        if sub:
            nested.setdefault(section, {})[sub] = value
        else:
            top[section] = value
    for section, subs in nested.items():
        current = top.get(section, getattr(preset, section))
        valid = _field_names(type(current))
        for sub in subs:
            if sub not in valid:
                raise PresetError(f"unknown preset field {section}__{sub}; valid {section} fields: "
                                  f"{', '.join(valid)}")
        top[section] = dataclasses.replace(current, **subs)
    out = dataclasses.replace(preset, **top)
    validate_preset(out)
    return out


def preset_to_dict(preset: ModelPreset) -> dict[str, Any]:
    """A JSON-ready dict of the preset (tuples become lists)."""
    return dataclasses.asdict(preset)


def preset_from_dict(d: dict[str, Any]) -> ModelPreset:
    """Rebuild a preset written by `preset_to_dict`; PresetError on unknown or bad fields."""
    try:
        kwargs = dict(d)
        for name, cls in (("ecg", ECGEncoderConfig), ("echo", EchoEncoderConfig),
                          ("aggregation", AggregationConfig), ("train", TrainDefaults),
                          ("ecg_preprocess", ECGPreprocessConfig)):
            if name in kwargs:
                kwargs[name] = _dataclass_from_dict(cls, kwargs[name])
        preset = _dataclass_from_dict(ModelPreset, kwargs)
    except (TypeError, ValueError) as exc:
        raise PresetError(f"preset description is invalid ({exc}); it was written by another "
                          "e2r version or edited by hand") from exc
    validate_preset(preset)
    return preset


def _dataclass_from_dict(cls, d: dict[str, Any]):
    if not isinstance(d, dict):
        raise TypeError(f"{cls.__name__} must be a mapping, got {type(d).__name__}")
    valid = _field_names(cls)
    unknown = sorted(set(d) - set(valid))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {unknown}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]
