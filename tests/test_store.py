"""The store layer: congruence tests (the same tests on the embedded Edge backend and on
qdrant-client's in-process mode, which speaks the server's API), exact-cosine checks, filters,
metadata, persistence, the folder lock, SIGKILL durability and the server error messages."""

from __future__ import annotations

import http.server
import json
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from e2r.errors import ConfigError, StoreError
from e2r.store import (
    STUDY_INDEXED_SCHEMA,
    STUDY_PAYLOAD_SCHEMA,
    Condition,
    Filter,
    Point,
    SearchRequest,
    open_store,
    parse_filter,
    point_id_for,
)

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ["edge", "client-local"]
# The fields the tests filter on (each payload index costs the embedded store a few fsyncs).
TEST_SCHEMA = {k: STUDY_PAYLOAD_SCHEMA[k] for k in ("lvef", "study_date", "views", "lvh", "rhythm")}


def make_points(n: int, dim: int = 16, seed: int = 0) -> list[Point]:
    rng = np.random.default_rng(seed)
    views = (["A4C"], ["PLAX"], ["A4C", "PLAX"], ["A2C", "PSAX"])
    pts = []
    for i in range(n):
        payload = {
            "study_uid": f"1.2.3.{i}",
            "lvef": float(np.round(rng.uniform(15, 75), 1)),
            "study_date": 20190101 + (i % 3) * 10000 + i % 28,
            "views": views[i % 4],
            "lvh": i % 2,
            "rhythm": "af" if i % 5 == 0 else "sinus",
        }
        if i % 7 == 0:
            payload.pop("lvef")  # a study without phenotypes
        pts.append(Point(point_id_for(payload["study_uid"]), rng.standard_normal(dim), payload))
    return pts


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    # client-local in memory here (fast); its folder mode is covered by the reopen test.
    s = open_store(":memory:" if request.param == "client-local" else tmp_path, backend=request.param)
    yield s
    s.close()


@pytest.fixture(scope="module", params=BACKENDS)
def filled(request, tmp_path_factory):
    """A read-only collection "c" of 120 study points, shared by the query tests of one backend."""
    where = ":memory:" if request.param == "client-local" else tmp_path_factory.mktemp("filled")
    s = open_store(where, backend=request.param)
    pts = make_points(120)
    s.create_collection("c", 16, {}, TEST_SCHEMA)
    s.upsert("c", pts)
    yield s, pts
    s.close()


def exact_topk(points: list[Point], query: np.ndarray, k: int, flt: Filter | None = None):
    """Exact cosine top-k with numpy: (ids, scores, score of every candidate by id)."""
    keep = [p for p in points if flt is None or flt.matches(p.payload)]
    mat = np.stack([p.vector / np.linalg.norm(p.vector) for p in keep])
    scores = mat @ (query / np.linalg.norm(query))
    order = np.argsort(-scores, kind="stable")[:k]
    return [keep[i].id for i in order], scores[order], {p.id: s for p, s in zip(keep, scores)}


def assert_same_topk(hits, ids, scores, all_scores, tol=1e-5):
    """Same IDs in the same order as exact search; two IDs may swap only when their scores tie."""
    assert len(hits) == len(ids)
    np.testing.assert_allclose([h.score for h in hits], scores, atol=tol)
    for i, (hit, want) in enumerate(zip(hits, ids)):
        if hit.id != want:
            assert hit.id in all_scores and abs(all_scores[hit.id] - scores[i]) < tol, (i, hit, want)


# -- congruence: the same behaviour on both backends -------------------------------------------------

def test_create_list_and_duplicates(store):
    assert store.list_collections() == []
    store.create_collection("echo", 16, {"model_hash": "h1"})
    store.create_collection("other", 8, {}, payload_schema={})
    assert store.collection_exists("echo") and not store.collection_exists("nope")
    assert store.list_collections() == ["echo", "other"]
    assert store.dim("echo") == 16 and store.count("echo") == 0
    assert store.payload_schema("echo") == STUDY_INDEXED_SCHEMA
    assert store.payload_schema("other") == {}
    with pytest.raises(StoreError, match="already exists"):
        store.create_collection("echo", 16, {})
    with pytest.raises(ConfigError, match="invalid collection name"):
        store.create_collection("../evil", 16, {})
    with pytest.raises(StoreError, match="'missing' not found.*echo, other"):
        store.count("missing")
    store.drop_collection("other")
    store.drop_collection("other")  # idempotent
    assert store.list_collections() == ["echo"]


