"""The store interface every backend implements, and the records it passes around."""

from __future__ import annotations

import abc
import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np

from e2r.errors import StoreError
from e2r.store.filters import Filter

# Fixed namespace so `point_id_for(key)` is the same UUID on every machine and every run.
_ID_NAMESPACE = uuid.UUID("6f1c2a5e-1d0b-5c8e-9a57-e2e2e2e2e2e2")


def point_id_for(key: str) -> str:
    """The deterministic point ID (UUID5 string) for a key such as a StudyInstanceUID."""
    if not isinstance(key, str) or not key:
        raise StoreError(f"point key must be a non-empty string, got {key!r}")
    return str(uuid.uuid5(_ID_NAMESPACE, key))


def _check_id(point_id: Any) -> str:
    try:
        return str(uuid.UUID(str(point_id)))
    except ValueError:
        raise StoreError(
            f"point id {point_id!r} is not a UUID string; make IDs with e2r.store.point_id_for(key)"
        ) from None


@dataclass(frozen=True)
class Point:
    """A vector with its ID (UUID string, see point_id_for) and JSON payload."""

    id: str
    vector: np.ndarray  # float32 (D,)
    payload: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", _check_id(self.id))
        vec = np.asarray(self.vector, dtype=np.float32)
        if vec.ndim != 1 or vec.size == 0:
            raise StoreError(f"point {self.id}: vector must be 1-D and non-empty, got shape {vec.shape}")
        norm = float(np.linalg.norm(vec))
        if not math.isfinite(norm) or norm == 0.0:
            raise StoreError(f"point {self.id}: vector is zero or has NaN/inf values; cannot be indexed")
        object.__setattr__(self, "vector", vec)
        object.__setattr__(self, "payload", plain_payload(self.payload, self.id))


@dataclass(frozen=True)
class Hit:
    """A search result: point ID, cosine similarity, payload."""

    id: str
    score: float
    payload: dict


@dataclass(frozen=True)
class SearchRequest:
    """One search of a batch (`VectorStore.search_batch`): top_k points passing `filter`, with only
    the payload keys in `payload_fields` (None: the whole payload; (): none)."""

    top_k: int
    filter: Optional[Filter] = None
    payload_fields: Optional[tuple[str, ...]] = None


@dataclass(frozen=True)
class Record:
    """A stored point as read back by retrieve/iterate (vector only when asked for)."""

    id: str
    payload: dict
    vector: Optional[np.ndarray] = None


def trim_payload(hit: Hit, fields: Optional[Sequence[str]]) -> Hit:
    """The hit with only the payload keys in `fields` (None: unchanged)."""
    if fields is None:
        return hit
    return Hit(hit.id, hit.score, {k: hit.payload[k] for k in fields if k in hit.payload})


def check_dims(name: str, points: Sequence[Point], dim: int) -> None:
    """StoreError naming the first point whose vector does not have the collection's size."""
    for p in points:
        if p.vector.shape[0] != dim:
            raise StoreError(f"point {p.id}: vector has {p.vector.shape[0]} values, collection "
                             f"{name!r} holds {dim}-d vectors")


def record_from_engine(r: Any, with_vectors: bool) -> Record:
    """A Record from a point as either engine returns it (both expose id, payload, vector)."""
    vec = np.asarray(r.vector, dtype=np.float32) if with_vectors and r.vector is not None else None
    return Record(str(r.id), dict(r.payload or {}), vec)


def hits_from_engine(points: Any) -> list[Hit]:
    """Hits from scored points as either engine returns them (both expose id, score, payload)."""
    return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in points]


def plain_payload(payload: Optional[Mapping[str, Any]], where: str = "payload") -> dict:
    """The payload as plain JSON types (numpy scalars/arrays and tuples converted; NaN -> None)."""
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        raise StoreError(f"{where}: payload must be a dict, got {type(payload).__name__}")
    return {str(k): _plain(v, where) for k, v in payload.items()}


def _plain(v: Any, where: str) -> Any:
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, np.generic):
        return _plain(v.item(), where)
    if isinstance(v, np.ndarray):
        return [_plain(x, where) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_plain(x, where) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _plain(x, where) for k, x in v.items()}
    raise StoreError(f"{where}: payload value {v!r} of type {type(v).__name__} is not JSON; convert it first")


