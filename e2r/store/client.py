"""The qdrant-client backend: a Qdrant server or cluster by URL (+ API key), or qdrant-client's
in-process local mode (a folder, or ":memory:") which speaks the same API and is how tests and
the benchmark exercise this code path without a server.

Collection metadata uses Qdrant's own collection metadata (server >= 1.16). Payload indexes are
created on servers only (local mode has none and warns). Connection failures and refused API keys
become one-line StoreErrors.

A new collection gets the embedded store's IndexSettings (settings.py: HNSW m / ef_construct,
payload links, quantisation; payload indexes in the server's memory), recorded in its metadata;
each search sends the parameters they plan (HNSW breadth grown with each shard's points, ACORN,
exact search for narrow filters). The point counts that plan needs are the server's estimates,
re-read at most every ESTIMATE_TTL_S (other processes may write to a server collection). Local
mode accepts and ignores these: it always scans exactly.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import replace
from typing import Any, Iterator, Mapping, Optional, Sequence

import httpx
import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from e2r.errors import StoreError
from e2r.util import one_line
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
from e2r.store.settings import (
    DEFAULT_HNSW_EF,
    FULL_SCAN_THRESHOLD_KB,
    INT8_QUANTILE,
    IndexSettings,
    SearchPlan,
)

log = logging.getLogger(__name__)

_UPSERT_CHUNK = 1000
# Keys of the collection metadata this backend keeps for itself (hidden from get_metadata).
_SCHEMA_KEY, _SETTINGS_KEY = "payload_schema", "index_settings"
ESTIMATE_TTL_S = 30.0  # seconds a collection's (or a filter's) estimated point count is reused
_QM_TYPES = {
    "keyword": qm.PayloadSchemaType.KEYWORD,
    "integer": qm.PayloadSchemaType.INTEGER,
    "float": qm.PayloadSchemaType.FLOAT,
    "bool": qm.PayloadSchemaType.BOOL,
}


class ClientStore(VectorStore):
    """Collections on a Qdrant server/cluster (`url`) or in qdrant-client local mode (`path`)."""

    def __init__(self, *, url: Optional[str] = None, api_key: Optional[str] = None, path: Optional[str] = None,
                 timeout: float = 10.0, shard_number: Optional[int] = None,
                 replication_factor: Optional[int] = None, hnsw_ef: Optional[int] = DEFAULT_HNSW_EF,
                 index_settings: Optional[IndexSettings] = None):
        if (url is None) == (path is None):
            raise StoreError("ClientStore needs exactly one of url= (server) or path= (local mode)")
        self.url = url
        self.shard_number = shard_number
        self.replication_factor = replication_factor
        self.hnsw_ef = None if hnsw_ef is None else int(hnsw_ef)  # None: auto_hnsw_ef of each collection
        # For collections created from now on; an existing collection keeps the ones it was made with.
        # A server reads a collection's payload indexes once, at its own start, not per search
        # process, so by default they stay in its memory (the engine's default placement, which
        # also suits servers older than Qdrant 1.19, the first with a `memory` setting).
        self.index_settings = index_settings or replace(IndexSettings(), payload_index_memory=None)
        self.index_settings.validate()
        self._closed = False
        self._dims: dict[str, int] = {}  # collections known to exist -> vector size
        self._settings: dict[str, tuple[IndexSettings, int]] = {}  # collection -> (its settings, shards)
        # (collection, filter or None) -> (time read, estimated points passing); reset by our writes
        self._estimates: dict[tuple[str, Optional[Filter]], tuple[float, int]] = {}
        if url is not None:
            self.backend, self.location = "server", url
            self._client = QdrantClient(url=url, api_key=api_key or None, timeout=max(1, round(timeout)),
                                        check_compatibility=False)
            with self._errors():
                self._client.get_collections()  # fail now, with a clear line, if unreachable
        else:
            self.backend, self.location = "client-local", str(path)
            # Local mode scans exactly and says so (once) when sent search parameters; it is sent
            # the server's anyway, so that it runs the server's code path.
            warnings.filterwarnings("ignore", message="Local mode performs exact", category=UserWarning)
            try:
                self._client = QdrantClient(location=":memory:") if path == ":memory:" else QdrantClient(path=path)
            except RuntimeError as err:
                if "already accessed" not in str(err):
                    raise
                raise StoreError(
                    f"store folder {path} is used by another running process; wait for it to finish, or "
                    "run a Qdrant server (docker compose up -d) and pass --qdrant-url"
                ) from None

    # -- collections -------------------------------------------------------------------------
    def create_collection(self, name: str, dim: int, metadata: Mapping[str, Any],
                          payload_schema: Optional[Mapping[str, str]] = None) -> None:
        """Create a cosine collection with the store's IndexSettings, Qdrant collection metadata and
        (server) payload indexes."""
        schema.check_collection_name(name)
        if int(dim) <= 0:
            raise StoreError(f"collection {name!r}: dim must be positive, got {dim}")
        fields = schema.check_payload_schema(
            schema.STUDY_INDEXED_SCHEMA if payload_schema is None else payload_schema)
        meta = plain_payload(schema.with_defaults(dim, metadata), "collection metadata")
        # The payload schema lives in metadata too: local mode keeps no payload indexes to read back;
        # the index settings too: searches plan with them, and local mode does not keep hnsw_config.
        meta[_SCHEMA_KEY] = fields
        meta[_SETTINGS_KEY] = self.index_settings.record()
        with self._errors():
            if self._client.collection_exists(name):
                raise StoreError(f"collection {name!r} already exists at {self.location}; "
                                 "pick another --collection or drop it first")
            self._client.create_collection(
                name, metadata=meta, shard_number=self.shard_number, replication_factor=self.replication_factor,
                **_qm_collection_config(self.index_settings, int(dim)),
            )
            if self.backend == "server":
                for field, kind in fields.items():
                    self._client.create_payload_index(
                        name, field, _qm_field_index(kind, self.index_settings.payload_index_memory), wait=True)

    def collection_exists(self, name: str) -> bool:
        """Whether the collection exists."""
        with self._errors():
            return bool(self._client.collection_exists(name))

    def list_collections(self) -> list[str]:
        """All collection names, sorted."""
        with self._errors():
            return sorted(c.name for c in self._client.get_collections().collections)

    def drop_collection(self, name: str) -> None:
        """Delete the collection (no error if missing)."""
        with self._errors():
            if self._client.collection_exists(name):
                self._client.delete_collection(name)
        self._dims.pop(name, None)
        self._settings.pop(name, None)
        self._forget_counts(name)

    def get_metadata(self, name: str) -> dict:
        """Qdrant collection metadata, without the keys this backend keeps for itself."""
        meta = dict(self._config(name).metadata or {})
        meta.pop(_SCHEMA_KEY, None)
        meta.pop(_SETTINGS_KEY, None)
        return meta

    def set_metadata(self, name: str, metadata: Mapping[str, Any]) -> None:
        """Merge keys into the collection metadata (Qdrant merges on update)."""
        self._config(name)
        with self._errors():
            self._client.update_collection(name, metadata=plain_payload(metadata, "collection metadata"))

    def dim(self, name: str) -> int:
        """Vector size from the collection config (cached: it never changes)."""
        if name not in self._dims:
            self._dims[name] = int(self._config(name).params.vectors.size)
        return self._dims[name]

    def payload_schema(self, name: str) -> dict:
        """Indexed payload fields as recorded at creation."""
        return dict((self._config(name).metadata or {}).get(_SCHEMA_KEY) or {})

    # -- points ------------------------------------------------------------------------------
    def upsert(self, name: str, points: Sequence[Point]) -> None:
        """Write points and wait until the server has applied them."""
        check_dims(name, points, self.dim(name))
        for start in range(0, len(points), _UPSERT_CHUNK):
            batch = [qm.PointStruct(id=p.id, vector=p.vector.tolist(), payload=p.payload)
                     for p in points[start:start + _UPSERT_CHUNK]]
            with self._errors():
                self._client.upsert(name, points=batch, wait=True)
        if points:
            self._forget_counts(name)

    def search(self, name: str, vector: np.ndarray, top_k: int, filter: Optional[Filter] = None) -> list[Hit]:
        """Nearest points by cosine similarity, best first."""
        query = as_query(vector, self.dim(name), name)
        if top_k <= 0:
            return []
        params = self._params(name, top_k, filter)
        with self._errors():
            found = self._client.query_points(name, query=query.tolist(), limit=int(top_k),
                                              query_filter=_qm_filter(filter), search_params=params,
                                              with_payload=True).points
        return hits_from_engine(found)

    def search_batch(self, name: str, vector: np.ndarray, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """The requests in one `query_batch_points` call: one round trip to the server."""
        query = as_query(vector, self.dim(name), name).tolist()
        live = [r for r in requests if r.top_k > 0]
        batch = [qm.QueryRequest(query=query, limit=int(r.top_k), filter=_qm_filter(r.filter),
                                 params=self._params(name, r.top_k, r.filter),
                                 with_payload=True if r.payload_fields is None else list(r.payload_fields) or False)
                 for r in live]
        with self._errors():
            found = iter(self._client.query_batch_points(name, requests=batch) if batch else [])
        return [hits_from_engine(next(found).points) if r.top_k > 0 else [] for r in requests]

    def count(self, name: str, filter: Optional[Filter] = None) -> int:
        """Exact count."""
        self.dim(name)
        with self._errors():
            return int(self._client.count(name, count_filter=_qm_filter(filter), exact=True).count)

    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[Record]:
        """Points by ID in the order asked."""
        self.dim(name)
        wanted = [_check_id(i) for i in ids]
        if not wanted:
            return []
        with self._errors():
            found = {str(r.id): r for r in self._client.retrieve(name, wanted, with_payload=True,
                                                                  with_vectors=bool(with_vectors))}
        return [record_from_engine(found[i], with_vectors) for i in wanted if i in found]

    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Delete by ID."""
        self.dim(name)
        wanted = [_check_id(i) for i in ids]
        if wanted:
            with self._errors():
                self._client.delete(name, points_selector=qm.PointIdsList(points=wanted), wait=True)
            self._forget_counts(name)

    def iterate(self, name: str, filter: Optional[Filter] = None, batch_size: int = 1000,
                with_vectors: bool = False) -> Iterator[Record]:
        """Scroll through the collection in ID order."""
        self.dim(name)
        offset = None
        while True:
            with self._errors():
                records, offset = self._client.scroll(name, scroll_filter=_qm_filter(filter), limit=int(batch_size),
                                                      offset=offset, with_payload=True,
                                                      with_vectors=bool(with_vectors))
            for r in records:
                yield record_from_engine(r, with_vectors)
            if offset is None:
                return

    def close(self) -> None:
        """Close the client (local mode: persist and release the folder)."""
        if not self._closed:
            self._closed = True
            self._client.close()

    # -- helpers -----------------------------------------------------------------------------
    def _config(self, name: str) -> Any:
        with self._errors():
            if not self._client.collection_exists(name):
                raise self._missing(name)
            return self._client.get_collection(name).config

    def _settings_of(self, name: str) -> tuple[IndexSettings, int]:
        """The IndexSettings the collection was created with (Qdrant's defaults for one created
        before e2r recorded them, which were also what the server built it with), and its shard
        count: each shard is a graph of its own, searched with the plan for its share of points."""
        if name not in self._settings:
            config = self._config(name)
            self._settings[name] = (IndexSettings.from_record((config.metadata or {}).get(_SETTINGS_KEY)),
                                    max(1, int(config.params.shard_number or 1)))
        return self._settings[name]

    def _params(self, name: str, top_k: int, flt: Optional[Filter]) -> qm.SearchParams:
        """The search parameters the collection's IndexSettings plan for this search (points
        counted per shard: IDs are hashed evenly over the shards)."""
        settings, shards = self._settings_of(name)
        flt = flt if flt is not None and flt.must else None
        passing = -(-self._estimate(name, flt) // shards) if flt is not None and settings.plans_filters else None
        points = -(-self._estimate(name, None) // shards)
        return _qm_search_params(settings.plan(points, top_k, passing, self.hnsw_ef))

    def _estimate(self, name: str, flt: Optional[Filter]) -> int:
        """The payload indexes' estimate of the points passing `flt` (None: all), reused for
        ESTIMATE_TTL_S: one request to the server, not one per search."""
        now = time.monotonic()
        cached = self._estimates.get((name, flt))
        if cached is None or now - cached[0] > ESTIMATE_TTL_S:
            with self._errors():
                n = int(self._client.count(name, count_filter=_qm_filter(flt), exact=False).count)
            cached = self._estimates[(name, flt)] = (now, n)
        return cached[1]

    def _forget_counts(self, name: str) -> None:
        self._estimates = {k: v for k, v in self._estimates.items() if k[0] != name}

    def _errors(self) -> "_ClientErrors":
        return _ClientErrors(self.location)


class _ClientErrors:
    """Map transport and HTTP failures to one-line StoreErrors."""

    def __init__(self, location: str):
        self.location = location

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, err: Any, tb: Any) -> bool:
        if err is None or isinstance(err, StoreError) or not isinstance(err, Exception):
            return False
        if isinstance(err, (ResponseHandlingException, httpx.TransportError, ConnectionError)):
            cause = err.__cause__ or getattr(err, "source", None) or err
            raise StoreError(f"cannot reach Qdrant at {self.location}: {one_line(cause)}; is the server "
                             "running? (docker compose up -d) Check --qdrant-url / E2R_QDRANT_URL") from None
        if isinstance(err, UnexpectedResponse):
            if err.status_code in (401, 403):
                raise StoreError(
                    f"Qdrant at {self.location} refused the API key (HTTP {err.status_code}); set --api-key / "
                    "E2R_QDRANT_API_KEY to the server's QDRANT__SERVICE__API_KEY") from None
            raise StoreError(f"Qdrant at {self.location} answered HTTP {err.status_code}: "
                             f"{one_line(err.content.decode(errors='replace') if err.content else err)}") from None
        if isinstance(err, (ValueError, RuntimeError)) and "qdrant" in type(err).__module__ + str(err).lower():
            raise StoreError(f"Qdrant at {self.location}: {one_line(err)}") from None
        return False


def _qm_collection_config(settings: IndexSettings, dim: int) -> dict[str, Any]:
    """create_collection's vector, HNSW and quantisation arguments for these settings (as
    edge._edge_config gives the embedded store)."""
    vectors = qm.VectorParams(size=dim, distance=qm.Distance.COSINE,
                              memory=qm.Memory.COLD if settings.vectors_on_disk else None)
    hnsw = qm.HnswConfigDiff(m=settings.m, ef_construct=settings.ef_construct,
                             full_scan_threshold=FULL_SCAN_THRESHOLD_KB, payload_m=settings.payload_m)
    quant = (qm.ScalarQuantization(scalar=qm.ScalarQuantizationConfig(
        type=qm.ScalarType.INT8, quantile=INT8_QUANTILE, memory=qm.Memory.PINNED))
        if settings.quantization == "int8" else None)
    return {"vectors_config": vectors, "hnsw_config": hnsw, "quantization_config": quant}


_QM_INDEX_PARAMS = {"keyword": qm.KeywordIndexParams, "integer": qm.IntegerIndexParams,
                    "float": qm.FloatIndexParams, "bool": qm.BoolIndexParams}


def _qm_field_index(kind: str, memory: Optional[str]) -> Any:
    """A field's payload index as create_payload_index takes it (as edge._edge_field_index gives
    the embedded store)."""
    if memory is None:
        return _QM_TYPES[kind]
    return _QM_INDEX_PARAMS[kind](type=_QM_TYPES[kind], memory=qm.Memory(memory))


def _qm_search_params(plan: SearchPlan) -> qm.SearchParams:
    """A search's parameters as Qdrant's SearchParams: HNSW breadth (or exact), ACORN, int8 rescoring."""
    quant = (qm.QuantizationSearchParams(rescore=True, oversampling=plan.oversampling)
             if plan.oversampling is not None else None)
    acorn = (qm.AcornSearchParams(enable=True, max_selectivity=plan.acorn_max_selectivity)
             if plan.acorn_max_selectivity is not None else None)
    return qm.SearchParams(hnsw_ef=plan.hnsw_ef, exact=plan.exact, quantization=quant, acorn=acorn)


def _qm_filter(f: Optional[Filter]) -> Optional[qm.Filter]:
    if f is None or not f.must:
        return None
    return qm.Filter(must=[_qm_condition(c) for c in f.must])


def _qm_condition(c: Condition) -> qm.FieldCondition:
    v = c.value
    if c.op == "any":
        return qm.FieldCondition(key=c.field, match=qm.MatchAny(any=list(v)))
    if c.op == "eq" and isinstance(v, (str, bool)):
        return qm.FieldCondition(key=c.field, match=qm.MatchValue(value=v))
    if c.op == "eq":  # numbers: an exact range so 35 matches a stored 35.0 too
        return qm.FieldCondition(key=c.field, range=qm.Range(gte=float(v), lte=float(v)))
    return qm.FieldCondition(key=c.field, range=qm.Range(**{c.op: float(v)}))