def test_upsert_is_idempotent_and_replaces(store):
    pts = make_points(40)
    store.create_collection("c", 16, {}, TEST_SCHEMA)
    store.upsert("c", pts)
    store.upsert("c", pts[:10])  # same IDs again: nothing added
    assert store.count("c") == 40
    changed = Point(pts[0].id, pts[0].vector * -1, {"study_uid": "1.2.3.0", "lvef": 99.0})
    store.upsert("c", [changed])
    assert store.count("c") == 40
    (rec,) = store.retrieve("c", [pts[0].id], with_vectors=True)
    assert rec.payload == {"study_uid": "1.2.3.0", "lvef": 99.0}
    np.testing.assert_allclose(rec.vector, -pts[0].vector / np.linalg.norm(pts[0].vector), atol=1e-6)


def test_retrieve_delete_iterate(store):
    pts = make_points(30)
    store.create_collection("c", 16, {}, TEST_SCHEMA)
    store.upsert("c", pts)
    ask = [pts[7].id, point_id_for("not there"), pts[2].id]
    recs = store.retrieve("c", ask)
    assert [r.id for r in recs] == [pts[7].id, pts[2].id]
    assert recs[0].payload == pts[7].payload and recs[0].vector is None
    store.delete("c", [pts[7].id, point_id_for("not there")])
    assert store.count("c") == 29 and store.retrieve("c", [pts[7].id]) == []
    seen = [r.id for r in store.iterate("c", batch_size=7)]
    assert len(seen) == len(set(seen)) == 29
    assert set(seen) == {p.id for p in pts} - {pts[7].id}


FILTER_CASES = [
    Filter((Condition("rhythm", "eq", "af"),)),
    Filter((Condition("views", "eq", "PLAX"),)),  # list field contains
    Filter((Condition("lvh", "eq", 1),)),
    Filter((Condition("lvef", "gte", 50.0),)),
    Filter((Condition("lvef", "lte", 40.0),)),
    Filter((Condition("lvef", "gt", 35.5),)),
    Filter((Condition("lvef", "lt", 35.5),)),
    Filter((Condition("study_date", "gte", 20200101),)),
    Filter((Condition("views", "any", ["A2C", "PLAX"]),)),
    Filter((Condition("lvh", "any", [1]),)),
    Filter((Condition("lvef", "lt", 40), Condition("views", "eq", "A4C"), Condition("rhythm", "eq", "sinus"))),
]


@pytest.mark.parametrize("flt", FILTER_CASES, ids=lambda f: ",".join(f"{c.field}{c.op}" for c in f.must))
def test_filters_match_reference(filled, flt):
    store, pts = filled
    want = {p.id for p in pts if flt.matches(p.payload)}
    assert 0 < len(want) < len(pts)  # the case really filters
    assert store.count("c", flt) == len(want)
    assert {r.id for r in store.iterate("c", flt)} == want
    query = np.random.default_rng(5).standard_normal(16)
    hits = store.search("c", query, 5, flt)
    assert_same_topk(hits, *exact_topk(pts, query, 5, flt))


def test_parsed_filter_on_store(filled):
    store, pts = filled
    flt = parse_filter(["lvef<40", "views=PLAX", "study_date>=2020-01-01"])
    want = {p.id for p in pts if flt.matches(p.payload)}
    assert want and store.count("c", flt) == len(want)
    assert all(p.payload["lvef"] < 40 and "PLAX" in p.payload["views"] and p.payload["study_date"] >= 20200101
               for p in pts if p.id in want)


def test_search_equals_exact_cosine_topk(store):
    pts = make_points(400, dim=32, seed=1)
    store.create_collection("c", 32, {}, TEST_SCHEMA)
    store.upsert("c", pts)
    rng = np.random.default_rng(2)
    for _ in range(15):
        query = rng.standard_normal(32).astype(np.float32)
        hits = store.search("c", query, 10)
        assert_same_topk(hits, *exact_topk(pts, query, 10))
        assert all(-1.0001 <= h.score <= 1.0001 for h in hits)
    hits = store.search("c", pts[3].vector, 1)
    assert hits[0].id == pts[3].id and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].payload == pts[3].payload


def test_metadata_round_trip(store):
    store.create_collection("c", 16, {"model_hash": "abc123", "model_path": "/m/tiny", "extra": {"k": [1, 2]}}, {})
    meta = store.get_metadata("c")
    assert meta["model_hash"] == "abc123" and meta["model_path"] == "/m/tiny" and meta["extra"] == {"k": [1, 2]}
    assert meta["dim"] == 16 and meta["distance"] == "cosine" and meta["schema_version"] == 1
    assert meta["e2r_version"] and meta["created"].startswith("20")
    store.set_metadata("c", {"model_hash": "def456", "indexed_at": "today"})
    meta2 = store.get_metadata("c")
    assert meta2["model_hash"] == "def456" and meta2["indexed_at"] == "today" and meta2["model_path"] == "/m/tiny"
    with pytest.raises(ConfigError, match="dim=8"):
        store.create_collection("d", 16, {"dim": 8})


