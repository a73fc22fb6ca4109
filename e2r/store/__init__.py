"""The vector store: one small interface (`VectorStore`), two backends.

- embedded (default): Qdrant Edge in this process, data in `<data_dir>/store` (data_dir defaults
  to ~/.e2r; the CLI reads E2R_HOME). One process at a time per folder.
- server/cluster: a Qdrant server by URL (+ API key) through qdrant-client. qdrant-client's local
  mode (`backend="client-local"`, a folder or ":memory:") speaks the same API without a server.

    with open_store(tmp_dir) as store:
        store.create_collection("echo_studies", 512, collection_metadata(512, model_hash=h))
        store.upsert("echo_studies", [Point(point_id_for(uid), vec, payload)])
        hits = store.search("echo_studies", query, top_k=10, filter=parse_filter(["lvef<40"]))
        top, labelled = store.search_batch("echo_studies", query, [SearchRequest(10), SearchRequest(50, flt)])

Backends are imported lazily so `import e2r.store` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from e2r.errors import ConfigError
from e2r.store.base import Hit, Point, Record, SearchRequest, VectorStore, point_id_for
from e2r.store.filters import Condition, Filter, parse_filter
from e2r.store.schema import STUDY_INDEXED_SCHEMA, STUDY_PAYLOAD_SCHEMA, collection_metadata, study_date_int
from e2r.util import DEFAULT_HOME

__all__ = [
    "open_store", "default_store_dir", "VectorStore", "Point", "Hit", "Record", "SearchRequest",
    "Filter", "Condition", "parse_filter", "point_id_for", "collection_metadata", "study_date_int",
    "STUDY_PAYLOAD_SCHEMA", "STUDY_INDEXED_SCHEMA", "BACKENDS", "DEFAULT_HOME",
]

BACKENDS = ("edge", "client-local", "server")


def default_store_dir(data_dir: Union[str, Path, None] = None) -> Path:
    """The embedded store's folder: `<data_dir>/store`, data_dir defaulting to ~/.e2r."""
    return Path(data_dir if data_dir else DEFAULT_HOME).expanduser() / "store"


def open_store(
    data_dir: Union[str, Path, None] = None,
    url: Optional[str] = None,
    api_key: Optional[str] = None,
    *,
    backend: Optional[str] = None,
    wait_s: float = 0.0,
    timeout: float = 10.0,
    shard_number: Optional[int] = None,
    replication_factor: Optional[int] = None,
) -> VectorStore:
    """Open the vector store: a Qdrant server if `url` is given, else the embedded store in `data_dir`.

    backend: None (choose by `url`), "edge" (embedded, default), "server" (needs `url`), or
      "client-local" (qdrant-client local mode in `<data_dir>/store-local`, or in memory when
      data_dir is ":memory:"), which runs the server code path without a server.
    wait_s: how long to wait for another process holding an embedded store (default: fail at once
      with a StoreError naming its pid).
    timeout: seconds for server requests. shard_number / replication_factor: used when a server
      collection is created (a cluster spreads shards over its nodes); ignored when embedded.
    Raises StoreError when the server is unreachable or refuses the API key, or the folder is locked.
    """
    url = url or None
    if backend is None:
        backend = "server" if url else "edge"
    if backend not in BACKENDS:
        raise ConfigError(f"store backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend == "server":
        if not url:
            raise ConfigError("the server backend needs a URL: pass --qdrant-url or set E2R_QDRANT_URL")
        from e2r.store.client import ClientStore

        return ClientStore(url=url, api_key=api_key, timeout=timeout, shard_number=shard_number,
                           replication_factor=replication_factor)
    if url:
        raise ConfigError(f"--qdrant-url {url} was given with the embedded backend {backend!r}; drop one of them")
    if backend == "client-local":
        from e2r.store.client import ClientStore

        if str(data_dir) == ":memory:":
            return ClientStore(path=":memory:")
        folder = default_store_dir(data_dir).with_name("store-local")
        folder.mkdir(parents=True, exist_ok=True)
        return ClientStore(path=str(folder))
    from e2r.store.edge import EdgeStore

    return EdgeStore(default_store_dir(data_dir), wait_s=wait_s)
