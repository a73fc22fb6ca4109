"""The ECG encoder as an ONNX graph: exported from torch when a bundle is written, run by ONNX
Runtime on the query side, so that a search node needs neither torch nor its import time.

    ecg (B, 12, N) float32 --graph--> features (B, C), embedding (B, D)

is `Echo2ECG.encode_ecg_features`: the pooled ECG features and the L2-normalised shared-space
embedding, the batch axis dynamic, opset `OPSET`. The echo side stays on torch (indexing runs
where training does).

Export (`export_ecg_graph`; torch and the `onnx` package) uses torch's TorchScript exporter
(`dynamo=False`): it needs only `onnx`, where the dynamo exporter also needs onnxscript. Before a
graph is accepted, ONNX Runtime runs it on a fixed probe set (`probe_ecgs`: seeded phantom ECGs,
preprocessed with the model's own settings, plus any real records given) one ECG at a time and
as one batch; an output further than `MAX_ABS_DIFF` from torch's refuses the graph.

A graph names the model it came from (ONNX metadata `e2r_model_hash`) and bundle.json records the
graph's sha256, so `open_ecg_graph` refuses one that is damaged or was copied from another model
before it runs (`ECGGraphError`, one line that says what to do).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from e2r import __version__
from e2r.errors import ECGGraphError, E2RError
from e2r.presets import ModelPreset, preset_from_dict
from e2r.util import one_line

log = logging.getLogger(__name__)

GRAPH_FILE = "ecg_encoder.onnx"
OPSET = 17
MAX_ABS_DIFF = 1e-4  # largest |ONNX Runtime - torch| accepted on the probe set, features and embedding alike
INPUT, OUTPUTS = "ecg", ("features", "embedding")
HASH_KEY = "e2r_model_hash"  # ONNX metadata: the bundle hash of the model the graph was exported from
PROBE_SEEDS = tuple(range(6))  # phantom ECGs of the probe set
PROBE_BATCH = 64  # probe ECGs per torch / ONNX Runtime batch in the export check
# The first onnxruntime release that runs each opset (onnxruntime.ai/docs/reference/compatibility.html).
ORT_FOR_OPSET = {17: (1, 13), 18: (1, 14), 19: (1, 15), 20: (1, 17), 21: (1, 18), 22: (1, 20)}


@dataclass(frozen=True)
class ECGGraph:
    """A bundle's ECG encoder on ONNX Runtime: what the query side needs of a model, without torch.

    It carries what `e2r.bundle.LoadedModel` carries for a search (preset, hash, meta, path, the
    echo tower's hash); `e2r.encode.encode_ecg_features` runs either. One session serves
    concurrent callers (ONNX Runtime's `run` is thread-safe)."""

    session: Any  # onnxruntime.InferenceSession
    preset: ModelPreset
    hash: str
    meta: dict
    path: Path

    backend = "onnxruntime"

    @property
    def echo_tower_hash(self) -> str | None:
        """Hash of the frozen echo tower (or EchoPrime file) the model was aligned to, if any."""
        from e2r.bundle import echo_tower_hash

        return echo_tower_hash(self.meta)

    def run(self, ecg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 12, N) float32 preprocessed ECGs -> (features (B, C), embedding (B, D)), float32."""
        features, embedding = self.session.run(list(OUTPUTS), {INPUT: np.ascontiguousarray(ecg, np.float32)})
        return features, embedding


@dataclass(frozen=True)
class ExportedGraph:
    """A checked graph, ready to be written: its bytes and its bundle.json record."""

    data: bytes
    record: dict  # file, sha256, opset, max_abs_diff, probe counts, exporter versions


def onnxruntime_installed() -> bool:
    """Whether onnxruntime can be imported (without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def probe_ecgs(preset: ModelPreset, real: Sequence[str | Path] = ()) -> tuple[np.ndarray, dict[str, int]]:
    """The probe set an exported graph must reproduce: (B, 12, N) float32 model inputs and counts.

    Phantom ECGs (e2r.phantom's heart and ECG model, seeds `PROBE_SEEDS`, 500 Hz, 10 s) and the
    readable records among `real` (paths as `e2r search` takes them), each preprocessed with the
    preset's settings exactly as a search preprocesses its query. Unreadable real records are
    left out and counted."""
    from e2r.ecg import ECGRecord, list_ecg_records, preprocess_ecg, read_for_model
    from e2r.ecg.leads import CANONICAL_LEADS
    from e2r.phantom.ecg_synth import synth_ecg
    from e2r.phantom.latent import draw_baseline_exam

    cfg = preset.ecg_preprocess
    inputs = []
    for seed in PROBE_SEEDS:
        rng = np.random.default_rng(seed)
        signal, _ = synth_ecg(draw_baseline_exam(rng), rng, 500.0)  # (12, T) mV
        record = ECGRecord(signal=signal.astype(np.float32), fs=500.0, path=f"phantom-probe-{seed}",
                           record_name=f"phantom-probe-{seed}", source_leads=CANONICAL_LEADS, derived=())
        inputs.append(preprocess_ecg(record, cfg).signal)
    n_real = unreadable = 0
    for item in real:
        for path in list_ecg_records(Path(item)):
            try:
                inputs.append(read_for_model(path, cfg)[1].signal)
                n_real += 1
            except E2RError as err:
                log.info("probe set: %s left out (%s)", path, err)
                unreadable += 1
    counts = {"phantom": len(PROBE_SEEDS), "real": n_real, "unreadable": unreadable}
    return np.stack(inputs).astype(np.float32), counts  # (B, 12, N)


def export_ecg_graph(model: Any, model_hash: str, real_probes: Sequence[str | Path] = ()) -> ExportedGraph:
    """Export `model`'s (an Echo2ECG's) ECG encoder to ONNX and check it against torch.

    ECGGraphError when ONNX Runtime's outputs differ from torch's by more than MAX_ABS_DIFF on the
    probe set (`probe_ecgs`, with `real_probes`), or when onnx / onnxruntime are not installed."""
    for package in ("onnx", "onnxruntime"):
        if importlib.util.find_spec(package) is None:
            raise ECGGraphError(f"exporting the ECG graph needs the {package} package, which is not installed; "
                                f"pip install {package} (or install e2r with its default dependencies)")
    import copy

    import onnx
    import onnxruntime
    import torch

    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    probes, counts = probe_ecgs(model.preset, real_probes)  # (B, 12, N)
    was_training = model.training
    model.eval()
    try:
        try:
            data = _export(model, torch, onnx, model_hash)
            session = _session(data)
        except Exception as exc:  # the exporter and the checker raise many types; training must not stop here
            raise ECGGraphError(f"the ECG encoder could not be exported to ONNX ({exc.__class__.__name__}: "
                                f"{one_line(exc)}); report it with torch {torch.__version__} and onnx "
                                f"{onnx.__version__}") from exc
        diff = 0.0
        for start in range(0, len(probes), PROBE_BATCH):
            chunk = probes[start:start + PROBE_BATCH]  # (b, 12, N)
            with torch.no_grad():
                want = [t.numpy() for t in model.encode_ecg_features(torch.from_numpy(chunk))]  # (b, C), (b, D)
            singles = [session.run(list(OUTPUTS), {INPUT: chunk[i:i + 1]}) for i in range(len(chunk))]
            runs = [session.run(list(OUTPUTS), {INPUT: chunk}),  # as one batch
                    [np.concatenate(parts) for parts in zip(*singles)]]  # one ECG at a time, as a search runs it
            diff = max(diff, *(float(np.abs(g - w).max()) for got in runs for g, w in zip(got, want)))
    finally:
        model.train(was_training)
    if not diff <= MAX_ABS_DIFF:  # NaN fails too
        raise ECGGraphError(f"the exported ECG graph differs from the torch model by {diff:.2e} (max abs, on "
                            f"{len(probes)} probe ECGs; at most {MAX_ABS_DIFF:g} is accepted), so it was refused; "
                            f"report it with torch {torch.__version__} and onnxruntime {onnxruntime.__version__}")
    record = {"file": GRAPH_FILE, "sha256": hashlib.sha256(data).hexdigest(), "opset": OPSET,
              "inputs": {INPUT: ["batch", 12, model.preset.ecg_samples]}, "outputs": list(OUTPUTS),
              "max_abs_diff": diff, "probe": counts,
              "exported_with": f"e2r {__version__}, torch {torch.__version__}, onnx {onnx.__version__}, "
                               f"onnxruntime {onnxruntime.__version__}"}
    log.info("ECG graph exported: %d KiB, max abs diff %.1e on %d probe ECGs", len(data) // 1024, diff, len(probes))
    return ExportedGraph(data=data, record=record)


def _export(model: Any, torch: Any, onnx: Any, model_hash: str) -> bytes:
    """The TorchScript export of model.encode_ecg_features, with the model hash in its metadata."""
    import io

    class _ECGEncoder(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, ecg):  # (B, 12, N) -> (B, C), (B, D)
            return self.inner.encode_ecg_features(ecg)

    example = torch.zeros(2, model.preset.ecg.n_leads, model.preset.ecg_samples)
    buf = io.BytesIO()
    axes = {name: {0: "batch"} for name in (INPUT, *OUTPUTS)}
    with warnings.catch_warnings():  # the tracer's notes on shape arithmetic and the exporter's deprecation
        warnings.simplefilter("ignore")
        torch.onnx.export(_ECGEncoder(model), (example,), buf, input_names=[INPUT], output_names=list(OUTPUTS),
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    graph = onnx.load_from_string(buf.getvalue())
    for key, value in ((HASH_KEY, model_hash), ("e2r_version", __version__), ("e2r_preset", model.preset.name)):
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    graph.doc_string = "e2r ECG encoder: Echo2ECG.encode_ecg_features"
    onnx.checker.check_model(graph)
    return graph.SerializeToString()


def _session(data: bytes) -> Any:
    """An ONNX Runtime CPU session of a graph's bytes, with the settings every e2r session uses."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings are about optimisations, not about results
    # Idle intra-op threads sleep instead of spinning: on a shared 2-core machine the spinning took
    # the cores from concurrent searches and everything else (one ECG 6.1 -> 2.1 ms under load 6.6;
    # 4 threads 341 -> 620 ECGs/s).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def check_runtime(opset: int, graph: Path) -> None:
    """ECGGraphError naming both versions when the installed onnxruntime is older than `opset` needs."""
    import onnxruntime
    from packaging.version import InvalidVersion, Version  # an onnxruntime dependency

    need = ORT_FOR_OPSET.get(int(opset))
    try:
        have = Version(onnxruntime.__version__).release
    except InvalidVersion:
        return  # a local build: let the session say whether it runs the graph
    if need is not None and have < need:
        raise ECGGraphError(f"{graph}: the graph has ONNX opset {opset}, which needs onnxruntime >= "
                            f"{'.'.join(map(str, need))}; this is onnxruntime {onnxruntime.__version__}: upgrade it "
                            "(pip install -U onnxruntime)")


def open_ecg_graph(bundle: Path, meta: dict) -> ECGGraph:
    """The bundle's ECG graph (recorded in `meta`, its bundle.json) as an ECGGraph, verified:
    the file is there, its sha256 is the recorded one, it names this model's hash, this
    onnxruntime runs its opset. ECGGraphError with what to do otherwise; imports no torch."""
    import onnxruntime

    record = meta.get("ecg_graph")
    redo = f"run `e2r export-onnx {bundle}` where torch is installed to write it again"
    if not isinstance(record, dict) or not str(record.get("opset", OPSET)).isdigit():
        raise ECGGraphError(f"{bundle}: bundle.json's ecg_graph entry is damaged; {redo}")
    graph = bundle / str(record.get("file", GRAPH_FILE))
    try:
        data = graph.read_bytes()
    except OSError as exc:
        raise ECGGraphError(f"{graph}: bundle.json lists an ECG graph but it cannot be read "
                            f"({exc.strerror or exc.__class__.__name__}); copy the whole bundle folder, or "
                            f"{redo}") from None
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise ECGGraphError(f"{graph}: its sha256 is not the one bundle.json records, so it is damaged or was "
                            f"replaced; {redo}")
    check_runtime(int(record.get("opset", OPSET)), graph)
    try:
        session = _session(data)
    except Exception as exc:  # onnxruntime raises its own types (Fail, InvalidGraph, ...) for a bad file
        raise ECGGraphError(f"{graph}: onnxruntime {onnxruntime.__version__} cannot load it "
                            f"({exc.__class__.__name__}); {redo}") from None
    made_from = session.get_modelmeta().custom_metadata_map.get(HASH_KEY)
    if made_from != meta["hash"]:
        raise ECGGraphError(f"{graph}: exported from model {made_from}, but this bundle holds model {meta['hash']}; "
                            f"{redo}")
    try:
        preset = preset_from_dict(meta["preset"])
    except E2RError as exc:
        raise ECGGraphError(f"{bundle}: cannot read the bundle's preset: {exc}") from exc
    return ECGGraph(session=session, preset=preset, hash=meta["hash"], meta=meta, path=bundle)

