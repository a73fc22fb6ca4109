"""`e2r search`: ECG -> neighbours + kNN estimate, batch mode, and the faults users hit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from e2r.cli import app
from e2r.bundle import save_untrained_bundle
from e2r.phantom.pulse_ecg import write_pulse_ecg
from test_indexer import _write_archive, _write_phenotypes

runner = CliRunner()
pytestmark = pytest.mark.xdist_group("indexer")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    uids = _write_archive(root / "archive", n_studies=4)
    _write_phenotypes(root / "phenotypes.csv", uids)
    save_untrained_bundle("tiny", 0, root / "model")
    home = root / "home"
    result = runner.invoke(app, ["index", str(root / "archive"), "--model", str(root / "model"),
                                 "--data-dir", str(home), "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    ecgs = root / "ecgs"
    for i in range(3):
        write_pulse_ecg(ecgs, f"r{i}", seed=i)
    (ecgs / "broken.hea").write_text("this is not a WFDB header\n")
    return root, home, uids


def _search(home: Path, *args: str):
    return runner.invoke(app, ["search", *args, "--data-dir", str(home)])


def test_search_json_lists_neighbours_and_estimate(indexed):
    root, home, uids = indexed
    result = _search(home, str(root / "ecgs" / "r0.hea"), "--top-k", "3", "--k", "10", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) >= {"ecg", "neighbours", "estimate", "collection", "model_hash", "notes", "timings_ms"}
    sims = [n["similarity"] for n in doc["neighbours"]]
    assert len(sims) == 3 and sims == sorted(sims, reverse=True)
    assert {n["study_uid"] for n in doc["neighbours"]} <= set(uids)
    est = doc["estimate"]
    assert est["n_neighbours"] == 2  # only two studies carry an LVEF
    assert abs(sum(est["lvef_class_probs"].values()) - 1) < 1e-6
    assert any("only 2 labelled" in note for note in doc["notes"])  # --k 10 > labelled studies


def test_search_matches_exact_cosine(indexed):
    """The store's ranking equals brute-force cosine over the indexed vectors."""
    from e2r.bundle import load_model
    from e2r.ecg import read_ecg
    from e2r.ecg.preprocess import preprocess_ecg
    from e2r.encode import encode_ecg
    from e2r.store import open_store

    root, home, _ = indexed
    doc = json.loads(_search(home, str(root / "ecgs" / "r1.hea"), "--top-k", "4", "--json").stdout)
    loaded = load_model(root / "model")
    q = encode_ecg(loaded.model, [preprocess_ecg(read_ecg(root / "ecgs" / "r1.hea"), loaded.preset.ecg_preprocess)])[0]
    with open_store(home) as store:
        recs = list(store.iterate("echo_studies", with_vectors=True))
    sims = {r.payload["study_uid"]: float(np.dot(q, r.vector) / np.linalg.norm(r.vector) / np.linalg.norm(q)) for r in recs}
    expected = sorted(sims, key=sims.get, reverse=True)
    assert [n["study_uid"] for n in doc["neighbours"]] == expected
    assert np.allclose([n["similarity"] for n in doc["neighbours"]], [sims[u] for u in expected], atol=1e-4)


def test_search_table_and_filter(indexed):
    root, home, uids = indexed
    result = _search(home, str(root / "ecgs" / "r0.hea"), "--filter", "lvef<40")
    assert result.exit_code == 0, result.output
    assert uids[0] in result.stdout and uids[2] not in result.stdout
    assert "phenotype estimate" in result.stdout


