"""The echo tower: e2r's per-video encoder pretrained on the archive's own measurements.

The paper aligns the ECG against a frozen EchoPrime. e2r's default replaces it with its own video
encoder trained first to regress each video's study phenotypes (`e2r train-echo`, as
EchoNet-Dynamic and DROID do), then frozen while the ECG is aligned to it (`e2r train
--echo-encoder`). A tower is one folder:

    tower.json   format, kind "e2r-echo-tower", hash, echo encoder config, fields, train-split
                 normalisation (mean, SD per field), what it was trained on, validation r / MAE
    weights.pt   state_dict of EchoTower (encoder.* = the VideoEncoder, head.* = the regression head)

The hash covers the config, the fields, the normalisation and every tensor. `resolve_echo_encoder`
also accepts an EchoPrime encoder weight file in the tower's place.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from e2r import __version__
from e2r.errors import BundleError, E2RError
from e2r.models.video_encoder import VideoEncoder
from e2r.phenotypes import TOWER_FIELDS  # noqa: F401  (the tower's default fields, re-exported)
from e2r.presets import EchoEncoderConfig, _dataclass_from_dict
from e2r.util import atomic_write, jsonable, one_line

TOWER_FORMAT = 1
TOWER_KIND = "e2r-echo-tower"
TOWER_FILE = "tower.json"
WEIGHTS_FILE = "weights.pt"


class EchoTower(nn.Module):
    """VideoEncoder + one linear head: (N, F, C, H, W) -> (N, len(fields)) z-scored phenotypes."""

    def __init__(self, cfg: EchoEncoderConfig, n_fields: int):
        super().__init__()
        self.cfg = cfg
        self.encoder = VideoEncoder(cfg)
        self.head = nn.Linear(cfg.out_dim, n_fields)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(video))  # (N, K)


@dataclass(frozen=True)
class EchoSource:
    """A frozen echo encoder for alignment: e2r's tower or an EchoPrime weight file."""

    kind: str                                  # "e2r-echo-tower" or "echoprime"
    echo: EchoEncoderConfig                    # the encoder config the model preset takes
    hash: str                                  # tower hash, or sha256[:16] of the EchoPrime file
    path: Path
    encoder_state: Optional[dict[str, torch.Tensor]] = None  # VideoEncoder weights (towers only)
    meta: dict = dataclasses.field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """What a model bundle and a collection record about the tower."""
        return {"kind": self.kind, "hash": self.hash, "path": str(self.path.resolve())}


def tower_hash(meta_core: dict[str, Any], state: dict[str, torch.Tensor]) -> str:
    """sha256[:16] of the tower's description and weights (see e2r.bundle.content_hash)."""
    from e2r.bundle import content_hash

    return content_hash(meta_core, state)


def _core(cfg: EchoEncoderConfig, fields: tuple[str, ...], norm: dict[str, list[float]]) -> dict[str, Any]:
    return {"echo": dataclasses.asdict(cfg), "fields": list(fields), "norm": norm}


def save_echo_tower(model: EchoTower, out_dir: str | Path, fields: tuple[str, ...],
                    norm: dict[str, tuple[float, float]], info: dict[str, Any]) -> str:
    """Write the tower into out_dir (weights first, tower.json last, both atomically); its hash."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    core = _core(model.cfg, tuple(fields), {k: [float(a), float(b)] for k, (a, b) in norm.items()})
    digest = tower_hash(core, state)
    meta = {"format": TOWER_FORMAT, "kind": TOWER_KIND, "e2r_version": __version__, "hash": digest,
            **core, **jsonable(info),
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "files": {"weights": WEIGHTS_FILE}}
    atomic_write(out / WEIGHTS_FILE, lambda f: torch.save(state, f))
    atomic_write(out / TOWER_FILE, lambda f: f.write(json.dumps(meta, indent=2).encode()))
    return digest


def load_echo_tower(path: str | Path) -> tuple[EchoTower, dict[str, Any]]:
    """Rebuild a tower (eval mode) and its tower.json; BundleError with one line on any problem."""
    path = Path(path)
    meta_path = path / TOWER_FILE
    if not path.is_dir() or not meta_path.is_file():
        hint = (" (it is a model bundle from `e2r train`, not a tower)" if (path / "bundle.json").is_file()
                else "")
        raise BundleError(f"{path}: not an echo-tower folder{hint}; pass the --out folder of "
                          "`e2r train-echo`, or an EchoPrime encoder weight file (.pt)")
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("kind") != TOWER_KIND or not isinstance(meta.get("format"), int):
            raise ValueError("not an e2r echo tower description")
        if meta["format"] > TOWER_FORMAT:
            raise BundleError(f"{meta_path}: tower format {meta['format']} was written by a newer e2r; upgrade e2r")
        cfg = _dataclass_from_dict(EchoEncoderConfig, meta["echo"])
        fields = tuple(meta["fields"])
        norm = {k: list(v) for k, v in meta["norm"].items()}
    except BundleError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{meta_path}: unreadable or not an e2r echo tower ({exc}); retrain with "
                          "`e2r train-echo`") from exc
    weights = path / meta.get("files", {}).get("weights", WEIGHTS_FILE)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/pickle raise many types for a missing, truncated or foreign file
        raise BundleError(f"{weights}: missing or unreadable ({exc.__class__.__name__}); copy the whole "
                          "tower folder again or retrain") from exc
    digest = tower_hash(_core(cfg, fields, norm), state)
    if digest != meta.get("hash"):
        raise BundleError(f"{path}: content hash {digest} does not match tower.json's {meta.get('hash')}; "
                          "the tower was changed or damaged; copy it again or retrain")
    try:
        model = EchoTower(cfg, len(fields))
        model.load_state_dict(state, strict=True)
    except (RuntimeError, E2RError) as exc:
        raise BundleError(f"{weights}: weights do not fit tower.json ({one_line(str(exc).splitlines()[0] if str(exc) else exc)})") from exc
    return model.eval(), meta


def resolve_echo_encoder(path: str | Path) -> EchoSource:
    """`--echo-encoder PATH`: a tower folder from `e2r train-echo`, or an EchoPrime weight file."""
    path = Path(path)
    if path.is_file():
        from e2r.presets import get_preset

        echo = dataclasses.replace(get_preset("base-echoprime").echo, weights=str(path))
        return EchoSource("echoprime", echo, _file_hash(path), path)
    if not path.exists():
        raise BundleError(f"--echo-encoder {path}: no such file or folder; pass the --out folder of "
                          "`e2r train-echo` or an EchoPrime encoder weight file")
    model, meta = load_echo_tower(path)
    encoder_state = {k[len("encoder."):]: v for k, v in model.state_dict().items() if k.startswith("encoder.")}
    echo = dataclasses.replace(model.cfg, frozen=True, weights=None)
    return EchoSource(TOWER_KIND, echo, meta["hash"], path, encoder_state, meta)


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
