"""The model bundle: one directory that describes and rebuilds a trained model.

    bundle.json       format, e2r version, preset, preprocessing, train_config, data_summary, hash, ...
    weights.pt        the model's state_dict
    ecg_encoder.onnx  the ECG encoder as an ONNX graph (e2r.ecg_graph), for searching without torch

The content hash is sha256 over the preset description and every tensor (name, dtype, shape,
bytes), first 16 hex digits: two bundles holding the same model have the same hash whatever
their training logs say, and any change to weights or architecture changes it. Indexes record it.

The graph is bound to that hash rather than folded into it: the graph names the hash of the
model it was exported from (its ONNX metadata) and bundle.json records the graph's sha256, both
checked before it runs. So adding a graph to an existing bundle (`e2r export-onnx`) leaves the
hash, and every index built with the bundle, as they were; a bundle without a graph (written
before graphs existed) keeps its hash too.

`load_model` rebuilds the torch model (training, indexing); `load_ecg_encoder` gives the query
side its ECG encoder: the graph on ONNX Runtime when there is one and onnxruntime is installed,
else the torch model, and says once why.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.util
import json
import logging
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from e2r import __version__
from e2r.errors import BundleError, E2RError, ECGGraphError
from e2r.presets import ModelPreset, preset_from_dict, preset_to_dict
from e2r.util import atomic_write, jsonable

if TYPE_CHECKING:  # torch is imported where a function needs it: the query side may run without it
    import torch

    from e2r.ecg_graph import ECGGraph
    from e2r.models import Echo2ECG

log = logging.getLogger(__name__)

BUNDLE_FORMAT = 1
META_FILE = "bundle.json"
WEIGHTS_FILE = "weights.pt"


def echo_tower_hash(meta: dict) -> str | None:
    """The echo tower hash a bundle's bundle.json records (None: no frozen tower), for every model
    handle (LoadedModel here, e2r.ecg_graph.ECGGraph)."""
    return (meta.get("echo_tower") or {}).get("hash")


@dataclass(frozen=True)
class LoadedModel:
    """A model rebuilt from a bundle (in eval mode) with its description."""

    model: Echo2ECG
    preset: ModelPreset
    hash: str
    meta: dict
    path: Path

    backend = "torch"

    @property
    def echo_tower_hash(self) -> str | None:
        """Hash of the frozen echo tower (or EchoPrime file) the model was aligned to, if any."""
        return echo_tower_hash(self.meta)


def content_hash(preset_dict: dict, state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 (hex, first 16) of the preset description and the weights."""
    import torch

    h = hashlib.sha256()
    h.update(json.dumps(preset_dict, sort_keys=True).encode())
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def save_bundle(model: Echo2ECG, out_dir: str | Path, train_config: dict | None = None,
                data_summary: dict | None = None, echo_tower: dict | None = None, ecg_graph: bool = True) -> str:
    """Write `model` as a bundle into out_dir (created if needed); returns the content hash.

    `echo_tower`: {"kind", "hash", "path"} of the frozen echo encoder it was aligned to (recorded
    so indexes can check it; e2r.echo_tower.EchoSource.describe()). `ecg_graph`: also write the
    ECG encoder's ONNX graph (e2r.ecg_graph), checked against the model; when it cannot be made
    (onnx missing, or refused by the check) the bundle is written without it and a warning says so.

    Files are written to temporaries and moved into place, bundle.json last, so a crash never
    leaves a bundle.json that points at half-written weights or graph.
    """
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    preset = model.preset
    preset_dict = preset_to_dict(preset)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    digest = content_hash(preset_dict, state)
    meta = {
        "format": BUNDLE_FORMAT,
        "e2r_version": __version__,
        "hash": digest,
        "preset": preset_dict,
        "preprocessing": {"ecg": asdict(preset.ecg_preprocess),
                          "echo": {**preset.echo.decode_kwargs(), "mean": list(preset.echo.mean),
                                   "std": list(preset.echo.std)}},
        "embed_dim": preset.embed_dim,
        "train_config": jsonable(train_config or {}),
        "data_summary": jsonable(data_summary or {}),
        "created_by": f"e2r {__version__} (torch {torch.__version__}, python {platform.python_version()})",
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "files": {"weights": WEIGHTS_FILE},
    }
    if echo_tower:
        meta["echo_tower"] = jsonable(echo_tower)
    atomic_write(out / WEIGHTS_FILE, lambda f: torch.save(state, f))
    written = False
    if ecg_graph:
        try:
            written = bool(_write_graph(out, meta, model, digest))
        except ECGGraphError as err:
            log.warning("model bundle %s: written without an ONNX graph of its ECG encoder (searches will use "
                        "torch): %s", out, err)
    if not written:  # a graph left from an earlier bundle in this folder belongs to another model
        from e2r.ecg_graph import GRAPH_FILE

        (out / GRAPH_FILE).unlink(missing_ok=True)
    atomic_write(out / META_FILE, lambda f: f.write(json.dumps(meta, indent=2).encode()))
    log.info("saved model bundle %s (hash %s)", out, digest)
    return digest