def test_wrong_dimension_and_bad_points(store):
    store.create_collection("c", 16, {}, TEST_SCHEMA)
    with pytest.raises(StoreError, match="holds 16-d"):
        store.upsert("c", [Point(point_id_for("x"), np.ones(8), {})])
    with pytest.raises(StoreError, match="holds 16-d vectors but the query has 8"):
        store.search("c", np.ones(8), 3)
    with pytest.raises(StoreError, match="not a UUID"):
        Point("study-1", np.ones(4), {})
    with pytest.raises(StoreError, match="zero or has NaN"):
        Point(point_id_for("x"), np.zeros(4), {})
    p = Point(point_id_for("x"), np.ones(16), {"n": np.int64(3), "v": np.array([1.5, np.nan]), "t": ("a", "b")})
    assert p.payload == {"n": 3, "v": [1.5, None], "t": ["a", "b"]}
    store.upsert("c", [p])
    assert store.retrieve("c", [p.id])[0].payload == p.payload


@pytest.mark.parametrize("backend", BACKENDS)
def test_reopen_keeps_everything(tmp_path, backend):
    pts = make_points(50)
    with open_store(tmp_path, backend=backend) as s:
        s.create_collection("c", 16, {"model_hash": "h"}, TEST_SCHEMA)
        s.upsert("c", pts)
        before = s.search("c", pts[4].vector, 5)
    with open_store(tmp_path, backend=backend) as s:
        assert s.list_collections() == ["c"] and s.count("c") == 50
        assert s.get_metadata("c")["model_hash"] == "h"
        after = s.search("c", pts[4].vector, 5)
        assert [h.id for h in after] == [h.id for h in before]
        np.testing.assert_allclose([h.score for h in after], [h.score for h in before], atol=1e-6)
        assert s.count("c", parse_filter(["views=PLAX"])) == sum("PLAX" in p.payload["views"] for p in pts)


# -- the embedded store: lock, durability, layout ---------------------------------------------------

def _python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


HOLDER = """
import sys, time
from e2r.store import open_store
store = open_store(sys.argv[1])
print("ready", flush=True)
time.sleep(60)
"""


def test_second_process_gets_clear_lock_error(tmp_path):
    holder = _python(HOLDER, str(tmp_path))
    try:
        assert holder.stdout.readline().strip() == "ready", holder.stderr.read()
        with pytest.raises(StoreError, match=rf"locked by a running process \(pid {holder.pid}.*Qdrant server"):
            open_store(tmp_path)
        # wait_s: keep trying while the holder runs; it is killed half a second in.
        threading.Timer(0.5, holder.kill).start()
        with open_store(tmp_path, wait_s=30) as s:  # the lock died with its holder
            assert s.list_collections() == []
    finally:
        holder.kill()
        holder.wait()


WRITER = """
import sys, time
import numpy as np
from e2r.store import open_store, Point, point_id_for
store = open_store(sys.argv[1])
if not store.collection_exists("c"):
    store.create_collection("c", 64, {"model_hash": "h"}, {"i": "integer"})
rng = np.random.default_rng(0)
vecs = rng.standard_normal((600, 64))
for start in range(0, 600, 100):
    store.upsert("c", [Point(point_id_for(f"s{i}"), vecs[i], {"i": i}) for i in range(start, start + 100)])
print("upserted", flush=True)
time.sleep(60)
"""


def test_upserts_survive_sigkill_and_rerun_adds_nothing(tmp_path):
    for _ in range(2):  # second run: same IDs, killed again; still 600, none lost or doubled
        writer = _python(WRITER, str(tmp_path))
        try:
            assert writer.stdout.readline().strip() == "upserted", writer.stderr.read()
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
        with open_store(tmp_path) as s:
            assert s.count("c") == 600
            assert s.get_metadata("c")["model_hash"] == "h"
            assert s.retrieve("c", [point_id_for("s599")])[0].payload == {"i": 599}


def test_edge_layout_and_closed_store(tmp_path):
    s = open_store(tmp_path)
    s.create_collection("c", 4, {}, {})
    assert (tmp_path / "store" / "collections" / "c" / "collection.json").is_file()
    assert json.loads((tmp_path / "store" / "collections" / "c" / "collection.json").read_text())["dim"] == 4
    s.close()
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.count("c")