def test_batch_search_writes_jsonl_and_reports_unreadable(indexed, tmp_path):
    root, home, _ = indexed
    out = tmp_path / "results.jsonl"
    result = _search(home, str(root / "ecgs"), "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 4
    assert sum("error" in line for line in lines) == 1
    assert "3 ECGs searched, 1 unreadable" in result.stdout


@pytest.mark.parametrize("case", ["unreadable", "missing_collection", "empty_collection", "bad_filter"])
def test_faults_give_one_clear_line(indexed, tmp_path, case):
    root, home, _ = indexed
    ecg = str(root / "ecgs" / "r0.hea")
    if case == "unreadable":
        result = _search(home, str(root / "ecgs" / "broken.hea"))
        needle = "broken"
    elif case == "missing_collection":
        result = _search(home, ecg, "--collection", "nope")
        needle = "e2r index"
    elif case == "empty_collection":
        from e2r.bundle import load_model
        from e2r.store import open_store
        from indexer.pipeline import ensure_collection

        with open_store(tmp_path / "h") as store:
            ensure_collection(store, "echo_studies", load_model(root / "model"))
        result = _search(tmp_path / "h", ecg)
        needle = "empty"
    else:
        result = _search(home, ecg, "--filter", "lvef<<40")
        needle = "lvef<<40"
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error:") and needle in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_search_while_store_is_held_by_another_process(indexed):
    root, home, _ = indexed
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from e2r.store import open_store; s = open_store(sys.argv[1]); "
         "print('open', flush=True); time.sleep(60)", str(home)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        result = _search(home, str(root / "ecgs" / "r0.hea"))
        if result.exit_code == 0:
            assert "phenotype estimate" in result.stdout  # concurrent read access is allowed
        else:
            assert result.exit_code == 1 and "lock" in result.stderr.lower() and len(result.stderr.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()


def test_search_process_exits_with_its_code_and_complete_output(indexed, tmp_path):
    """The console entry point leaves without the interpreter's teardown once torch is loaded
    (e2r.cli._exit): the exit code, the whole of stdout and batch files written must survive it."""
    root, home, uids = indexed
    cmd = [sys.executable, "-m", "e2r", "search", "--data-dir", str(home)]
    ok = subprocess.run([*cmd, str(root / "ecgs" / "r0.hea"), "--top-k", "3", "--json"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert {n["study_uid"] for n in json.loads(ok.stdout)["neighbours"]} <= set(uids)
    out = tmp_path / "batch.jsonl"
    batch = subprocess.run([*cmd, str(root / "ecgs"), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert batch.returncode == 0 and len(out.read_text().splitlines()) == 4  # r0-r2 + broken
    bad = subprocess.run([*cmd, str(root / "ecgs" / "broken.hea")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "broken" in bad.stderr and bad.stdout == ""
    usage = subprocess.run([*cmd, "--no-such-option"], capture_output=True, text=True, timeout=120)
    assert usage.returncode == 2


def test_python_api_returns_typed_results(indexed):
    from e2r.store import open_store
    from queries.search import Searcher, SearchResult

    root, home, _ = indexed
    with open_store(home) as store:
        result = Searcher(store, "echo_studies").search(root / "ecgs" / "r2.hea", top_k=2, k=5)
    assert isinstance(result, SearchResult)
    assert result.neighbours[0].rank == 1 and result.estimate["n_neighbours"] == 2


@pytest.mark.parametrize("backend", ["edge", "client-local"])
@pytest.mark.parametrize("labelled_share", [1.0, 0.7, 0.05])
def test_neighbours_and_voters_equal_the_two_searches_they_replace(tmp_path, backend, labelled_share):
    """A search's store step (one request for max(top_k, k) hits) gives the neighbours and the
    labelled voters that brute-force cosine gives over 300 points (which the store searches
    exactly), with and without a filter, whatever share of the archive carries an LVEF; when
    every hit is labelled it is one search request."""
    from e2r.phenotypes import derive_labels
    from e2r.store import STUDY_INDEXED_SCHEMA, Condition, Filter, Point, open_store, point_id_for
    from queries.search import SHOWN_PHENOTYPES, neighbours_and_voters

    rng = np.random.default_rng(7)
    dim = 16
    vectors = rng.standard_normal((300, dim)).astype(np.float32)
    views = [["A4C"], ["PLAX"], ["A4C", "PLAX"]]
    payloads = []
    for i in range(300):
        ph = {"lvef": float(rng.uniform(15, 75))} if rng.random() < labelled_share else {}
        ph["ivsd"] = float(rng.uniform(7, 17))
        payloads.append({"study_uid": f"1.2.{i}", "views": views[i % 3], "n_videos": 1,
                         "source_paths": [f"/archive/{i}.dcm"], **ph, **derive_labels(ph)})
    ids = [point_id_for(p["study_uid"]) for p in payloads]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    where = ":memory:" if backend == "client-local" else tmp_path
    with open_store(where, backend=backend) as store:
        store.create_collection("c", dim, {}, STUDY_INDEXED_SCHEMA)
        store.upsert("c", [Point(i, v, p) for i, v, p in zip(ids, vectors, payloads)])
        asked = []
        batch = store.search_batch
        store.search_batch = lambda name, vector, requests: asked.extend(requests) or batch(name, vector, requests)
        for q in rng.standard_normal((4, dim)).astype(np.float32):
            order = np.argsort(-(unit @ (q / np.linalg.norm(q))), kind="stable")
            for flt, passes in [(None, lambda p: True),
                                (Filter(must=(Condition("views", "any", ["PLAX"]),)), lambda p: "PLAX" in p["views"])]:
                for top_k, k in [(10, 50), (60, 5), (3, 400)]:
                    asked.clear()
                    hits, voters = neighbours_and_voters(store, "c", q, top_k, k, flt)
                    passing = [i for i in order if passes(payloads[i])]
                    labelled = [ids[i] for i in passing if payloads[i].get("lvef_class")]
                    assert [h.id for h in hits] == [ids[i] for i in passing[:top_k]]
                    assert [h.id for h in voters] == labelled[:k]
                    for h, i in zip(hits, passing):
                        assert h.payload["study_uid"] == payloads[i]["study_uid"] and "source_paths" not in h.payload
                        shown = {f: payloads[i][f] for f in SHOWN_PHENOTYPES if f in payloads[i]}
                        assert {f: h.payload.get(f) for f in shown} == pytest.approx(shown, rel=1e-12)
                    assert all(set(h.payload) >= {"lvef", "ivsd", "lvh"} for h in voters)
                    if labelled_share == 1.0 and k <= len(passing):
                        assert len(asked) == 1