def save_untrained_bundle(preset: str | ModelPreset, seed: int, out_dir: str | Path, note: str = "untrained") -> str:
    """An untrained Echo2ECG of `preset` initialised with `seed`, saved as a bundle; its hash.

    The benchmark's random-init arm and the tests' fixed-seed models are made here.
    """
    import torch

    from e2r.models import Echo2ECG
    from e2r.presets import get_preset

    torch.manual_seed(seed)
    model = Echo2ECG(get_preset(preset) if isinstance(preset, str) else preset).eval()
    name = model.preset.name
    return save_bundle(model, out_dir, train_config={"random_init": True, "seed": seed, "preset": name, "note": note},
                       data_summary={})


def _read_meta(path: Path) -> dict:
    if not path.exists():
        raise BundleError(f"{path}: no such model bundle directory; pass the --out folder of `e2r train`")
    if not path.is_dir():
        raise BundleError(f"{path}: is a file, not a model bundle directory; pass the folder holding "
                          f"{META_FILE}")
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise BundleError(f"{meta_path}: missing, so {path} is not a model bundle; pass the --out folder "
                          "of `e2r train`")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{meta_path}: corrupt ({exc.__class__.__name__}); re-export or retrain the "
                          "model") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("format"), int):
        raise BundleError(f"{meta_path}: not an e2r bundle description (no format field); re-export "
                          "the model")
    if meta["format"] > BUNDLE_FORMAT:
        raise BundleError(f"{meta_path}: bundle format {meta['format']} was written by a newer e2r "
                          f"({meta.get('e2r_version', '?')}); upgrade e2r (this is {__version__})")
    for key in ("hash", "preset"):
        if key not in meta:
            raise BundleError(f"{meta_path}: lacks {key!r}; re-export or retrain the model")
    return meta


def _read_state(path: Path, meta: dict) -> dict[str, torch.Tensor]:
    import torch

    weights = path / meta.get("files", {}).get("weights", WEIGHTS_FILE)
    if not weights.is_file():
        raise BundleError(f"{weights}: missing from the model bundle; copy the whole bundle folder")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/pickle raise many types for a truncated or foreign file
        raise BundleError(f"{weights}: corrupt or unreadable ({exc.__class__.__name__}); copy the "
                          "bundle again or retrain") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BundleError(f"{weights}: not a state_dict of tensors; copy the bundle again or retrain")
    return state


def _verify(path: Path, meta: dict, state: dict) -> str:
    digest = content_hash(meta["preset"], state)
    if digest != meta["hash"]:
        raise BundleError(f"{path}: content hash {digest} does not match bundle.json's {meta['hash']}; "
                          "the weights or preset were changed or damaged; copy the bundle again or retrain")
    return digest


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the bundle's model exactly (eval mode, on `device`); BundleError on any problem."""
    from e2r.models import Echo2ECG

    path = Path(path)
    meta = _read_meta(path)
    state = _read_state(path, meta)
    digest = _verify(path, meta, state)
    try:
        preset = preset_from_dict(meta["preset"])
        model = Echo2ECG(preset, load_weights=False)
    except E2RError as exc:
        raise BundleError(f"{path / META_FILE}: cannot rebuild the model: {exc}") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise BundleError(f"{path / WEIGHTS_FILE}: weights do not fit the preset ({first}); "
                          "the bundle is damaged or from an incompatible e2r") from exc
    model.to(device).eval()
    return LoadedModel(model=model, preset=preset, hash=digest, meta=meta, path=path)


