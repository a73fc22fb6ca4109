"""The ECG encoder's ONNX graph (e2r.ecg_graph): written into every new bundle and checked against
torch at export, run by ONNX Runtime on the query side without importing torch, and the one line
a missing, damaged, foreign or too-new graph gets."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from e2r.bundle import bundle_hash, load_ecg_encoder, load_model, save_bundle, save_untrained_bundle
from e2r.cli import app
from e2r.ecg_graph import GRAPH_FILE, MAX_ABS_DIFF, OPSET, ECGGraph
from e2r.errors import BundleError, ECGGraphError
from e2r.phantom.pulse_ecg import write_pulse_ecg

pytest.importorskip("onnxruntime", reason="the ECG graph needs onnxruntime (pip install -e '.[test]')")

runner = CliRunner()
SHARED_ECG = Path(__file__).resolve().parents[2] / "shared" / "data" / "ecg"
# One line at exit: whether the e2r command that just ran imported torch.
NO_TORCH_PROBE = ("import atexit, sys; atexit.register(lambda: print('torch imported:', 'torch' in sys.modules, "
                  "file=sys.stderr)); sys.argv = ['e2r', *sys.argv[1:]]; from e2r.cli import main; main()")


def _copy(bundle: Path, to: Path) -> Path:
    shutil.copytree(bundle, to)
    return to


def _meta(bundle: Path) -> dict:
    return json.loads((bundle / "bundle.json").read_text())


def _write_meta(bundle: Path, meta: dict) -> None:
    (bundle / "bundle.json").write_text(json.dumps(meta, indent=2))


def _fill(store, loaded, n: int, seed: int = 0) -> None:
    """`n` clustered unit vectors with phenotype payloads, as bench/bench_search.py fills a store."""
    from e2r.phenotypes import derive_labels
    from e2r.store import Point, point_id_for
    from indexer.pipeline import ensure_collection

    ensure_collection(store, "echo_studies", loaded)
    rng = np.random.default_rng(seed)
    dim = loaded.preset.embed_dim
    vec = rng.standard_normal((10, dim))[rng.integers(0, 10, n)] + 0.5 * rng.standard_normal((n, dim))
    vec = (vec / np.linalg.norm(vec, axis=1, keepdims=True)).astype(np.float32)
    points = []
    for i in range(n):
        ph = {"lvef": float(rng.uniform(15, 75)), "ivsd": float(rng.uniform(7, 17)), "lvpwd": 10.0}
        payload = {"study_uid": f"1.2.3.{i}", "views": ["A4C"], "n_videos": 1, "study_date": 20200101,
                   **ph, **derive_labels(ph)}
        points.append(Point(point_id_for(payload["study_uid"]), vec[i], payload))
    store.upsert("echo_studies", points)


@pytest.fixture(scope="module")
def indexed(tiny_bundle, tmp_path_factory):
    """(home of a 300-study store built with the session bundle, its ECGs folder, a labels CSV)."""
    from e2r.store import open_store

    root = tmp_path_factory.mktemp("graph-search")
    with open_store(root / "home") as store:
        _fill(store, load_model(tiny_bundle), 300)
    ecgs = root / "ecgs"
    for i in range(6):
        write_pulse_ecg(ecgs, f"r{i}", seed=i)
    rows = [f"r{i}.hea,{i % 2},{(i + 1) % 2}" for i in range(6)]
    (ecgs / "labels.csv").write_text("ecg_path,label,lvef_le45\n" + "\n".join(rows) + "\n")
    return root / "home", ecgs


# -- export ------------------------------------------------------------------------------------------
def test_every_new_bundle_carries_a_checked_graph_and_keeps_its_hash(tiny_bundle, tmp_path):
    meta = _meta(tiny_bundle)
    record = meta["ecg_graph"]
    assert meta["files"]["ecg_graph"] == GRAPH_FILE == record["file"] and (tiny_bundle / GRAPH_FILE).is_file()
    assert record["opset"] == OPSET and record["outputs"] == ["features", "embedding"]
    assert 0 <= record["max_abs_diff"] <= MAX_ABS_DIFF and record["probe"]["phantom"] >= 6
    # The hash is the model's (preset + weights): a bundle of the same model without a graph has it too.
    model = load_model(tiny_bundle).model
    assert save_bundle(model, tmp_path / "plain", ecg_graph=False) == meta["hash"] == bundle_hash(tiny_bundle)
    assert "ecg_graph" not in _meta(tmp_path / "plain")


def test_graph_reproduces_torch_on_features_and_embeddings(tiny_bundle):
    from e2r.encode import encode_ecg_features

    graph, torch_model = load_ecg_encoder(tiny_bundle), load_ecg_encoder(tiny_bundle, backend="torch")
    assert isinstance(graph, ECGGraph) and graph.backend == "onnxruntime" and torch_model.backend == "torch"
    x = np.random.default_rng(0).standard_normal((5, 12, graph.preset.ecg_samples)).astype(np.float32)
    for batch_size in (1, 2, 128):  # the batch axis is dynamic
        for got, want in zip(encode_ecg_features(graph, x, batch_size), encode_ecg_features(torch_model, x)):
            assert got.shape == want.shape and got.dtype == np.float32
            np.testing.assert_allclose(got, want, atol=MAX_ABS_DIFF, rtol=0)


def test_export_onnx_adds_a_graph_to_an_old_bundle(tiny_bundle, tmp_path):
    old = tmp_path / "old"
    digest = save_bundle(load_model(tiny_bundle).model, old, ecg_graph=False)
    assert isinstance(load_ecg_encoder(old), type(load_model(old)))  # torch, until it has a graph
    result = runner.invoke(app, ["export-onnx", str(old)])
    assert result.exit_code == 0, result.output
    assert "ECG graph written" in result.stdout and "phantom" in result.stdout
    assert _meta(old)["hash"] == digest == bundle_hash(old)
    assert isinstance(load_ecg_encoder(old), ECGGraph)
    doc = json.loads(runner.invoke(app, ["export-onnx", str(old), "--json"]).stdout)  # again: replaced
    assert doc["sha256"] == _meta(old)["ecg_graph"]["sha256"] and doc["bytes"] > 1000


def test_export_refuses_a_graph_that_differs_from_torch(tiny_bundle, tmp_path, monkeypatch, caplog):
    import torch

    import e2r.ecg_graph as ecg_graph

    real_export = ecg_graph._export

    def skewed(model, torch_, onnx, digest):  # the graph of a slightly different model
        with torch.no_grad():
            model.ecg_encoder.fc_norm.bias += 0.01
        try:
            return real_export(model, torch_, onnx, digest)
        finally:
            with torch.no_grad():
                model.ecg_encoder.fc_norm.bias -= 0.01

    bundle = _copy(tiny_bundle, tmp_path / "b")
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    monkeypatch.setattr(ecg_graph, "_export", skewed)
    result = runner.invoke(app, ["export-onnx", str(bundle)])
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith("Error: the exported ECG graph differs from the torch model by") and "refused" in line
    assert len(line.splitlines()) == 1
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before  # left as it was
    with caplog.at_level(logging.WARNING, logger="e2r.bundle"):  # training still gets its bundle, without a graph
        save_bundle(load_model(bundle).model, tmp_path / "new")
    assert "ecg_graph" not in _meta(tmp_path / "new") and not (tmp_path / "new" / GRAPH_FILE).exists()
    assert any("written without an ONNX graph" in r.getMessage() for r in caplog.records)


def test_export_onnx_faults_are_one_line(tiny_bundle, tmp_path, monkeypatch):
    import e2r.bundle

    missing = runner.invoke(app, ["export-onnx", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "no such model bundle" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(e2r.bundle, "atomic_write", read_only)
    denied = runner.invoke(app, ["export-onnx", str(_copy(tiny_bundle, tmp_path / "b"))])
    assert denied.exit_code == 1 and "Permission denied" in denied.stderr and "writable" in denied.stderr
    assert len(denied.stderr.strip().splitlines()) == 1


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_ECG.is_dir(), reason="needs ../shared/data/ecg")
def test_export_check_takes_real_probe_ecgs(tiny_bundle, tmp_path):
    bundle = _copy(tiny_bundle, tmp_path / "b")
    result = runner.invoke(app, ["export-onnx", str(bundle), "--probe-ecgs", str(SHARED_ECG / "cinc2021"),
                                 "--probe-ecgs", str(SHARED_ECG / "ptbdb"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["probe"]["real"] == 21 and doc["max_abs_diff"] <= MAX_ABS_DIFF


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_ECG.is_dir(), reason="needs ../shared/data/ecg")
def test_every_real_ecg_encodes_and_ranks_alike_on_both_backends(tiny_bundle, tmp_path):
    """Every real ECG in ../shared/data: embeddings within 1e-4 of torch's, and the same top-10
    studies in the same order from the store."""
    from e2r.ecg import list_ecg_records, read_for_model
    from e2r.encode import encode_ecg_features
    from e2r.errors import E2RError
    from e2r.store import SearchRequest, open_store

    graph, torch_model = load_ecg_encoder(tiny_bundle), load_ecg_encoder(tiny_bundle, backend="torch")
    inputs = []
    for path in list_ecg_records(SHARED_ECG):
        try:
            inputs.append(read_for_model(path, graph.preset.ecg_preprocess)[1])
        except E2RError:
            continue  # a record e2r refuses is refused on both backends alike
    assert len(inputs) >= 1000  # PTB-XL at 500 and 100 Hz, CinC 2021, PTB
    got, want = encode_ecg_features(graph, inputs), encode_ecg_features(torch_model, inputs)
    for g, w in zip(got, want):
        assert float(np.abs(g - w).max()) <= MAX_ABS_DIFF
    with open_store(tmp_path / "home") as store:
        _fill(store, torch_model, 2000, seed=1)
        top = [SearchRequest(10, None, ("study_uid",))]
        for a, b in zip(got[1], want[1]):
            assert ([h.id for h in store.search_batch("echo_studies", a, top)[0]]
                    == [h.id for h in store.search_batch("echo_studies", b, top)[0]])


# -- the query side without torch --------------------------------------------------------------------
def _run_no_torch(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NO_TORCH_PROBE, *args], capture_output=True, text=True,
                          timeout=timeout)


def test_search_embed_and_labelled_eval_never_import_torch(indexed, tmp_path):
    home, ecgs = indexed
    runs = {
        "search": _run_no_torch("search", str(ecgs / "r0.hea"), "--data-dir", str(home), "--json"),
        "batch search": _run_no_torch("search", str(ecgs), "--data-dir", str(home), "--out", str(tmp_path / "r.jsonl")),
        "embed": _run_no_torch("embed", str(ecgs), "--model", str(_model_of(home)), "--out", str(tmp_path / "e.npz")),
        "eval": _run_no_torch("eval", "--ecg-labels", str(ecgs / "labels.csv"), "--data-dir", str(home),
                              "--out", str(tmp_path / "eval"), "--bootstrap", "50"),
    }
    for name, proc in runs.items():
        assert proc.returncode == 0, (name, proc.stderr)
        assert "torch imported: False" in proc.stderr, (name, proc.stderr)
        assert "encoding ECGs with torch" not in proc.stderr, (name, proc.stderr)
    doc = json.loads(runs["search"].stdout)
    assert len(doc["neighbours"]) == 10 and doc["model_hash"] == _meta(_model_of(home))["hash"]


def _model_of(home: Path) -> Path:
    from e2r.store import open_store

    with open_store(home) as store:
        return Path(store.get_metadata("echo_studies")["model_path"])


def test_serve_answers_without_torch(indexed):
    import httpx

    home, ecgs = indexed
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", NO_TORCH_PROBE, "serve", "--data-dir", str(home),
                             "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "e2r serve did not start"
                time.sleep(0.1)
        files = [("files", (f"r1{ext}", (ecgs / f"r1{ext}").read_bytes())) for ext in (".hea", ".dat")]
        answer = httpx.post(f"{url}/v1/search", files=files, data={"top_k": "3"}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["neighbours"]) == 3
        assert httpx.get(f"{url}/v1/stats").json()["ecg_encoder"] == "onnxruntime"
    finally:
        proc.send_signal(signal.SIGINT)  # uvicorn re-raises SIGTERM after shutdown, skipping exit handlers
        _, err = proc.communicate(timeout=30)
    assert "torch imported: False" in err, err


def test_search_matches_the_torch_backend(indexed, tiny_bundle):
    """Same neighbours, order and (within float tolerance) similarities and estimate either way."""
    from e2r.store import open_store
    from queries.search import Searcher

    home, ecgs = indexed
    with open_store(home) as store:
        results = [Searcher(store, "echo_studies", model=load_ecg_encoder(tiny_bundle, backend=b))
                   .search(ecgs / "r2.hea", top_k=10, k=50) for b in ("onnx", "torch")]
    a, b = (r.to_dict() for r in results)
    assert [n["study_uid"] for n in a["neighbours"]] == [n["study_uid"] for n in b["neighbours"]]
    np.testing.assert_allclose([n["similarity"] for n in a["neighbours"]],
                               [n["similarity"] for n in b["neighbours"]], atol=1e-5)
    np.testing.assert_allclose(a["estimate"]["lvef"], b["estimate"]["lvef"], atol=1e-3)


# -- a graph that cannot be used: one line, then torch (or an error without torch) ---------------------
def _break(bundle: Path, case: str, other: Path, monkeypatch) -> str:
    """Damage `bundle`'s graph as `case` says; the words the warning must contain."""
    graph, meta = bundle / GRAPH_FILE, _meta(bundle)
    if case == "no_graph":
        del meta["ecg_graph"], meta["files"]["ecg_graph"]
        _write_meta(bundle, meta)
        graph.unlink()
        return f"e2r export-onnx {bundle}"
    if case == "missing":
        graph.unlink()
        return "cannot be read"
    if case == "corrupt":
        data = bytearray(graph.read_bytes())
        data[len(data) // 2] ^= 0xFF
        graph.write_bytes(bytes(data))
        return "sha256"
    if case == "truncated_and_rehashed":  # bundle.json's sha256 updated too: onnxruntime must refuse it
        import hashlib

        data = graph.read_bytes()[:5000]
        graph.write_bytes(data)
        meta["ecg_graph"]["sha256"] = hashlib.sha256(data).hexdigest()
        _write_meta(bundle, meta)
        return "cannot load it"
    if case == "other_model":  # another model's graph, its sha256 copied into bundle.json as well
        shutil.copy(other / GRAPH_FILE, graph)
        meta["ecg_graph"]["sha256"] = _meta(other)["ecg_graph"]["sha256"]
        _write_meta(bundle, meta)
        return f"exported from model {_meta(other)['hash']}"
    if case == "old_onnxruntime":
        import onnxruntime

        monkeypatch.setattr(onnxruntime, "__version__", "1.12.1")
        return "needs onnxruntime >= 1.13; this is onnxruntime 1.12.1"
    if case == "no_onnxruntime":
        import e2r.ecg_graph

        monkeypatch.setattr(e2r.ecg_graph, "onnxruntime_installed", lambda: False)
        return "onnxruntime is not installed"
    raise AssertionError(case)


CASES = ["no_graph", "missing", "corrupt", "truncated_and_rehashed", "other_model", "old_onnxruntime", "no_onnxruntime"]


@pytest.fixture(scope="module")
def other_bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("other") / "model"
    save_untrained_bundle("tiny", 7, path)
    return path


@pytest.mark.parametrize("case", CASES)
def test_unusable_graph_falls_back_to_torch_and_says_so_once(case, tiny_bundle, other_bundle, tmp_path,
                                                             monkeypatch, caplog):
    from e2r.bundle import LoadedModel

    bundle = _copy(tiny_bundle, tmp_path / "b")
    words = _break(bundle, case, other_bundle, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="e2r.bundle"):
        assert isinstance(load_ecg_encoder(bundle), LoadedModel)
        assert isinstance(load_ecg_encoder(bundle), LoadedModel)
    said = [r.getMessage() for r in caplog.records if r.name == "e2r.bundle"]
    assert len(said) == 1 and "\n" not in said[0], said
    assert words in said[0] and said[0].endswith("encoding ECGs with torch"), said


@pytest.mark.parametrize("case", CASES)
def test_unusable_graph_without_torch_is_one_error_line(case, tiny_bundle, other_bundle, tmp_path, monkeypatch):
    import e2r.bundle

    bundle = _copy(tiny_bundle, tmp_path / "b")
    words = _break(bundle, case, other_bundle, monkeypatch)
    monkeypatch.setattr(e2r.bundle, "torch_installed", lambda: False)
    with pytest.raises(BundleError) as err:
        load_ecg_encoder(bundle)
    message = str(err.value)
    assert words in message and "\n" not in message
    assert "export-onnx" in message or "onnxruntime" in message or "torch" in message
    if case not in ("no_graph", "no_onnxruntime"):
        with pytest.raises(ECGGraphError):  # and "onnx" never falls back
            load_ecg_encoder(bundle, backend="onnx")
