"""The qdrant-client backend: a Qdrant server or cluster by URL (+ API key), or qdrant-client's
in-process local mode (a folder, or ":memory:") which speaks the same API and is how tests and
the benchmark exercise this code path without a server.

Collection metadata uses Qdrant's own collection metadata (server >= 1.16). Payload indexes are
created on servers only (local mode has none and warns). Connection failures and refused API keys
become one-line StoreErrors.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)

_UPSERT_CHUNK = 1000
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
                 replication_factor: Optional[int] = None):
        if (url is None) == (path is None):
            raise StoreError("ClientStore needs exactly one of url= (server) or path= (local mode)")
        self.url = url
        self.shard_number = shard_number
        self.replication_factor = replication_factor
        self._closed = False
        self._dims: dict[str, int] = {}  # collections known to exist -> vector size
        if url is not None:
            self.backend, self.location = "server", url
            self._client = QdrantClient(url=url, api_key=api_key or None, timeout=max(1, round(timeout)),
                                        check_compatibility=False)
            with self._errors():
                self._client.get_collections()  # fail now, with a clear line, if unreachable
        else:
            self.backend, self.location = "client-local", str(path)
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
        """Create a cosine collection with Qdrant collection metadata and (server) payload indexes."""
        schema.check_collection_name(name)
        if int(dim) <= 0:
            raise StoreError(f"collection {name!r}: dim must be positive, got {dim}")
        fields = schema.check_payload_schema(
            schema.STUDY_INDEXED_SCHEMA if payload_schema is None else payload_schema)
        meta = plain_payload(schema.with_defaults(dim, metadata), "collection metadata")
        # The payload schema lives in metadata too: local mode keeps no payload indexes to read back.
        meta["payload_schema"] = fields
        with self._errors():
            if self._client.collection_exists(name):
                raise StoreError(f"collection {name!r} already exists at {self.location}; "
                                 "pick another --collection or drop it first")
            self._client.create_collection(
                name, vectors_config=qm.VectorParams(size=int(dim), distance=qm.Distance.COSINE),
                metadata=meta, shard_number=self.shard_number, replication_factor=self.replication_factor,
            )
            if self.backend == "server":
                for field, kind in fields.items():
                    self._client.create_payload_index(name, field, _QM_TYPES[kind], wait=True)

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

    def get_metadata(self, name: str) -> dict:
        """Qdrant collection metadata, without the internal payload_schema key."""
        meta = dict(self._config(name).metadata or {})
        meta.pop("payload_schema", None)
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
        return dict((self._config(name).metadata or {}).get("payload_schema") or {})

    # -- points ------------------------------------------------------------------------------
    def upsert(self, name: str, points: Sequence[Point]) -> None:
        """Write points and wait until the server has applied them."""
        check_dims(name, points, self.dim(name))
        for start in range(0, len(points), _UPSERT_CHUNK):
            batch = [qm.PointStruct(id=p.id, vector=p.vector.tolist(), payload=p.payload)
                     for p in points[start:start + _UPSERT_CHUNK]]
            with self._errors():
                self._client.upsert(name, points=batch, wait=True)

    def search(self, name: str, vector: np.ndarray, top_k: int, filter: Optional[Filter] = None) -> list[Hit]:
        """Nearest points by cosine similarity, best first."""
        query = as_query(vector, self.dim(name), name)
        if top_k <= 0:
            return []
        with self._errors():
            found = self._client.query_points(name, query=query.tolist(), limit=int(top_k),
                                              query_filter=_qm_filter(filter), with_payload=True).points
        return hits_from_engine(found)

    def search_batch(self, name: str, vector: np.ndarray, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """The requests in one `query_batch_points` call: one round trip to the server."""
        query = as_query(vector, self.dim(name), name).tolist()
        live = [r for r in requests if r.top_k > 0]
        batch = [qm.QueryRequest(query=query, limit=int(r.top_k), filter=_qm_filter(r.filter),
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

