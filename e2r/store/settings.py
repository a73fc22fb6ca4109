"""How a collection is indexed and how each search is run: the settings and the rules that pick a
search's parameters, for both backends. The embedded store (edge.py) and a Qdrant server
(client.py) each translate them into their engine's types; neither decides anything here.

Chosen with bench/bench_store.py and bench/probe_store_recall.py at 100k-1M studies
(docs/benchmarks.md, "The store at scale").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional

from e2r.errors import ConfigError

# HNSW search breadth: None = grow it with the collection (`auto_hnsw_ef`). An ECG's embedding sits
# far from every echo study (cosine ~0.65 to its nearest), so at one breadth recall@10 falls as the
# collection grows. bench/bench_store.py on trained-model embeddings (docs/benchmarks.md, "The
# store at scale"), m 32 / ef_construct 200: 230k with ef 512: 0.997; 1M: 0.915 / 0.981 / 0.995
# with ef 512 / 1024 / 2048 (warm p50 2.0 / 3.1 / 5.0 ms).
DEFAULT_HNSW_EF = None
EF_PER_POINTS = (512, 250_000)  # auto: 512 per started 250k points ...
MAX_AUTO_EF = 4096  # ... up to this (4M points; past that, shard: docs/scale.md)
# Filters passing more than this share of a collection keep its graph connected (HNSW, with ACORN
# below acorn_max_selectivity); narrower ones are searched exactly up to exact_filter_points.
EXACT_FILTER_SHARE = 0.2
# Below this much vector data (KB) a filtered search in a segment scans it (Qdrant's default).
FULL_SCAN_THRESHOLD_KB = 10_000
INT8_QUANTILE = 0.99  # int8 quantisation: the value range kept (outliers clipped)
PAYLOAD_INDEX_MEMORY = (None, "pinned", "cached", "cold")  # IndexSettings.payload_index_memory


def auto_hnsw_ef(points: int) -> int:
    """The search breadth that keeps recall@10 >= 0.98 for a collection of `points` (measured at
    100k, 230k and 1M): 512 up to 250k points, then 512 more per 250k, at most MAX_AUTO_EF."""
    per, block = EF_PER_POINTS
    return min(MAX_AUTO_EF, per * max(1, -(-int(points) // block)))


@dataclass(frozen=True)
class SearchPlan:
    """One search's parameters, which each backend translates into its engine's."""

    hnsw_ef: int  # HNSW breadth (at least top_k)
    exact: bool  # scan the points that pass the filter instead of walking the graph
    acorn_max_selectivity: Optional[float]  # ACORN for filters passing under this share; None: off
    oversampling: Optional[float]  # int8 collections: rescore oversampling x top_k; None: not quantised


@dataclass(frozen=True)
class IndexSettings:
    """How a new collection's vectors are indexed and searched (fixed at creation and recorded
    with the collection; one made before these existed reads as Qdrant's defaults, see from_record).

    Defaults chosen with bench/bench_store.py (docs/benchmarks.md, "The store at scale").
    """

    # HNSW edges per node and build breadth (Qdrant's: 16 / 100). At 1M, 32 / 200 without payload
    # links built in 401 s (16 / 100 with them: 578 s) and reach recall@10 0.994 vs 0.972 at ef 2048
    # (bench/probe_store_recall.py).
    m: int = 32
    ef_construct: int = 200
    quantization: Optional[str] = None  # None, or "int8": Qdrant scalar quantisation, kept in RAM
    oversampling: float = 2.0  # int8: candidates re-scored with the float vectors = oversampling x top_k
    vectors_on_disk: bool = False  # float vectors memory-mapped cold (read from disk to rescore)
    # Where the payload indexes live: "cached", memory-mapped files the engine reads into the page
    # cache as it opens them; "pinned" (None: the engine's default), read into the process's own
    # memory: an embedded 100k-study store took 0.49 s to open and answer its first search against
    # 0.28 s cached, unfiltered searches alike, broad-filtered ones 0.5-0.9 ms faster; "cold",
    # mapped and read on first use: the first filtered search paid ~20 ms more. (A server store
    # defaults to None: client.py.) bench/probe_store_step.py, docs/benchmarks.md ("The store step
    # and the store's opening").
    payload_index_memory: Optional[str] = "cached"
    # Extra HNSW links per payload-index value (Qdrant's payload-aware graph; None = Qdrant's: m).
    # 0 builds none: they cost more than half the build (100k: 29 s -> 13 s; 230k: 145 s -> 58 s);
    # broad filters are served by ACORN instead, narrow ones exactly (exact_filter_points).
    payload_m: Optional[int] = 0
    # ACORN filtered search: when a filter passes fewer than this share of the points, the graph
    # walk also looks at neighbours' neighbours, so it does not strand on links that fail the filter.
    acorn_max_selectivity: Optional[float] = 0.4
    # A filtered search is answered exactly when the payload indexes estimate that its filter
    # passes fewer than this many points and under EXACT_FILTER_SHARE of the collection. Without
    # payload links, a graph walk restricted to a narrow filter strands: 11 % of 230k studies,
    # recall@10 0.75 with ACORN at any breadth (0.42 without); exact, 1.000 in 22 ms. None: the
    # engine's own planner only (exact below FULL_SCAN_THRESHOLD_KB of vectors).
    exact_filter_points: Optional[int] = 200_000

    def validate(self) -> None:
        """ConfigError naming the first invalid field."""
        if self.m < 4 or self.ef_construct < 8:
            raise ConfigError(f"index settings: m={self.m} (>= 4) and ef_construct={self.ef_construct} (>= 8)")
        if self.payload_m is not None and self.payload_m < 0:
            raise ConfigError(f"index settings: payload_m={self.payload_m!r} must be None or >= 0")
        if self.exact_filter_points is not None and self.exact_filter_points < 1:
            raise ConfigError(f"index settings: exact_filter_points={self.exact_filter_points!r} must be None or >= 1")
        if self.acorn_max_selectivity is not None and not 0.0 < self.acorn_max_selectivity <= 1.0:
            raise ConfigError(f"index settings: acorn_max_selectivity={self.acorn_max_selectivity!r} "
                              "must be None (off) or in (0, 1]")
        if self.quantization not in (None, "int8"):
            raise ConfigError(f"index settings: quantization={self.quantization!r}; use None or 'int8'")
        if self.payload_index_memory not in PAYLOAD_INDEX_MEMORY:
            raise ConfigError(f"index settings: payload_index_memory={self.payload_index_memory!r}; use one of "
                              f"{', '.join(map(str, PAYLOAD_INDEX_MEMORY))}")
        if not self.oversampling >= 1.0:
            raise ConfigError(f"index settings: oversampling={self.oversampling!r} must be >= 1")

    def record(self) -> dict:
        """The settings as the JSON object a collection keeps (see from_record)."""
        return asdict(self)

    @classmethod
    def from_record(cls, recorded: Optional[Mapping[str, Any]]) -> "IndexSettings":
        """The settings a collection was created with, from its `record()`. Qdrant's defaults for
        what an older collection does not record: its graph was built with payload links and is
        searched without ACORN or exact planning, its payload indexes were made in memory."""
        known = {k: v for k, v in (recorded or {}).items() if k in cls.__dataclass_fields__}
        return cls(**{"m": 16, "ef_construct": 100, "payload_m": None, "acorn_max_selectivity": None,
                      "exact_filter_points": None, "payload_index_memory": None, **known})

    @property
    def plans_filters(self) -> bool:
        """Whether a filtered search needs the filter's estimated count (see plan)."""
        return self.exact_filter_points is not None

    def filter_is_exact(self, passing: int, points: int) -> bool:
        """Whether a filter estimated to pass `passing` of `points` is searched exactly."""
        return (self.exact_filter_points is not None and passing < self.exact_filter_points
                and passing < EXACT_FILTER_SHARE * points)

    def plan(self, points: int, top_k: int, passing: Optional[int] = None,
             hnsw_ef: Optional[int] = DEFAULT_HNSW_EF) -> SearchPlan:
        """The parameters of a search for `top_k` in a collection of `points`, whose filter the
        payload indexes estimate to pass `passing` points (None: no filter, or not estimated).
        hnsw_ef: a fixed breadth; None grows it with the collection (auto_hnsw_ef)."""
        ef = auto_hnsw_ef(points) if hnsw_ef is None else int(hnsw_ef)
        exact = passing is not None and self.filter_is_exact(int(passing), int(points))
        return SearchPlan(hnsw_ef=max(ef, int(top_k)), exact=exact, acorn_max_selectivity=self.acorn_max_selectivity,
                          oversampling=self.oversampling if self.quantization else None)
