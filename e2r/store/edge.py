"""The embedded store (the default): Qdrant Edge (PyPI `qdrant-edge-py`), Qdrant's own engine
running in this process, one Edge shard per collection, no server.

Why this and not qdrant-client's local mode: e2r/store/schema.py says why, docs/benchmarks.md
what it measured (bench/bench_store.py). Edge keeps a write-ahead log (an upsert that returned
survives SIGKILL), memory-maps its segments and builds a real HNSW index.

Folder layout (`root` is `<data_dir>/store`):

    store.lock, store.lock.owner     one process at a time (lock.py)
    collections/<name>/shard/        the Edge shard: WAL, segments, edge_config.json
    collections/<name>/collection.json   dim, payload schema, metadata (schema.py) and the
                                         collection's IndexSettings (settings.py)

Edge indexes new points with HNSW only when `optimize()` runs (until then they are searched
exactly); this store optimizes every collection it wrote to when it is closed, or on `optimize()`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np
import qdrant_edge as qe

from e2r.errors import StoreError
from e2r.store import schema
from e2r.store.base import (
    Hit,
    Point,
    Record,
    SearchRequest,
    check_dims,
    hits_from_engine,
    record_from_engine,
    VectorStore,
    _check_id,
    as_query,
    plain_payload,
)
from e2r.store.filters import Condition, Filter
from e2r.store.lock import StoreLock
from e2r.store.settings import (
    DEFAULT_HNSW_EF,
    FULL_SCAN_THRESHOLD_KB,
    INT8_QUANTILE,
    IndexSettings,
    SearchPlan,
)
from e2r.util import atomic_write, one_line

log = logging.getLogger(__name__)

SIDECAR = "collection.json"
# Segments holding more vector data than this get an HNSW index when optimized (Qdrant's default);
# smaller ones are searched exactly, which is as fast at that size.
DEFAULT_INDEXING_THRESHOLD_KB = 10_000
_UPSERT_CHUNK = 2000


def _edge_config(settings: IndexSettings, dim: int, indexing_threshold_kb: int) -> Any:
    """The Qdrant Edge shard config for a new collection with these settings."""
    quant = (qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=INT8_QUANTILE, memory=qe.Memory.Pinned)
             if settings.quantization == "int8" else None)
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=int(dim), distance=qe.Distance.Cosine,
                                    memory=qe.Memory.Cold if settings.vectors_on_disk else None),
        hnsw_config=qe.HnswIndexConfig(m=settings.m, ef_construct=settings.ef_construct,
                                       full_scan_threshold=FULL_SCAN_THRESHOLD_KB, payload_m=settings.payload_m),
        quantization_config=quant,
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=indexing_threshold_kb),
    )


def _edge_search_params(plan: SearchPlan) -> Any:
    """The engine's per-query parameters: HNSW breadth (or an exact search), ACORN, int8 rescoring."""
    quant = (qe.QuantizationSearchParams(rescore=True, oversampling=plan.oversampling)
             if plan.oversampling is not None else None)
    acorn = (qe.AcornSearchParams(enable=True, max_selectivity=plan.acorn_max_selectivity)
             if plan.acorn_max_selectivity is not None else None)
    return qe.SearchParams(hnsw_ef=plan.hnsw_ef, exact=plan.exact, quantization=quant, acorn=acorn)


_EDGE_TYPES = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
}
_EDGE_INDEX_PARAMS = {"keyword": qe.KeywordIndexParams, "integer": qe.IntegerIndexParams,
                      "float": qe.FloatIndexParams, "bool": qe.BoolIndexParams}


def _edge_field_index(kind: str, memory: Optional[str]) -> Any:
    """The payload index of one field of type `kind`, kept where IndexSettings.payload_index_memory says."""
    if memory is None:
        return _EDGE_TYPES[kind]
    return _EDGE_INDEX_PARAMS[kind](memory=getattr(qe.Memory, memory.capitalize()))


