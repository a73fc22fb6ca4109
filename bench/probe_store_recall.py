"""Why HNSW recall@10 falls at 1M, and which Edge settings buy it back: one build, in one process.

bench_store.py measures the chosen settings end to end (cold processes, RSS, disk, brute force);
this probe is the diagnosis behind them (docs/benchmarks.md, "The store at scale"). It replicates
a trained model's study embeddings to N exactly as bench_store does (optionally from only the first
--sources studies, so that each source has as many replicas as at 1M while N stays small), builds
one Edge collection with the given HNSW settings, and prints build time, latency and recall@10 of
the model's ECG queries at each --efs breadth, plus the filtered recall (lvef<40 & views=PLAX)
with and without ACORN. --ties prints how close the exact neighbours are (the median relative gap
between the 10th and 11th, and the spread from the 1st to the 100th) for the real set and the
replicas at each --ties-sizes.

    python bench/probe_store_recall.py --real /tmp/bfull/home bench-attention-seed0 \\
        --ecgs '/tmp/bfull/cohort-1000p-s0-128px/ecg/p1000/*/*.hea' --n 1000000 \\
        --m 32 --ef-construct 200 --payload-m 0 --efs 512 1024 2048
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_store as bs  # noqa: E402  (replication, exact search and the real-set loader)

N_FILTERED = 50


def tie_stats(base: np.ndarray, queries: np.ndarray, sources: int) -> str:
    """Median distances of the exact 1st/10th/100th neighbours and how far apart they are."""
    s = queries @ base.T
    idx = np.argpartition(-s, 100, axis=1)[:, :100]
    top = np.take_along_axis(s, idx, 1)
    order = np.argsort(-top, 1)
    top, idx = np.take_along_axis(top, order, 1), np.take_along_axis(idx, order, 1)
    d = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * top))
    gap = np.median((d[:, 10] - d[:, 9]) / d[:, 9])
    spread = np.median((d[:, 99] - d[:, 0]) / d[:, 0])
    distinct = np.mean([len(set(row[:10] % sources)) for row in idx])
    return (f"d1 {np.median(d[:, 0]):.4f}  d10 {np.median(d[:, 9]):.4f}  d100 {np.median(d[:, 99]):.4f}  "
            f"gap 10->11 {gap:.1e}  spread 1->100 {spread:.3f}  source studies in the top 10: {distinct:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", nargs=2, metavar=("DATA_DIR", "COLLECTION"), required=True)
    ap.add_argument("--ecgs", required=True, help="glob of the ECG records whose embeddings are the queries")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--sources", type=int, default=None, help="replicate only the first SOURCES studies")
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--ef-construct", type=int, default=200)
    ap.add_argument("--payload-m", type=int, default=0, help="-1: Qdrant's default (payload links with m)")
    ap.add_argument("--exact-filter-points", type=int, default=None,
                    help="IndexSettings.exact_filter_points: narrow filters passing fewer points are searched "
                         "exactly (default: off, the engine's own planner only, as in the diagnosis)")
    ap.add_argument("--efs", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument("--ties", action="store_true", help="only print the exact-neighbour statistics")
    ap.add_argument("--ties-sizes", type=int, nargs="+", default=[100_000, 230_000, 1_000_000])
    args = ap.parse_args()

    from e2r.store import Point, parse_filter, point_id_for
    from e2r.store.edge import EdgeStore
    from e2r.store.settings import IndexSettings

    real, payloads, queries, noise = bs.load_real(Path(args.real[0]), args.real[1], args.ecgs)
    real, payloads = real[:args.sources], payloads[:args.sources]
    dim = real.shape[1]
    if args.ties:
        print(f"real {len(real):,}: {tie_stats(real, queries, len(real))}")
        for n in args.ties_sizes:
            base = np.empty((n, dim), np.float32)
            bs.replicate(real, n, noise, base)
            print(f"replicas {n:,}: {tie_stats(base, queries, len(real))}", flush=True)
        return
    base = np.empty((args.n, dim), np.float32)
    bs.replicate(real, args.n, noise, base)
    truth = bs.exact_topk(base, queries, bs.TOP_K)
    passes = bs.filter_mask(args.n, payloads)
    truth_f = bs.exact_topk(base, queries[:N_FILTERED], bs.TOP_K, passes)
    settings = IndexSettings(m=args.m, ef_construct=args.ef_construct,
                             payload_m=None if args.payload_m < 0 else args.payload_m,
                             exact_filter_points=args.exact_filter_points)
    work = Path(tempfile.mkdtemp(prefix="e2r-probe-store-"))
    row = {"n": args.n, "sources": len(real), "m": args.m, "ef_construct": args.ef_construct,
           "payload_m": settings.payload_m, "exact_filter_points": settings.exact_filter_points}
    try:
        store = EdgeStore(work / "store", index_settings=settings)
        store.create_collection("probe", dim, {"model_hash": "probe"})
        t0 = time.perf_counter()
        for start in range(0, args.n, bs.BATCH):
            rows = base[start:start + bs.BATCH]
            store.upsert("probe", [Point(point_id_for(str(start + j)), v, bs.real_payload(start + j, payloads[(start + j) % len(payloads)]))
                                   for j, v in enumerate(rows)])
        row["upsert_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        store.optimize("probe")
        row["build_s"] = round(time.perf_counter() - t0, 1)
        row["segments"] = store._shard("probe").info().segments_count
        id_of = {point_id_for(str(i)): i for i in range(args.n)}

        def measure(qs, want, flt=None):
            lat, rec = bs.timed_searches(store, "probe", qs, want, id_of, flt)
            return round(1e3 * float(np.median(lat)), 2), round(float(np.mean(rec)), 3)

        flt = parse_filter(["lvef<40", "views=PLAX"])
        row["filter passes"] = round(float(passes.mean()), 3)
        for ef in args.efs:
            store.hnsw_ef = ef
            row[f"ef{ef} p50_ms, recall10"] = measure(queries, truth)
            for acorn in (None, 0.4):  # a per-query setting
                store._settings["probe"] = dataclasses.replace(settings, acorn_max_selectivity=acorn)
                row[f"filtered ef{ef} {'ACORN' if acorn else 'no ACORN'}"] = measure(queries[:N_FILTERED], truth_f, flt)
        store.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