def as_query(vector: Any, dim: int, name: str) -> np.ndarray:
    """A query vector as float32 (dim,), with a StoreError naming the collection when it does not fit."""
    vec = np.asarray(vector, dtype=np.float32).reshape(-1)
    if vec.shape[0] != dim:
        raise StoreError(f"collection {name!r} holds {dim}-d vectors but the query has {vec.shape[0]}; "
                         "was it indexed with another model?")
    if not np.isfinite(vec).all() or not vec.any():
        raise StoreError("query vector is zero or has NaN/inf values")
    return vec


class VectorStore(abc.ABC):
    """A set of named collections of vectors + payloads, searched by cosine similarity.

    Open one with `e2r.store.open_store`; pass it to the code that needs it (never global);
    close it (or use `with`) so an embedded store flushes, builds its index and frees its lock.
    """

    #: "edge" (embedded), "client-local" (qdrant-client local mode) or "server".
    backend: str = ""
    #: the folder or URL, for messages.
    location: str = ""

    @abc.abstractmethod
    def create_collection(self, name: str, dim: int, metadata: Mapping[str, Any],
                          payload_schema: Optional[Mapping[str, str]] = None) -> None:
        """Create a collection of `dim`-d cosine vectors with metadata (completed by
        schema.with_defaults) and payload indexes (`payload_schema`, default
        schema.STUDY_INDEXED_SCHEMA; `{}` for none). StoreError if it exists."""

    @abc.abstractmethod
    def collection_exists(self, name: str) -> bool:
        """Whether the collection exists."""

    @abc.abstractmethod
    def list_collections(self) -> list[str]:
        """Names of all collections, sorted."""

    @abc.abstractmethod
    def get_metadata(self, name: str) -> dict:
        """The collection's metadata (see schema.METADATA_KEYS)."""

    @abc.abstractmethod
    def set_metadata(self, name: str, metadata: Mapping[str, Any]) -> None:
        """Merge `metadata` into the collection's metadata (keys given replace old values)."""

    @abc.abstractmethod
    def upsert(self, name: str, points: Sequence[Point]) -> None:
        """Insert or replace points by ID; durable once it returns."""

    @abc.abstractmethod
    def search(self, name: str, vector: np.ndarray, top_k: int, filter: Optional[Filter] = None) -> list[Hit]:
        """The `top_k` points most cosine-similar to `vector` that pass `filter`, best first."""

    def search_batch(self, name: str, vector: np.ndarray, requests: Sequence[SearchRequest]) -> list[list[Hit]]:
        """Several searches with one query vector, one result list per request, in order.

        Backends answer them in one engine call (one round trip to a server); this fallback
        runs them one by one and trims payloads afterwards.
        """
        out = []
        for req in requests:
            hits = self.search(name, vector, req.top_k, req.filter)
            out.append([trim_payload(h, req.payload_fields) for h in hits])
        return out

    @abc.abstractmethod
    def count(self, name: str, filter: Optional[Filter] = None) -> int:
        """Exact number of points (passing `filter`)."""

    @abc.abstractmethod
    def retrieve(self, name: str, ids: Sequence[str], with_vectors: bool = False) -> list[Record]:
        """The points with these IDs that exist, in the order asked."""

    @abc.abstractmethod
    def delete(self, name: str, ids: Sequence[str]) -> None:
        """Delete points by ID (missing IDs are ignored)."""

    @abc.abstractmethod
    def drop_collection(self, name: str) -> None:
        """Delete a collection and its data (no error if it does not exist)."""

    @abc.abstractmethod
    def iterate(self, name: str, filter: Optional[Filter] = None, batch_size: int = 1000,
                with_vectors: bool = False) -> Iterator[Record]:
        """Every point (passing `filter`) once, in ID order, fetched in batches."""

    @abc.abstractmethod
    def dim(self, name: str) -> int:
        """The collection's vector size."""

    @abc.abstractmethod
    def payload_schema(self, name: str) -> dict:
        """Indexed payload fields -> type of a collection."""

    def optimize(self, name: str) -> None:
        """Build/refresh the vector index now (embedded store; servers do this in the background)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush, finish indexing and release the store (idempotent)."""

    def __enter__(self) -> "VectorStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _missing(self, name: str) -> StoreError:
        have = ", ".join(self.list_collections()) or "none"
        return StoreError(
            f"collection {name!r} not found in {self.location} (collections: {have}); "
            "run `e2r index` first or check --collection / --data-dir / --qdrant-url"
        )