def bundle_hash(path: str | Path) -> str:
    """The bundle's content hash, verified against its weights (BundleError if they differ)."""
    path = Path(path)
    meta = _read_meta(path)
    return _verify(path, meta, _read_state(path, meta))


def _write_graph(out: Path, meta: dict, model: Echo2ECG, digest: str, real_probes: Sequence[str | Path] = ()) -> dict:
    """Export and check the ECG graph (e2r.ecg_graph), write it into `out` and record it in
    `meta` (the caller writes bundle.json after); ECGGraphError when it cannot be made."""
    from e2r.ecg_graph import export_ecg_graph

    graph = export_ecg_graph(model, digest, real_probes)
    atomic_write(out / graph.record["file"], lambda f: f.write(graph.data))
    meta["files"] = {**meta.get("files", {}), "ecg_graph": graph.record["file"]}
    meta["ecg_graph"] = graph.record
    return graph.record


def add_ecg_graph(path: str | Path, real_probes: Sequence[str | Path] = ()) -> dict:
    """Write the ECG encoder's ONNX graph into an existing bundle (`e2r export-onnx`), replacing
    any graph it has; returns the graph's bundle.json record. The bundle's hash, and so every index
    built with it, stays as it was. `real_probes`: ECG records added to the export check's probe
    set. BundleError when the bundle does not load, ECGGraphError when the graph is refused."""
    path = Path(path)
    loaded = load_model(path)
    meta = dict(loaded.meta)
    try:
        record = _write_graph(path, meta, loaded.model, loaded.hash, real_probes)
        atomic_write(path / META_FILE, lambda f: f.write(json.dumps(meta, indent=2).encode()))
    except OSError as exc:
        raise BundleError(f"{path}: cannot write the ECG graph into the bundle ({exc.strerror or exc}); make the "
                          "folder writable, or copy the bundle somewhere writable and export there") from None
    log.info("model bundle %s: ECG graph written (%s)", path, record["file"])
    return record


def torch_installed() -> bool:
    """Whether torch can be imported (without importing it: that alone costs a search ~1 s)."""
    return importlib.util.find_spec("torch") is not None


_said: set[str] = set()


def _say_once(message: str) -> None:
    """A warning logged once per process (a server builds one Searcher; tests build many)."""
    if message not in _said:
        _said.add(message)
        log.warning("%s", message)


def load_ecg_encoder(path: str | Path, backend: str = "auto") -> ECGGraph | LoadedModel:
    """The bundle's ECG encoder for the query side (search, serve, embed, labelled evaluation);
    `e2r.encode.encode_ecg_features` runs either kind.

    backend "auto": the ONNX graph on ONNX Runtime (torch is never imported) when the bundle has
    one and onnxruntime is installed; otherwise the torch model, with one warning saying why. A
    graph that is missing, damaged, from another model or too new for the installed onnxruntime
    gets that warning too and torch takes over; without torch it is a BundleError instead.
    "onnx" and "torch" choose the backend and fail (BundleError) rather than fall back.
    """
    from e2r.ecg_graph import onnxruntime_installed, open_ecg_graph

    if backend not in ("auto", "onnx", "torch"):
        raise BundleError(f"ECG encoder backend {backend!r}: choose auto, onnx or torch")
    path = Path(path)
    if backend == "torch":
        return load_model(path)
    meta = _read_meta(path)
    reason = None
    if not meta.get("ecg_graph"):
        reason = (f"model bundle {path} has no ONNX graph of its ECG encoder (run `e2r export-onnx {path}` once to "
                  "search without torch)")
    elif not onnxruntime_installed():
        reason = "onnxruntime is not installed (pip install onnxruntime to search without torch)"
    else:
        try:
            return open_ecg_graph(path, meta)
        except ECGGraphError as err:
            if backend == "onnx" or not torch_installed():
                raise
            reason = str(err)
    if backend == "onnx":
        raise ECGGraphError(reason)
    if not torch_installed():
        raise BundleError(f"{reason}; torch is not installed either, so nothing here can encode ECGs: write the graph "
                          "where torch is, or install e2r with torch")
    _say_once(f"{reason}; encoding ECGs with torch")
    return load_model(path)