class EdgeStore(VectorStore):
    """Collections kept in a local folder by Qdrant Edge; one process at a time (see lock.py)."""

    backend = "edge"

    def __init__(self, root: Path, *, wait_s: float = 0.0, hnsw_ef: Optional[int] = DEFAULT_HNSW_EF,
                 indexing_threshold_kb: int = DEFAULT_INDEXING_THRESHOLD_KB,
                 index_settings: Optional[IndexSettings] = None):
        self.root = Path(root).expanduser()
        self.location = str(self.root)
        self.hnsw_ef = None if hnsw_ef is None else int(hnsw_ef)  # None: auto_hnsw_ef of each collection
        self._points: dict[str, int] = {}  # per collection, for the search breadth; reset by writes
        # For collections created from now on; an existing collection keeps the ones it was made with.
        self.indexing_threshold_kb = int(indexing_threshold_kb)
        self.index_settings = index_settings or IndexSettings()
        self.index_settings.validate()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"--data-dir {self.root}: cannot create the store folder ({err.strerror}); "
                             "choose a writable folder") from None
        self._lock = StoreLock(self.root)
        self._lock.acquire(wait_s)
        self._collections = self.root / "collections"
        self._collections.mkdir(exist_ok=True)
        self._shards: dict[str, qe.EdgeShard] = {}
        # Searches may come from several threads (e2r serve): the engine answers them concurrently,
        # but a shard must be opened once; the other caches here only ever get the same value again.
        self._opening = threading.Lock()
        self._sidecars: dict[str, dict] = {}
        self._settings: dict[str, IndexSettings] = {}
        self._dirty: set[str] = set()
        self._remove_leftovers()

    # -- collections -------------------------------------------------------------------------
    def create_collection(self, name: str, dim: int, metadata: Mapping[str, Any],
                          payload_schema: Optional[Mapping[str, str]] = None) -> None:
        """Create a collection; built in a temporary folder and renamed, so it appears whole or not at all."""
        self._check_open()
        schema.check_collection_name(name)
        if self.collection_exists(name):
            raise StoreError(f"collection {name!r} already exists in {self.location}; "
                             "pick another --collection or drop it first")
        if int(dim) <= 0:
            raise StoreError(f"collection {name!r}: dim must be positive, got {dim}")
        fields = schema.check_payload_schema(
            schema.STUDY_INDEXED_SCHEMA if payload_schema is None else payload_schema)
        sidecar = {"dim": int(dim), "distance": schema.DISTANCE, "payload_schema": fields,
                   "indexing_threshold_kb": self.indexing_threshold_kb, "index": self.index_settings.record(),
                   "metadata": plain_payload(schema.with_defaults(dim, metadata), "collection metadata")}
        tmp = self._collections / f".creating-{name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        config = _edge_config(self.index_settings, int(dim), self.indexing_threshold_kb)
        with _edge_errors(f"creating collection {name!r} in {self.location}"):
            shard = qe.EdgeShard.create(str(tmp / "shard"), config)
            try:
                for field, kind in fields.items():
                    shard.update(qe.UpdateOperation.create_field_index(
                        field, _edge_field_index(kind, self.index_settings.payload_index_memory)))
                shard.flush()
            finally:
                shard.close()
        _write_json(tmp / SIDECAR, sidecar)
        os.replace(tmp, self._collections / name)
        self._sidecars[name] = sidecar

    def collection_exists(self, name: str) -> bool:
        """Whether `collections/<name>/collection.json` exists."""
        return (self._collections / name / SIDECAR).is_file() if _plain_name(name) else False

    def list_collections(self) -> list[str]:
        """Collection folders that carry a sidecar, sorted."""
        return sorted(p.name for p in self._collections.iterdir()
                      if not p.name.startswith(".") and (p / SIDECAR).is_file())

    def drop_collection(self, name: str) -> None:
        """Close and delete the collection's folder (renamed first, so a crash leaves no half collection)."""
        self._check_open()
        if not self.collection_exists(name):
            return
        shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        self._sidecars.pop(name, None)
        self._settings.pop(name, None)
        self._points.pop(name, None)
        self._dirty.discard(name)
        doomed = self._collections / f".dropping-{name}-{os.getpid()}"
        os.replace(self._collections / name, doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def get_metadata(self, name: str) -> dict:
        """The metadata from the sidecar."""
        return dict(self._sidecar(name)["metadata"])

    def set_metadata(self, name: str, metadata: Mapping[str, Any]) -> None:
        """Merge keys into the sidecar's metadata (atomic rewrite)."""
        sidecar = dict(self._sidecar(name))
        sidecar["metadata"] = {**sidecar["metadata"], **plain_payload(metadata, "collection metadata")}
        _write_json(self._collections / name / SIDECAR, sidecar)
        self._sidecars[name] = sidecar

    def dim(self, name: str) -> int:
        """Vector size from the sidecar."""
        return int(self._sidecar(name)["dim"])

    def payload_schema(self, name: str) -> dict:
        """Indexed payload fields from the sidecar."""
        return dict(self._sidecar(name)["payload_schema"])

    # -- points ------------------------------------------------------------------------------
    def upsert(self, name: str, points: Sequence[Point]) -> None:
        """Write points; they are in the WAL (and survive a kill) when this returns."""
        shard, dim = self._shard(name), self.dim(name)
        check_dims(name, points, dim)
        for start in range(0, len(points), _UPSERT_CHUNK):
            with _edge_errors(f"writing to collection {name!r}"):  # the engine converts the payload too
                batch = [qe.Point(p.id, p.vector, p.payload) for p in points[start:start + _UPSERT_CHUNK]]
                shard.update(qe.UpdateOperation.upsert_points(batch))
        if points:
            self._dirty.add(name)
            self._points.pop(name, None)

    def search(self, name: str, vector: np.ndarray, top_k: int, filter: Optional[Filter] = None) -> list[Hit]:
        """HNSW search (exact for segments not yet indexed), best first."""
        shard = self._shard(name)
        query = as_query(vector, self.dim(name), name)
        if top_k <= 0:
            return []
        with _edge_errors(f"searching collection {name!r}"):
            found = shard.query(self._request(name, query, SearchRequest(top_k, filter)))
        return hits_from_engine(found)

    def search_batch(self, name: str, vector: np.ndarray, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """The requests in one `query_batch` call: the engine plans them together and only the
        payload keys asked for cross into Python."""
        shard = self._shard(name)
        query = as_query(vector, self.dim(name), name)
        live = [r for r in requests if r.top_k > 0]
        batch = [self._request(name, query, r) for r in live]
        with _edge_errors(f"searching collection {name!r}"):
            found = iter(shard.query_batch(qe.QueryBatchRequest(batch)) if batch else [])
        return [hits_from_engine(next(found)) if r.top_k > 0 else [] for r in requests]

    def count(self, name: str, filter: Optional[Filter] = None) -> int:
        """Exact count."""
        shard = self._shard(name)
        with _edge_errors(f"counting collection {name!r}"):
            return int(shard.count(qe.CountRequest(exact=True, filter=_edge_filter(filter))))

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[Record]:
        """Points by ID in the order asked (vectors come back unit-normalised: cosine storage)."""
        shard = self._shard(name)
        wanted = [_check_id(i) for i in ids]
        if not wanted:
            return []
        with _edge_errors(f"reading collection {name!r}"):
            found = {str(r.id): r for r in shard.retrieve(wanted, True, bool(with_vectors))}
        return [record_from_engine(found[i], with_vectors) for i in wanted if i in found]

    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Delete by ID."""
        shard = self._shard(name)
        wanted = [_check_id(i) for i in ids]
        if wanted:
            with _edge_errors(f"deleting from collection {name!r}"):
                shard.update(qe.UpdateOperation.delete_points(wanted))
            self._dirty.add(name)
            self._points.pop(name, None)

    def iterate(self, name: str, filter: Optional[Filter] = None, batch_size: int = 1000,
                with_vectors: bool = False) -> Iterator[Record]:
        """Scroll through the collection in ID order."""
        shard = self._shard(name)
        offset = None
        while True:
            request = qe.ScrollRequest(offset=offset, limit=int(batch_size), filter=_edge_filter(filter),
                                       with_payload=True, with_vector=bool(with_vectors))
            with _edge_errors(f"reading collection {name!r}"):
                records, offset = shard.scroll(request)
            for r in records:
                yield record_from_engine(r, with_vectors)
            if offset is None:
                return

    # -- lifecycle ---------------------------------------------------------------------------
    def optimize(self, name: str) -> None:
        """Build the HNSW index over everything written so far, and flush."""
        shard = self._shard(name)
        log.info("building the vector index of collection %r (%d points)", name, shard.info().points_count)
        with _edge_errors(f"indexing collection {name!r}"):
            shard.optimize()
            shard.flush()
        self._dirty.discard(name)

    def close(self) -> None:
        """Index collections written to (when big enough to need HNSW), flush, close shards,
        release the folder lock."""
        if not self._lock.held:
            return
        try:
            for name in sorted(self._dirty):
                kb = self._shards[name].info().points_count * self.dim(name) * 4 / 1024
                if kb >= self._sidecar(name).get("indexing_threshold_kb", DEFAULT_INDEXING_THRESHOLD_KB):
                    self.optimize(name)
        finally:
            # Every shard is flushed and closed even when indexing one of them failed.
            errors = []
            for shard in self._shards.values():
                try:
                    shard.flush()
                    shard.close()
                except Exception as err:  # noqa: BLE001  (the engine's own type; re-raised below as StoreError)
                    errors.append(err)
            self._shards.clear()
            self._lock.release()
            if errors and sys.exc_info()[0] is None:  # an optimize error in flight is the one to report
                raise StoreError(f"closing the store at {self.location}: {one_line(errors[0])}") from errors[0]

    # -- helpers -----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if not self._lock.held:
            raise StoreError(f"the store at {self.location} is closed; open it again with open_store()")

    def _sidecar(self, name: str) -> dict:
        self._check_open()
        if name not in self._sidecars:
            if not self.collection_exists(name):
                raise self._missing(name)
            path = self._collections / name / SIDECAR
            try:
                self._sidecars[name] = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                raise StoreError(f"{path}: unreadable collection file ({err}); the store folder is damaged, "
                                 "re-index into a new --collection") from None
        return self._sidecars[name]

    def _request(self, name: str, query: Any, req: SearchRequest) -> Any:
        """The engine's query for one search (the payload keys of `req.payload_fields` only)."""
        flt = _edge_filter(req.filter)
        return qe.QueryRequest(limit=int(req.top_k), query=qe.Query.Nearest(query), filter=flt,
                               with_payload=_edge_payload(req.payload_fields), params=self._params(name, req.top_k, flt))

    def _params(self, name: str, top_k: int, flt: Any = None) -> Any:
        """The engine's search parameters, planned by the collection's IndexSettings."""
        settings = self._settings.get(name)
        if settings is None:
            settings = self._settings[name] = IndexSettings.from_record(self._sidecar(name).get("index"))
        points = self._points.get(name)
        if points is None:
            points = self._points[name] = self._shard(name).info().points_count
        passing = None
        if flt is not None and settings.plans_filters:
            with _edge_errors(f"searching collection {name!r}"):  # payload indexes' estimate: ~0.05 ms
                passing = self._shard(name).count(qe.CountRequest(exact=False, filter=flt))
        return _edge_search_params(settings.plan(points, top_k, passing, self.hnsw_ef))

    def _shard(self, name: str) -> qe.EdgeShard:
        self._sidecar(name)
        if name not in self._shards:
            with self._opening, _edge_errors(f"opening collection {name!r} in {self.location}"):
                if name not in self._shards:
                    self._shards[name] = qe.EdgeShard.load(str(self._collections / name / "shard"))
        return self._shards[name]

    def _remove_leftovers(self) -> None:
        # Half-created or half-dropped collections of a killed process; we hold the lock, so
        # nobody else is working on them.
        for p in self._collections.glob(".*-*"):
            if p.name.startswith((".creating-", ".dropping-")):
                shutil.rmtree(p, ignore_errors=True)


def _plain_name(name: str) -> bool:
    return isinstance(name, str) and bool(name) and "/" not in name and not name.startswith(".")


def _edge_payload(fields: Optional[Sequence[str]]) -> Any:
    if fields is None:
        return True
    return qe.PayloadSelector.Include(list(fields)) if fields else False


def _edge_filter(f: Optional[Filter]) -> Optional[qe.Filter]:
    if f is None or not f.must:
        return None
    return qe.Filter(must=[_edge_condition(c) for c in f.must])


def _edge_condition(c: Condition) -> qe.FieldCondition:
    v = c.value
    if c.op == "any":
        return qe.FieldCondition(key=c.field, match=qe.MatchAny(list(v)))
    if c.op == "eq" and (isinstance(v, (str, bool))):
        return qe.FieldCondition(key=c.field, match=qe.MatchValue(v))
    if c.op == "eq":  # numbers: an exact range so 35 matches a stored 35.0 too
        return qe.FieldCondition(key=c.field, range=qe.RangeFloat(gte=float(v), lte=float(v)))
    return qe.FieldCondition(key=c.field, range=qe.RangeFloat(**{c.op: float(v)}))


def _write_json(path: Path, obj: dict) -> None:
    atomic_write(path, lambda fh: fh.write(json.dumps(obj, indent=1, sort_keys=True).encode()))


class _edge_errors:
    """Turn the engine's bare exceptions into a StoreError that says what was being done."""

    def __init__(self, doing: str):
        self.doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, err: Any, tb: Any) -> bool:
        if err is not None and not isinstance(err, StoreError) and isinstance(err, Exception):
            raise StoreError(f"{self.doing}: {err}".splitlines()[0]) from err
        return False