def test_edge_hnsw_index_agrees_with_exact_search(tmp_path):
    from e2r.store.edge import EdgeStore

    pts = make_points(1500, dim=32, seed=3)
    store = EdgeStore(tmp_path / "store", indexing_threshold_kb=64)  # 1500 x 32 x 4 B = 188 KB: indexed
    store.create_collection("c", 32, {}, {"lvef": "float"})
    store.upsert("c", pts)
    store.close()  # big enough: close builds the HNSW index
    with EdgeStore(tmp_path / "store") as store:
        assert store._shard("c").info().indexed_vectors_count >= 1500
        rng = np.random.default_rng(4)
        recalls = []
        for _ in range(20):
            query = rng.standard_normal(32)
            hits = store.search("c", query, 10)
            ids, scores, _ = exact_topk(pts, query, 10)
            recalls.append(len({h.id for h in hits} & set(ids)) / 10)
            assert hits[0].score == pytest.approx(scores[0], abs=1e-5) or hits[0].id != ids[0]
        assert np.mean(recalls) >= 0.95
        flt = parse_filter(["lvef<30"])
        assert all(h.payload["lvef"] < 30 for h in store.search("c", rng.standard_normal(32), 10, flt))


def test_client_local_folder_in_use(tmp_path):
    with open_store(tmp_path, backend="client-local"):
        with pytest.raises(StoreError, match="used by another running process"):
            open_store(tmp_path, backend="client-local")


# -- the server code path: errors -------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_wrong_url_is_one_clear_line():
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(StoreError) as err:
        open_store(url=url, timeout=2)
    msg = str(err.value)
    assert msg.startswith(f"cannot reach Qdrant at {url}") and "docker compose up -d" in msg
    assert "\n" not in msg


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
@pytest.mark.parametrize("status", [401, 403])
def test_refused_api_key_is_one_clear_line(status):
    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"status": {"error": "Must provide an API key"}}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(StoreError, match=rf"refused the API key \(HTTP {status}\).*E2R_QDRANT_API_KEY"):
            open_store(url=url, api_key="wrong", timeout=2)
    finally:
        server.shutdown()
        server.server_close()


def test_open_store_argument_errors(tmp_path):
    with pytest.raises(ConfigError, match="needs a URL"):
        open_store(tmp_path, backend="server")
    with pytest.raises(ConfigError, match="use one of"):
        open_store(tmp_path, backend="sqlite")
    with pytest.raises(ConfigError, match="drop one of them"):
        open_store(tmp_path, url="http://localhost:6333", backend="edge")
    s = open_store(":memory:", backend="client-local")
    assert s.backend == "client-local" and s.list_collections() == []
    s.close()


# -- filter parsing ---------------------------------------------------------------------------------

def test_parse_filter_values_and_types():
    assert parse_filter(None) is None and parse_filter([]) is None
    f = parse_filter(["lvef<40", "views=PLAX", "study_date>=20200101", "lvh = 1", "rhythm==af",
                      "views=A4C,PLAX", "lvef>=50.5", "study_date<=2021-12-31"])
    assert f.must == (
        Condition("lvef", "lt", 40.0), Condition("views", "eq", "PLAX"),
        Condition("study_date", "gte", 20200101), Condition("lvh", "eq", 1), Condition("rhythm", "eq", "af"),
        Condition("views", "any", ("A4C", "PLAX")), Condition("lvef", "gte", 50.5),
        Condition("study_date", "lte", 20211231),
    )
    # The optional wall-motion fields of a phenotype CSV (issue 21) filter like the others.
    assert parse_filter(["territory=LAD,LAD+RCA", "wmsi>=1.5"]).must == (
        Condition("territory", "any", ("LAD", "LAD+RCA")), Condition("wmsi", "gte", 1.5))


