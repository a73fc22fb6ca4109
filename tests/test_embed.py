"""`e2r embed` and `encode_ecgs`: rows, the search's query vector, bad ECGs, re-runs, atomic writes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from e2r.cli import app
from e2r.embed import encode_ecgs, sidecar_paths, write_embeddings
from e2r.errors import ConfigError

runner = CliRunner()
N_GOOD = 4


@pytest.fixture(scope="module")
def loaded(tiny_bundle):
    from e2r.bundle import load_model

    return load_model(tiny_bundle)


@pytest.fixture
def ecgs(tmp_path, tiny_cohort) -> Path:
    """A folder of N_GOOD WFDB records copied from the tiny cohort, and one broken header."""
    folder = tmp_path / "ecgs"
    folder.mkdir()
    for i in range(N_GOOD):
        for ext in (".hea", ".dat"):
            shutil.copy2(tiny_cohort / "ecg" / f"p{i:04d}{ext}", folder / f"p{i:04d}{ext}")
    (folder / "broken.hea").write_text("this is not a WFDB header\n")
    return folder


def _load(out: Path) -> dict:
    with np.load(out, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _good(folder: Path) -> list[str]:
    return [str(folder / f"p{i:04d}") for i in range(N_GOOD)]


def test_rows_ids_arrays_and_sidecars(ecgs, loaded, tmp_path):
    import pandas as pd

    out = tmp_path / "emb.npz"
    summary = write_embeddings([ecgs], loaded, out)
    assert (summary.rows, summary.encoded, summary.reused, summary.skipped) == (N_GOOD, N_GOOD, 0, 1)
    data = _load(out)
    assert data["path"].tolist() == _good(ecgs)
    assert data["record"].tolist() == [f"p{i:04d}" for i in range(N_GOOD)]
    assert data["embedding"].shape == (N_GOOD, loaded.preset.embed_dim)
    assert data["features"].shape == (N_GOOD, loaded.preset.ecg.dim)
    assert data["embedding"].dtype == data["features"].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(data["embedding"], axis=1), 1, atol=1e-5)
    assert np.all(data["fs"] > 0) and np.all(data["duration_s"] > 0)
    meta = json.loads(str(data["meta"]))
    assert meta["model_hash"] == loaded.hash and meta["complete"] and meta["rows"] == N_GOOD
    assert meta["ecg_preprocess"]["fs"] == loaded.preset.ecg_preprocess.fs and set(meta["arrays"]) == {"embedding", "features"}
    # The one-line loads the README shows.
    ids = pd.read_csv(sidecar_paths(out)["ids"])
    assert ids["path"].tolist() == _good(ecgs) and ids["row"].tolist() == list(range(N_GOOD))
    assert np.load(out)["embedding"].shape == (N_GOOD, loaded.preset.embed_dim)
    assert json.loads(sidecar_paths(out)["meta"].read_text())["model_hash"] == loaded.hash


def test_embedding_is_the_search_query_vector(ecgs, loaded, tmp_path):
    """Golden: the row of an ECG equals the vector the Searcher queries the store with for it."""
    from e2r.store import open_store
    from indexer.pipeline import collection_metadata
    from queries.search import Searcher

    out = tmp_path / "emb.npz"
    write_embeddings(ecgs, loaded, out)
    data = _load(out)
    with open_store(":memory:", backend="client-local") as store:
        store.create_collection("echo_studies", loaded.preset.embed_dim, collection_metadata(loaded))
        query, _, _ = Searcher(store, "echo_studies", model=loaded).encode(_good(ecgs))
    np.testing.assert_allclose(data["embedding"], query, atol=1e-6)
    emb, ids = encode_ecgs(ecgs, loaded)
    assert ids == _good(ecgs)
    np.testing.assert_allclose(emb, query, atol=1e-6)
    feats, _ = encode_ecgs(_good(ecgs)[:2], loaded.model, array="features")
    np.testing.assert_allclose(feats, data["features"][:2], atol=1e-6)
    with pytest.raises(ConfigError, match="array='pooled' is not one of embedding, features"):
        encode_ecgs(ecgs, loaded, array="pooled")


def test_bad_ecg_is_skipped_with_its_reason(ecgs, loaded, tmp_path):
    import pandas as pd

    out = tmp_path / "emb.npz"
    (ecgs / "empty.dcm").write_bytes(b"")
    summary = write_embeddings([ecgs, ecgs / "missing"], loaded, out)
    assert summary.rows == N_GOOD and summary.skipped == 3
    errors = pd.read_csv(sidecar_paths(out)["errors"])
    assert sorted(Path(p).name for p in errors["path"]) == ["broken", "empty.dcm", "missing"]
    for path, reason in zip(errors["path"], errors["reason"]):
        assert path in reason and "\n" not in reason


def test_rerun_reuses_rows_adds_new_and_reencodes_changed(ecgs, loaded, tmp_path, tiny_cohort):
    out = tmp_path / "emb.npz"
    write_embeddings(ecgs, loaded, out)
    first = _load(out)
    again = write_embeddings(ecgs, loaded, out)
    assert (again.encoded, again.reused) == (0, N_GOOD)
    for key, value in _load(out).items():
        np.testing.assert_array_equal(value, first[key])

    for ext in (".hea", ".dat"):  # a new record
        shutil.copy2(tiny_cohort / "ecg" / f"p0011{ext}", ecgs / f"p0011{ext}")
    # p0001's signal replaced by p0005's, with a new mtime
    changed = ecgs / "p0001.dat"
    changed.write_bytes((tiny_cohort / "ecg" / "p0005.dat").read_bytes())
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = write_embeddings(ecgs, loaded, out)
    assert (third.rows, third.encoded, third.reused) == (N_GOOD + 1, 2, N_GOOD - 1)
    rerun = _load(out)
    assert not np.allclose(rerun["embedding"][1], first["embedding"][1])
    fresh_out = tmp_path / "fresh.npz"
    write_embeddings(ecgs, loaded, fresh_out)
    fresh = _load(fresh_out)
    for key in ("path", "record", "fs", "duration_s", "fingerprint", "meta"):
        np.testing.assert_array_equal(rerun[key], fresh[key])
    for key in ("embedding", "features"):
        np.testing.assert_allclose(rerun[key], fresh[key], atol=1e-6)


def test_a_failed_run_leaves_the_previous_output_intact(ecgs, loaded, tmp_path, tiny_cohort, monkeypatch):
    import e2r.encode

    out = tmp_path / "emb.npz"
    write_embeddings(ecgs, loaded, out)
    before = {name: p.read_bytes() for name, p in sidecar_paths(out).items()}
    for ext in (".hea", ".dat"):
        shutil.copy2(tiny_cohort / "ecg" / f"p0011{ext}", ecgs / f"p0011{ext}")

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(e2r.encode, "encode_ecg_features", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_embeddings(ecgs, loaded, out)
    assert {name: p.read_bytes() for name, p in sidecar_paths(out).items()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ecgs", "emb.csv", "emb.errors.csv", "emb.json", "emb.npz"]


def test_checkpoints_keep_the_work_of_an_interrupted_run(ecgs, loaded, tmp_path, monkeypatch):
    import e2r.encode

    real, calls = e2r.encode.encode_ecg_features, []

    def fail_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    out = tmp_path / "emb.npz"
    monkeypatch.setattr(e2r.encode, "encode_ecg_features", fail_third)
    with pytest.raises(KeyboardInterrupt):
        write_embeddings(ecgs, loaded, out, batch_size=1, checkpoint_s=0)
    partial = _load(out)
    assert partial["path"].tolist() == _good(ecgs)[:2] and not json.loads(str(partial["meta"]))["complete"]
    monkeypatch.setattr(e2r.encode, "encode_ecg_features", real)
    summary = write_embeddings(ecgs, loaded, out, batch_size=1)
    assert (summary.rows, summary.encoded, summary.reused) == (N_GOOD, N_GOOD - 2, 2)


def _embed(*args: str):
    return runner.invoke(app, ["embed", *args])


def test_cli_json_summary_and_table_line(ecgs, tiny_bundle, tmp_path):
    out = tmp_path / "o" / "emb.npz"
    result = _embed(str(ecgs), "--model", str(tiny_bundle), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {k: doc[k] for k in ("rows", "encoded", "reused", "skipped")} == {
        "rows": N_GOOD, "encoded": N_GOOD, "reused": 0, "skipped": 1}
    assert doc["files"] == {k: str(v) for k, v in sidecar_paths(out).items()}
    # A row's id is the path as listed; the output holds exactly this run's ECGs.
    result = _embed(str(ecgs / "p0000"), str(ecgs / "p0001"), "--model", str(tiny_bundle), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"2 ECGs in {out} (0 encoded, 2 reused)") and "skipped" not in result.stdout
    assert _load(out)["path"].tolist() == _good(ecgs)[:2]


def _error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_cli_user_errors(ecgs, tiny_bundle, tmp_path):
    from e2r.bundle import save_untrained_bundle

    out = str(tmp_path / "emb.npz")
    assert "no such model bundle" in _error_line(_embed(str(ecgs), "--model", str(tmp_path / "nope"), "--out", out))
    (tmp_path / "empty").mkdir()
    assert "no ECG records" in _error_line(_embed(str(tmp_path / "empty"), "--model", str(tiny_bundle), "--out", out))
    (tmp_path / "afile").write_text("x")
    assert "cannot write there" in _error_line(
        _embed(str(ecgs), "--model", str(tiny_bundle), "--out", str(tmp_path / "afile" / "emb.npz")))
    assert "must end in .npz" in _error_line(_embed(str(ecgs), "--model", str(tiny_bundle), "--out", str(tmp_path / "e.parquet")))
    assert "no readable ECG among 1" in _error_line(
        _embed(str(ecgs / "broken"), "--model", str(tiny_bundle), "--out", out))
    assert not Path(out).exists()

    # An output of another model is refused unless --overwrite; so is a file e2r did not write.
    assert _embed(str(ecgs), "--model", str(tiny_bundle), "--out", out).exit_code == 0
    other = tmp_path / "other"
    save_untrained_bundle("tiny", 1, other)
    assert "was made by model" in _error_line(_embed(str(ecgs), "--model", str(other), "--out", out))
    result = _embed(str(ecgs), "--model", str(other), "--out", out, "--overwrite", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["encoded"] == N_GOOD
    (tmp_path / "foreign.npz").write_bytes(b"not an npz")
    assert "not an e2r embeddings file" in _error_line(
        _embed(str(ecgs), "--model", str(tiny_bundle), "--out", str(tmp_path / "foreign.npz")))
