"""The one module that owns the layout of an e2r collection: vectors, payload, payload indexes and
collection metadata. Backends and the indexer import these names; nothing else spells them.

Vectors
    One unnamed dense vector per point, `dim` float32 values, cosine distance. Search scores are
    cosine similarities in [-1, 1]. Point IDs are UUID strings derived from a key
    (`point_id_for(study_uid)`), so re-indexing a study replaces it instead of adding a copy.

Payload of an echo-study point (fields whose value is unknown are left out, not stored as null)
    study_uid       keyword   DICOM StudyInstanceUID
    patient_hash    keyword   salted SHA-256 of the patient ID (never the ID or a name)
    study_date      integer   YYYYMMDD as an int (20200131), so range filters work; see study_date_int
    views           keyword[] view labels of the study's videos (a filter `views=PLAX` matches any)
    n_videos        integer   videos embedded into the study vector
    source_paths    -         the DICOM files used (not indexed)
    model_hash      keyword   the model bundle that made the vector
    lvef ... heart_rate float phenotypes (e2r.phenotypes.NUMERIC_FIELDS), rhythm keyword,
    lvef_class keyword, lvef_le45 / lvh integer 0/1 (derived labels)
    wmsi float, territory keyword (optional phenotype columns: e2r.phenotypes.OPTIONAL_COLUMNS;
    a filter `territory=LAD` matches LAD only, not LAD+RCA)

Collection metadata (a flat JSON object; `collection_metadata()` builds it)
    schema_version, e2r_version, dim, distance, created (UTC ISO 8601), model_hash, model_path,
    plus whatever the caller adds. Where it is kept depends on the backend:
    - Qdrant server/cluster and qdrant-client local mode: Qdrant's own collection metadata
      (`create_collection(metadata=...)`, Qdrant >= 1.16), so it travels with snapshots;
    - embedded (qdrant-edge): an Edge shard has no collection concept, so the metadata lives in a
      sidecar `collection.json` next to the shard folder, written atomically (tmp + rename).

Why the embedded default is Qdrant Edge (qdrant-edge-py) and not qdrant-client's local mode
    Local mode keeps every vector in Python/numpy, reloads the whole collection on open and scores
    each query by brute force, so reopen time, query time and memory grow linearly with the
    archive. Edge is Qdrant's Rust engine in-process: a write-ahead log (an upsert that has
    returned survives SIGKILL), memory-mapped segments and a real HNSW index; its price is the
    one-off HNSW build when an indexing run closes the store. Local mode stays available
    (`backend="client-local"`) because it speaks exactly the server's API, which is how the server
    code path is tested without a server. Measured side by side (bench/bench_store.py):
    docs/benchmarks.md.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any, Mapping, Optional

from e2r import __version__
from e2r.errors import ConfigError

SCHEMA_VERSION = 1
DISTANCE = "cosine"
PAYLOAD_TYPES = ("keyword", "integer", "float", "bool")

_PHENOTYPE_FLOATS = (
    "lvef", "lvedv", "lvesv", "ivsd", "lvpwd", "lv_mass", "la_volume", "rv_diameter", "heart_rate",
)

# Payload fields `parse_filter` accepts, with their types (STUDY_INDEXED_SCHEMA: those indexed).
STUDY_PAYLOAD_SCHEMA: dict[str, str] = {
    "study_uid": "keyword",
    "patient_hash": "keyword",
    "study_date": "integer",
    "views": "keyword",
    "n_videos": "integer",
    "model_hash": "keyword",
    **{name: "float" for name in _PHENOTYPE_FLOATS},
    "rhythm": "keyword",
    "lvef_class": "keyword",
    "lvef_le45": "integer",
    "lvh": "integer",
    "wmsi": "float",
    "territory": "keyword",
}

# The fields an e2r study collection gives a payload index (the default of create_collection).
# Every payload index is read when the store opens, ~0.1-0.2 s per index per 100k studies on the
# 2-core machine when read into the process's memory (bench/bench_store.py; 19 indexes made a 100k
# store take 1.7 s to open, none 0.1 s; memory-mapped, settings.py, about half), so only the
# fields searches filter on are indexed: lvef_class (the labelled voters of every search) and the
# filters the CLI documents (views, study_date, lvef). Every field of STUDY_PAYLOAD_SCHEMA stays
# filterable: Qdrant checks an unindexed one on the payload.
STUDY_INDEXED_SCHEMA: dict[str, str] = {k: STUDY_PAYLOAD_SCHEMA[k] for k in ("lvef_class", "views", "study_date", "lvef")}

# Keys every collection's metadata carries (create_collection fills the first five).
METADATA_KEYS = (
    "schema_version", "e2r_version", "dim", "distance", "created", "model_hash", "model_path",
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_collection_name(name: str) -> str:
    """Return `name` if it is a valid collection name (letters, digits, `_.-`, max 64), else raise."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            f"--collection {name!r}: invalid collection name; use 1-64 letters, digits, '_', '.' "
            "or '-', starting with a letter or digit"
        )
    return name


def check_payload_schema(schema: Mapping[str, str]) -> dict[str, str]:
    """Validate a field -> type mapping (types in PAYLOAD_TYPES) and return it as a plain dict."""
    out: dict[str, str] = {}
    for field, kind in schema.items():
        if kind not in PAYLOAD_TYPES:
            raise ConfigError(
                f"payload schema: field {field!r} has type {kind!r}; use one of {', '.join(PAYLOAD_TYPES)}"
            )
        out[str(field)] = kind
    return out


def collection_metadata(
    dim: int,
    *,
    model_hash: Optional[str] = None,
    model_path: Optional[str] = None,
    extra: Optional[Mapping[str, Any]] = None,
) -> dict[str, Any]:
    """The metadata a new collection stores: schema/e2r version, dim, distance, creation time, model."""
    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "e2r_version": __version__,
        "dim": int(dim),
        "distance": DISTANCE,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if model_hash is not None:
        meta["model_hash"] = model_hash
    if model_path is not None:
        meta["model_path"] = str(model_path)
    if extra:
        meta.update(extra)
    return meta


def with_defaults(dim: int, metadata: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """`metadata` completed with the automatic keys (caller's values win, `dim` must agree)."""
    meta = collection_metadata(dim)
    if metadata:
        if "dim" in metadata and int(metadata["dim"]) != int(dim):
            raise ConfigError(f"collection metadata says dim={metadata['dim']} but the collection has dim={dim}")
        meta.update(metadata)
    return meta


def study_date_int(value: Any) -> Optional[int]:
    """A study date as the integer YYYYMMDD stored in payloads ('20200131', '2020-01-31', 20200131).

    Returns None for an empty value; raises ConfigError for anything else that is not a date.
    """
    if value is None or value == "":
        return None
    text = str(value).strip().replace("-", "")
    if not re.fullmatch(r"\d{8}", text):
        raise ConfigError(f"study date {value!r}: expected YYYYMMDD or YYYY-MM-DD")
    try:
        _dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise ConfigError(f"study date {value!r}: not a calendar date") from None
    return int(text)