@pytest.mark.parametrize("expr, message", [
    ("lvef", "expected FIELD OP VALUE"),
    ("lvef<", "expected FIELD OP VALUE"),
    ("lvef~40", "expected FIELD OP VALUE"),
    ("lvfe<40", "unknown field 'lvfe'; filterable fields: study_uid"),
    ("views>PLAX", "keyword field; use '='"),
    ("lvef<forty", "lvef needs a number"),
    ("lvef<nan", "lvef needs a number"),
    ("study_date>=2020-13-01", "study_date needs YYYYMMDD"),
    ("views=A4C,", "empty value"),
    ("lvef=40,50", "lists of values need a keyword or integer field"),
])
def test_parse_filter_errors_are_clear(expr, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_filter([expr])
    assert repr(expr) in str(err.value)


def test_condition_validation():
    with pytest.raises(ConfigError, match="unknown op"):
        Condition("lvef", "ne", 3)
    with pytest.raises(ConfigError, match="finite number"):
        Condition("lvef", "lt", "40")
    with pytest.raises(ConfigError, match="non-empty list"):
        Condition("views", "any", "PLAX")
    with pytest.raises(ConfigError, match="all strings or all integers"):
        Condition("views", "any", ["PLAX", 3])


def test_point_ids_are_deterministic():
    assert point_id_for("1.2.3") == point_id_for("1.2.3") != point_id_for("1.2.4")
    assert point_id_for("1.2.3") == "{}".format(point_id_for("1.2.3")).lower()
    with pytest.raises(StoreError):
        point_id_for("")


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_batch_is_the_searches_it_holds_with_only_the_fields_asked(tmp_path, backend):
    pts = make_points(300, seed=5)
    with open_store(tmp_path / backend, backend=backend) as store:
        store.create_collection("c", 16, {}, TEST_SCHEMA)
        store.upsert("c", pts)
        query = np.random.default_rng(6).standard_normal(16)
        flt = parse_filter(["lvef<40"])
        top, voters, none = store.search_batch("c", query, [SearchRequest(5), SearchRequest(7, flt, ("lvef",)),
                                                            SearchRequest(0)])
        assert [h.id for h in top] == [h.id for h in store.search("c", query, 5)]
        assert [h.payload for h in top] == [h.payload for h in store.search("c", query, 5)]
        assert [h.id for h in voters] == [h.id for h in store.search("c", query, 7, flt)]
        assert all(set(h.payload) == {"lvef"} and h.payload["lvef"] < 40 for h in voters) and none == []


def test_edge_index_settings_are_the_collections_and_a_rerun_with_others_changes_nothing(tmp_path):
    """Settings are fixed when a collection is created and kept in its sidecar: a store opened
    with other settings (a changed default, a re-run of `e2r index`) reads, writes and searches
    the collection as it was made; upserting the same points again leaves the same count."""
    from e2r.store.edge import EdgeStore
    from e2r.store.settings import IndexSettings

    pts = make_points(1500, dim=32, seed=7)
    with EdgeStore(tmp_path / "store", indexing_threshold_kb=64, index_settings=IndexSettings(m=8, ef_construct=32)) as s:
        s.create_collection("c", 32, {}, {"lvef": "float"})
        s.upsert("c", pts)
    quant = IndexSettings(quantization="int8", vectors_on_disk=True, m=24)
    with EdgeStore(tmp_path / "store", indexing_threshold_kb=64, index_settings=quant) as s:
        assert json.loads((tmp_path / "store/collections/c/collection.json").read_text())["index"]["m"] == 8
        s.upsert("c", pts)
        assert s.count("c") == 1500
        query = pts[11].vector
        assert s.search("c", query, 1)[0].id == pts[11].id
        s.create_collection("q", 32, {}, {})  # new collections get the store's settings
        s.upsert("q", pts)
    with EdgeStore(tmp_path / "store") as s:
        assert IndexSettings.from_record(s._sidecar("q")["index"]) == quant
        assert s.count("q") == 1500 and s.search("q", pts[3].vector, 1)[0].id == pts[3].id


def test_edge_collection_of_a_store_without_index_settings_opens_with_qdrants_defaults(tmp_path):
    """A collection written before index settings existed (no "index" key) opens and searches,
    read as Qdrant's defaults: built with payload links, searched without ACORN."""
    from e2r.store.edge import EdgeStore
    from e2r.store.settings import IndexSettings

    pts = make_points(50, seed=8)
    with EdgeStore(tmp_path / "store") as s:
        s.create_collection("c", 16, {"model_hash": "h"}, TEST_SCHEMA)
        s.upsert("c", pts)
    sidecar = tmp_path / "store/collections/c/collection.json"
    old = json.loads(sidecar.read_text())
    del old["index"]
    sidecar.write_text(json.dumps(old))
    with EdgeStore(tmp_path / "store") as s:
        assert IndexSettings.from_record(s._sidecar("c").get("index")) == IndexSettings(
            m=16, ef_construct=100, payload_m=None, acorn_max_selectivity=None, exact_filter_points=None,
            payload_index_memory=None)
        assert s.search("c", pts[0].vector, 1)[0].id == pts[0].id
        assert s.search("c", pts[0].vector, 3, parse_filter(["lvef<40"]))


def test_edge_index_settings_reach_the_engine():
    """New collections: no payload-aware links, ACORN for filtered searches; an old collection's
    settings (Qdrant's) ask for neither; invalid values are refused with the field named."""
    from e2r.errors import ConfigError
    from e2r.store.edge import _edge_config, _edge_search_params
    from e2r.store.settings import IndexSettings, auto_hnsw_ef

    new = IndexSettings()
    assert _edge_config(new, 32, 64).hnsw_config.payload_m == 0
    assert new.filter_is_exact(10_000, 100_000) and not new.filter_is_exact(30_000, 100_000)  # share 0.2
    assert not new.filter_is_exact(250_000, 10_000_000)  # 2.5 %, but more points than an exact scan should read
    params = _edge_search_params(new.plan(100_000, 10))
    assert params.hnsw_ef == 512 and params.acorn.enable and params.acorn.max_selectivity == 0.4
    assert new.plan(100_000, 10, passing=10_000).exact and not new.plan(100_000, 10, passing=30_000).exact
    old = IndexSettings.from_record({"m": 16, "ef_construct": 100})
    assert _edge_config(old, 32, 64).hnsw_config.payload_m is None and _edge_search_params(old.plan(10, 10)).acorn is None
    assert not old.filter_is_exact(10, 100_000) and not old.plan(100_000, 10, passing=10).exact

    assert [auto_hnsw_ef(n) for n in (0, 230_000, 250_001, 1_000_000, 10**8)] == [512, 512, 1024, 2048, 4096]
    for bad, field in (({"payload_m": -1}, "payload_m"), ({"acorn_max_selectivity": 0.0}, "acorn_max_selectivity"),
                       ({"exact_filter_points": 0}, "exact_filter_points"), ({"payload_index_memory": "ram"}, "payload_index_memory")):
        with pytest.raises(ConfigError, match=field):
            IndexSettings(**bad).validate()


def test_payload_indexes_are_kept_where_the_settings_say(tmp_path):
    """New embedded collections map their payload indexes ("cached"), an older collection's
    settings read as the engine's in-memory default; the server backend keeps its indexes in the
    server's memory unless asked otherwise, and then asks the server for that placement."""
    import qdrant_edge as qe
    from qdrant_client.http import models as qm

    from e2r.store.client import ClientStore, _qm_field_index
    from e2r.store.edge import EdgeStore
    from e2r.store.settings import IndexSettings

    assert IndexSettings().payload_index_memory == "cached"
    assert IndexSettings.from_record({"m": 16}).payload_index_memory is None
    with EdgeStore(tmp_path / "new") as s, EdgeStore(tmp_path / "old", index_settings=IndexSettings.from_record({})) as o:
        for store in (s, o):
            store.create_collection("c", 16, {}, TEST_SCHEMA)
            store.upsert("c", make_points(40, seed=3))
        placed = {f: i.params.memory for f, i in s._shard("c").info().payload_schema.items()}
        assert set(placed) == set(TEST_SCHEMA) and all(m == qe.Memory.Cached for m in placed.values())
        assert all(i.params is None for i in o._shard("c").info().payload_schema.values())
        for flt in (["lvef<40"], ["views=PLAX"], ["study_date>=20200101"]):
            assert ([h.id for h in s.search("c", make_points(1, seed=4)[0].vector, 40, parse_filter(flt))]
                    == [h.id for h in o.search("c", make_points(1, seed=4)[0].vector, 40, parse_filter(flt))])
    assert _qm_field_index("integer", "cached").memory == qm.Memory.CACHED
    assert _qm_field_index("keyword", None) == qm.PayloadSchemaType.KEYWORD
    with ClientStore(path=":memory:") as server_like:  # a server's own default: in its memory
        assert server_like.index_settings.payload_index_memory is None


def test_edge_search_breadth_grows_with_the_collection(tmp_path, monkeypatch):
    """hnsw_ef=None (the default): each collection is searched with auto_hnsw_ef of its point
    count, recomputed after writes; an explicit hnsw_ef is used as given."""
    import e2r.store.edge as edge
    import e2r.store.settings

    monkeypatch.setattr(e2r.store.settings, "EF_PER_POINTS", (512, 100))  # 512 more per started 100 points
    pts = make_points(250, seed=12)
    with edge.EdgeStore(tmp_path / "store") as s:
        s.create_collection("c", 16, {}, TEST_SCHEMA)
        s.upsert("c", pts[:100])
        assert s._params("c", 10).hnsw_ef == 512
        s.upsert("c", pts[100:])
        assert s._params("c", 10).hnsw_ef == 1536 and s._params("c", 2000).hnsw_ef == 2000
        s.delete("c", [p.id for p in pts[:160]])
        assert s._params("c", 10).hnsw_ef == 512
        assert s.search("c", pts[200].vector, 1)[0].id == pts[200].id
    with edge.EdgeStore(tmp_path / "store", hnsw_ef=64) as s:
        assert s._params("c", 10).hnsw_ef == 64


def test_edge_narrow_filters_are_searched_exactly(tmp_path):
    """A filter the payload indexes estimate to pass under 20 % of the collection is searched
    exactly (a graph walk restricted to it can strand); broad filters and none go through HNSW."""
    from e2r.store.edge import EdgeStore, _edge_filter

    pts = make_points(1000, seed=13)
    with EdgeStore(tmp_path / "store", indexing_threshold_kb=16) as s:
        s.create_collection("c", 16, {}, TEST_SCHEMA)
        s.upsert("c", pts)
        s.optimize("c")
        narrow, broad = parse_filter(["lvef<20"]), parse_filter(["lvef<60"])  # lvef uniform 15-75
        assert s._params("c", 10, _edge_filter(narrow)).exact
        assert not s._params("c", 10, _edge_filter(broad)).exact and not s._params("c", 10).exact
        query = np.random.default_rng(14).standard_normal(16)
        for flt in (narrow, broad):
            ids, _, _ = exact_topk(pts, query, 10, flt)
            assert [h.id for h in s.search("c", query, 10, flt)] == ids


# -- the server code path: the embedded store's index settings --------------------------------------

def _capture(monkeypatch, client, method: str) -> list:
    """Record the keyword arguments of each call of `client.<method>` (then make the call)."""
    calls, real = [], getattr(client, method)

    def wrapper(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(client, method, wrapper)
    return calls


def test_server_path_creates_collections_with_the_index_settings_and_records_them(tmp_path, monkeypatch):
    """create_collection sends the IndexSettings as Qdrant's collection config (HNSW m /
    ef_construct / payload_m, int8 quantisation, cold vectors) and records them in the collection
    metadata, which round-trips; local mode keeps no hnsw_config (it reads back as 16 / 100), so the
    config is checked where it leaves e2r, in the arguments qdrant-client sends to the server."""
    from e2r.store.client import ClientStore
    from e2r.store.settings import IndexSettings

    with ClientStore(path=str(tmp_path / "local")) as s:
        created = _capture(monkeypatch, s._client, "create_collection")
        s.create_collection("c", 16, {"model_hash": "h"}, TEST_SCHEMA)
        quant = IndexSettings(quantization="int8", vectors_on_disk=True, m=24, oversampling=3.0)
        s.index_settings = quant  # a store opened with other settings: only new collections get them
        s.create_collection("q", 16, {}, {})
        assert s.get_metadata("c")["model_hash"] == "h" and "index_settings" not in s.get_metadata("c")
    hnsw = created[0]["hnsw_config"]
    assert (hnsw.m, hnsw.ef_construct, hnsw.payload_m, hnsw.full_scan_threshold) == (32, 200, 0, 10_000)
    assert created[0]["quantization_config"] is None and created[0]["vectors_config"].memory is None
    assert created[1]["hnsw_config"].m == 24 and created[1]["vectors_config"].memory == "cold"
    scalar = created[1]["quantization_config"].scalar
    assert (scalar.type, scalar.quantile, scalar.memory) == ("int8", 0.99, "pinned")
    # What goes on the wire (the REST body of PUT /collections/c):
    assert hnsw.model_dump(exclude_none=True) == {"m": 32, "ef_construct": 200, "full_scan_threshold": 10_000,
                                                   "payload_m": 0}
    with ClientStore(path=str(tmp_path / "local")) as s:  # reopened: each collection keeps its own
        assert s._settings_of("c") == (IndexSettings(payload_index_memory=None), 1) and s._settings_of("q") == (quant, 1)
        assert s.get_metadata("q")["dim"] == 16 and s.payload_schema("c") == TEST_SCHEMA


def test_server_path_sends_the_planned_search_parameters(monkeypatch):
    """Every search sends Qdrant SearchParams: a breadth grown with the collection (or the store's
    fixed hnsw_ef), ACORN, and exact search when the filter is narrow; search_batch the same per
    request. Local mode scans exactly whatever it is sent, so the parameters are captured."""
    import e2r.store.settings
    from e2r.store.client import ClientStore

    monkeypatch.setattr(e2r.store.settings, "EF_PER_POINTS", (512, 250))  # 512 more per started 250 points
    pts = make_points(1000, seed=13)
    narrow, broad = parse_filter(["lvef<20"]), parse_filter(["lvef<60"])  # lvef uniform 15-75
    with ClientStore(path=":memory:") as s:
        s.create_collection("c", 16, {}, TEST_SCHEMA)
        s.upsert("c", pts[:100])
        one = _capture(monkeypatch, s._client, "query_points")
        batch = _capture(monkeypatch, s._client, "query_batch_points")
        query = np.random.default_rng(14).standard_normal(16)
        s.search("c", query, 10)
        s.upsert("c", pts[100:])  # a write of ours re-reads the count at once
        for flt in (None, narrow, broad):
            assert [h.id for h in s.search("c", query, 10, flt)] == exact_topk(pts, query, 10, flt)[0]
        s.search_batch("c", query, [SearchRequest(5), SearchRequest(3000, narrow), SearchRequest(0)])
    params = [call["search_params"] for call in one]
    assert params[0].hnsw_ef == 512 and params[1].hnsw_ef == 2048 and not params[0].exact
    assert all(p.acorn.enable and p.acorn.max_selectivity == 0.4 and p.quantization is None for p in params)
    assert [p.exact for p in params[1:]] == [False, True, False]
    sent = [r.params for r in batch[0]["requests"]]
    assert len(sent) == 2 and (sent[0].hnsw_ef, sent[0].exact) == (2048, False)
    assert (sent[1].hnsw_ef, sent[1].exact) == (3000, True)  # never narrower than top_k
    assert params[2].model_dump(exclude_none=True) == {  # the REST body's "params"
        "hnsw_ef": 2048, "exact": True, "indexed_only": False, "acorn": {"enable": True, "max_selectivity": 0.4}}
    with ClientStore(path=":memory:", hnsw_ef=64) as s:
        s.create_collection("c", 16, {}, TEST_SCHEMA)
        s.upsert("c", pts[:50])
        one = _capture(monkeypatch, s._client, "query_points")
        s.search("c", query, 10)
        s.search("c", query, 100)
    assert [call["search_params"].hnsw_ef for call in one] == [64, 100]
    from e2r.store.settings import IndexSettings

    # Local mode keeps one shard; the server's answer is made to say 4.
    with ClientStore(path=":memory:", shard_number=4, index_settings=IndexSettings(exact_filter_points=50)) as s:
        s.create_collection("c", 16, {}, TEST_SCHEMA)
        s.upsert("c", pts)
        real = s._client.get_collection

        def sharded(name):
            info = real(name)
            info.config.params.shard_number = 4
            return info

        monkeypatch.setattr(s._client, "get_collection", sharded)
        one = _capture(monkeypatch, s._client, "query_points")
        s.search("c", query, 10)  # 250 points a shard, not 1000
        s.search("c", query, 10, narrow)  # ~70 points pass: over 50 in all, ~18 in each shard (exact)
    assert [(c["search_params"].hnsw_ef, c["search_params"].exact) for c in one] == [(512, False), (512, True)]


def test_server_collection_made_before_the_settings_keeps_qdrants(monkeypatch):
    """A server collection e2r created before it recorded IndexSettings was built with Qdrant's
    defaults (payload links on): it is searched without ACORN or exact planning, at the grown
    breadth; its metadata and search work as before."""
    from qdrant_client import models as qm

    from e2r.store.client import ClientStore

    pts = make_points(300, seed=15)
    with ClientStore(path=":memory:") as s:
        s._client.create_collection("old", vectors_config=qm.VectorParams(size=16, distance=qm.Distance.COSINE),
                                    metadata={"dim": 16, "payload_schema": TEST_SCHEMA})
        s.upsert("old", pts)
        one = _capture(monkeypatch, s._client, "query_points")
        query = pts[4].vector
        assert s.search("old", query, 1, parse_filter(["lvef<20"]))
        assert s.search("old", query, 1)[0].id == pts[4].id
        assert s.get_metadata("old") == {"dim": 16}
    assert all(c["search_params"].acorn is None and not c["search_params"].exact for c in one)
    assert [c["search_params"].hnsw_ef for c in one] == [512, 512]


def test_both_backends_plan_the_same_searches(tmp_path):
    """Congruence of the search plans: for the same collection and filters, the embedded store
    and the server path choose the same breadth, exactness and ACORN (one set of rules)."""
    from e2r.store.edge import _edge_filter

    pts = make_points(1000, seed=13)
    plans = {}
    for backend in BACKENDS:
        with open_store(tmp_path / backend, backend=backend) as s:
            s.create_collection("c", 16, {}, TEST_SCHEMA)
            s.upsert("c", pts)
            rows = []
            for flt in (None, parse_filter(["lvef<20"]), parse_filter(["lvef<60"])):
                p = s._params("c", 10, _edge_filter(flt) if backend == "edge" else flt)
                rows.append((p.hnsw_ef, bool(p.exact), p.acorn.max_selectivity))
            plans[backend] = rows
    assert plans["edge"] == plans["client-local"] == [(512, False, 0.4), (512, True, 0.4), (512, False, 0.4)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_filters_on_unindexed_fields_are_exact(tmp_path, backend):
    """Only STUDY_INDEXED_SCHEMA is indexed by default; a filter on any other field still holds."""
    pts = make_points(200, seed=9)
    with open_store(tmp_path / backend, backend=backend) as store:
        store.create_collection("c", 16, {})  # default indexes: not lvh, not rhythm
        store.upsert("c", pts)
        query = np.random.default_rng(10).standard_normal(16)
        for expr in (["lvh=1"], ["rhythm=af", "lvef<50"]):
            flt = parse_filter(expr)
            ids, _, _ = exact_topk(pts, query, 10, flt)
            assert [h.id for h in store.search("c", query, 10, flt)] == ids
