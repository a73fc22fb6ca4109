"""A search's store step at 100k studies: which request shape, and where the embedded store keeps
its payload indexes (issue 24: the in-process query path and `e2r search`'s start-up).

    python bench/probe_store_step.py [--points 100000] [--rounds 5] [--workdir DIR]

Builds one collection of synthetic studies (bench_search.synthetic_studies, the indexed fields of
an e2r collection, every study labelled) per placement of its payload indexes
(IndexSettings.payload_index_memory: "pinned", read into the process's memory, the engine's
default; "cached", memory-mapped and read into the page cache at open; "cold", memory-mapped and
read on first use). Then, each round in a fresh process per placement (placements interleaved, so
all see the same load): the time to open the store and answer one search's store step, and the
first and the warm p50 of three shapes of the store step for the top 10 and 50 voters, each on
random queries of its own (far from every study, as an ECG's embedding is):

  two walks      e2r 0.2: the top 10 with the fields a result shows and the 50 labelled voters,
                 two requests in one search_batch call
  one walk       queries.search.neighbours_and_voters: one request for 50 hits carrying every
                 field either needs
  one walk + ID  50 hits with only the vote's keys, the top 10's fields fetched by ID

and of the second with a broad filter (lvef < 40, walked with ACORN) and a narrow one (lvef < 18,
searched exactly); and the process's RSS. Prints one row per figure and placement (medians over
rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PLACEMENTS = ("pinned", "cached", "cold")
NAME = "echo_studies"
DIM = 128  # the tiny preset's embedding


def build(home: Path, placement: str, points: int) -> float:
    """A collection of `points` synthetic studies with its payload indexes at `placement`; seconds."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_search import synthetic_studies
    from e2r.store import STUDY_INDEXED_SCHEMA
    from e2r.store.edge import EdgeStore
    from e2r.store.settings import IndexSettings

    t0 = time.perf_counter()
    with EdgeStore(home, index_settings=IndexSettings(payload_index_memory=placement)) as store:
        store.create_collection(NAME, DIM, {}, STUDY_INDEXED_SCHEMA)
        for batch in synthetic_studies(points, DIM):
            store.upsert(NAME, batch)
        store.optimize(NAME)
    return time.perf_counter() - t0


def measure(home: Path, queries: int = 40) -> dict:
    """One fresh process's figures for the store at `home` (run as `--measure HOME`)."""
    t0 = time.perf_counter()
    from e2r.phenotypes import LVEF_CLASSES
    from e2r.store import Condition, Filter, SearchRequest
    from e2r.store.edge import EdgeStore
    from queries.search import _NEIGHBOUR_FIELDS, _VOTER_FIELDS, neighbours_and_voters

    rng = np.random.default_rng(0)
    labelled = Filter(must=(Condition("lvef_class", "any", list(LVEF_CLASSES)),))

    def by_id(q: np.ndarray) -> None:
        hits = store.search_batch(NAME, q, [SearchRequest(50, None, ("lvef_class", *_VOTER_FIELDS))])[0]
        store.retrieve(NAME, [h.id for h in hits[:10]])

    with EdgeStore(home) as store:
        neighbours_and_voters(store, NAME, rng.standard_normal(DIM).astype(np.float32))
        opened_ms = (time.perf_counter() - t0) * 1000
        kinds = {
            "two walks": lambda q: store.search_batch(NAME, q, [SearchRequest(10, None, _NEIGHBOUR_FIELDS),
                                                               SearchRequest(50, labelled, _VOTER_FIELDS)]),
            "one walk": lambda q: neighbours_and_voters(store, NAME, q),
            "one walk + ID": by_id,
            "one walk, broad filter": lambda q: neighbours_and_voters(store, NAME, q, filter=Filter(must=(Condition("lvef", "lt", 40.0),))),
            "one walk, narrow filter": lambda q: neighbours_and_voters(store, NAME, q, filter=Filter(must=(Condition("lvef", "lt", 18.0),))),
        }
        times: dict[str, list[float]] = {k: [] for k in kinds}
        # Each shape gets queries of its own: a query's first request touches memory-mapped pages
        # that a second request for the same query would find mapped already.
        fresh = rng.standard_normal((len(kinds), queries, DIM)).astype(np.float32)
        for j in range(queries):
            for (kind, step), own in zip(kinds.items(), fresh):
                t = time.perf_counter()
                step(own[j])
                times[kind].append((time.perf_counter() - t) * 1000)
    rss_mb = int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) / 1024
    return {"open + first step ms": opened_ms, "RSS MB": rss_mb,
            **{f"{k} first ms": v[0] for k, v in times.items()},
            **{f"{k} p50 ms": statistics.median(v[1:]) for k, v in times.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the built stores here (reused when there)")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="e2r-probe-store-step-"))
    print(f"{os.cpu_count()} CPU cores; {args.points} studies; load average {os.getloadavg()[0]:.2f} at start", flush=True)
    homes = {p: work / f"{p}-{args.points}" for p in PLACEMENTS}
    for placement, home in homes.items():
        if not home.exists():
            print(f"  built {placement}: {build(home, placement, args.points):.0f} s "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
    rows: dict[str, list[dict]] = {p: [] for p in PLACEMENTS}
    for _ in range(args.rounds):
        for placement, home in homes.items():
            proc = subprocess.run([sys.executable, __file__, "--measure", str(home)], capture_output=True,
                                  text=True, check=True)
            rows[placement].append(json.loads(proc.stdout.splitlines()[-1]))
    keys = list(rows[PLACEMENTS[0]][0])
    print(f"median of {args.rounds} fresh processes per placement; load average {os.getloadavg()[0]:.2f} at end")
    print(f"{'':32}" + "".join(f"{p:>10}" for p in PLACEMENTS))
    for key in keys:
        print(f"{key:32}" + "".join(f"{statistics.median(r[key] for r in rows[p]):>10.1f}" for p in PLACEMENTS))


if __name__ == "__main__":
    main()
