"""Benchmark the two embedded store backends side by side at archive scale.

For each N (10k, 100k; 1M with --full) and each backend (Qdrant Edge = the embedded default,
qdrant-client local mode) this measures: upsert time (batches of 1,000 study points with a
realistic payload; local mode commits SQLite once per point, so after timing its first batch
synchronously the benchmark turns fsync off and reports the synced cost separately), index build time (Edge builds HNSW when the store is closed), reopen time
(open + first query), query latency p50/p95 over 200 queries (and p50 with a payload filter),
recall@10 against exact numpy cosine search, memory (RSS increase of a fresh process that opens
the store and queries it) and disk size.

Vectors: 512-d, a Gaussian mixture of 50 clusters, L2-normalised; queries are fresh draws of the
same mixture; like real study embeddings, neighbours are clustered rather than uniform noise.
Each phase runs in its own process so reopen time and memory are those of a cold process.

    python bench/bench_store.py                      # 10k and 100k, both backends
    python bench/bench_store.py --full               # + 1M for the Edge backend
    python bench/bench_store.py --sizes 10000 --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 512
N_CLUSTERS = 50
N_QUERIES = 200
N_FILTERED = 20
TOP_K = 10
COLLECTION = "bench"
BATCH = 1000


def mixture(n: int, seed: int, centres: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """n unit vectors from the Gaussian mixture around `centres` (chunked, float32)."""
    out = np.empty((n, DIM), np.float32) if out is None else out
    rng = np.random.default_rng(seed)
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        label = rng.integers(0, len(centres), m)
        x = centres[label] + rng.standard_normal((m, DIM), dtype=np.float32) * (0.9 / np.sqrt(DIM))
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def payload(i: int) -> dict:
    """A study payload shaped like the indexer's (phenotypes, date, views)."""
    rng = np.random.default_rng(i)
    return {"study_uid": f"1.2.840.{i}", "study_date": 20150101 + (i % 9) * 10000 + i % 28,
            "views": ["A4C", "PLAX"] if i % 3 else ["A4C"], "n_videos": 2 if i % 3 else 1,
            "lvef": round(float(rng.uniform(15, 75)), 1), "lvh": int(i % 4 == 0)}


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact cosine top-k row indices (vectors are unit-norm, so dot product), chunked over base."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.zeros((len(queries), k), np.int64)
    for start in range(0, len(base), 100_000):
        s = queries @ base[start:start + 100_000].T
        i = np.argpartition(-s, k, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, i, 1)], 1)
        cand_i = np.concatenate([best_i, i + start], 1)
        order = np.argsort(-cand_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    return best_i


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def disk_mb(path: Path) -> float:
    """Allocated size (st_blocks), so preallocated sparse WAL files count as what they occupy."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file()) / 2**20


# -- phases, each run in a child process -----------------------------------------------------------

def child_build(backend: str, data_dir: Path, vectors_path: Path) -> dict:
    from e2r.store import Point, open_store, point_id_for

    base = np.load(vectors_path, mmap_mode="r")
    store = open_store(data_dir, backend=backend)
    store.create_collection(COLLECTION, DIM, {"model_hash": "bench"})
    fsync_ms = float("nan")
    t0 = time.perf_counter()
    for start in range(0, len(base), BATCH):
        rows = np.asarray(base[start:start + BATCH])
        store.upsert(COLLECTION, [Point(point_id_for(str(start + j)), v, payload(start + j))
                                  for j, v in enumerate(rows)])
        if backend == "client-local" and start == 0:
            # Local mode commits (and fsyncs) SQLite once per point. Time that on the first batch,
            # then turn fsync off so 100k points build in minutes, not an hour; the full
            # synchronous cost is reported as fsync_ms x N.
            fsync_ms = 1e3 * (time.perf_counter() - t0) / len(rows)
            store._client._client.collections[COLLECTION].storage.storage.execute("PRAGMA synchronous=OFF")
    upsert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    store.close()  # Edge: builds the HNSW index; local mode: persists
    return {"upsert_s": upsert_s, "index_s": time.perf_counter() - t0, "local_ms_per_point_synced": fsync_ms}


def child_query(backend: str, data_dir: Path, queries_path: Path, truth_path: Path, n: int) -> dict:
    import e2r.store.client  # noqa: F401  (imports are not part of reopening)
    import e2r.store.edge  # noqa: F401
    from e2r.store import open_store, parse_filter, point_id_for

    queries = np.load(queries_path)
    truth = np.load(truth_path)
    rss0 = rss_mb()
    t0 = time.perf_counter()
    store = open_store(data_dir, backend=backend)
    store.search(COLLECTION, queries[0], TOP_K)
    reopen_s = time.perf_counter() - t0
    count = store.count(COLLECTION)
    id_of = {point_id_for(str(i)): i for i in range(n)}
    lat, recalls = [], []
    for q, want in zip(queries, truth):
        t0 = time.perf_counter()
        hits = store.search(COLLECTION, q, TOP_K)
        lat.append(time.perf_counter() - t0)
        recalls.append(len({id_of[h.id] for h in hits} & set(want.tolist())) / TOP_K)
    flt = parse_filter(["lvef<40", "views=PLAX"])
    flat = []
    for q in queries[:N_FILTERED]:
        t0 = time.perf_counter()
        hits = store.search(COLLECTION, q, TOP_K, flt)
        flat.append(time.perf_counter() - t0)
        if any(h.payload["lvef"] >= 40 for h in hits):
            raise RuntimeError("filter not applied")
    rss1 = rss_mb()
    store.close()
    return {"count": count, "reopen_s": reopen_s, "p50_ms": 1e3 * float(np.percentile(lat, 50)),
            "p95_ms": 1e3 * float(np.percentile(lat, 95)), "filtered_p50_ms": 1e3 * float(np.percentile(flat, 50)),
            "recall10": float(np.mean(recalls)), "rss_mb": rss1 - rss0}


def run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_one(backend: str, n: int, work: Path, vectors_path: Path, queries_path: Path, truth_path: Path) -> dict:
    data_dir = work / f"{backend}-{n}"
    shutil.rmtree(data_dir, ignore_errors=True)
    row = {"backend": backend, "n": n}
    row.update(run_child("build", backend, str(data_dir), str(vectors_path)))
    folder = data_dir / ("store" if backend == "edge" else "store-local")
    row["disk_mb"] = disk_mb(folder)
    row.update(run_child("query", backend, str(data_dir), str(queries_path), str(truth_path), str(n)))
    if row["count"] != n:
        raise RuntimeError(f"{backend} at {n}: {row['count']} points stored, expected {n}")
    shutil.rmtree(data_dir, ignore_errors=True)
    return row


COLUMNS = [("backend", "backend", "{}"), ("n", "N", "{:,}"), ("upsert_s", "upsert s", "{:.1f}"),
           ("index_s", "index s", "{:.1f}"), ("reopen_s", "reopen s", "{:.2f}"), ("p50_ms", "p50 ms", "{:.1f}"),
           ("p95_ms", "p95 ms", "{:.1f}"), ("filtered_p50_ms", "filt p50 ms", "{:.1f}"),
           ("recall10", "recall@10", "{:.3f}"), ("rss_mb", "RSS MB", "{:.0f}"), ("disk_mb", "disk MB", "{:.0f}")]


WIDTH = 12


def print_header() -> None:
    print("".join(h.rjust(WIDTH) for _, h, _ in COLUMNS), flush=True)


def print_row(row: dict) -> None:
    print("".join(fmt.format(row[k]).rjust(WIDTH) for k, _, fmt in COLUMNS), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--full", action="store_true", help="add N=1,000,000 (Edge only; local mode is brute force)")
    ap.add_argument("--backends", nargs="+", default=["edge", "client-local"])
    ap.add_argument("--local-max", type=int, default=100_000, help="largest N run in qdrant-client local mode")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        phase, rest = args.child[0], args.child[1:]
        if phase == "build":
            res = child_build(rest[0], Path(rest[1]), Path(rest[2]))
        else:
            res = child_query(rest[0], Path(rest[1]), Path(rest[2]), Path(rest[3]), int(rest[4]))
        print(json.dumps(res))
        return

    sizes = sorted(set(args.sizes + ([1_000_000] if args.full else [])))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="e2r-bench-store-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# {DIM}-d vectors: Gaussian mixture of {N_CLUSTERS} clusters, L2-normalised (clustered like "
          f"real embeddings); {N_QUERIES} queries (+{N_FILTERED} with filter lvef<40 & views=PLAX), top-{TOP_K}")
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at start (shared machine: timings include contention); workdir {work}",
          flush=True)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((N_CLUSTERS, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    queries = mixture(N_QUERIES, 1, centres)
    queries_path = work / "queries.npy"
    np.save(queries_path, queries)
    rows = []
    print_header()
    for n in sizes:
        vectors_path = work / f"vectors-{n}.npy"
        base = np.lib.format.open_memmap(vectors_path, mode="w+", dtype=np.float32, shape=(n, DIM))
        mixture(n, 2, centres, out=base)
        base.flush()
        truth_path = work / f"truth-{n}.npy"
        np.save(truth_path, exact_topk(np.asarray(base), queries, TOP_K))
        del base
        for backend in args.backends:
            if backend == "client-local" and n > args.local_max:
                print(f"# client-local skipped at N={n:,} (brute force in Python; over --local-max)", flush=True)
                continue
            row = bench_one(backend, n, work, vectors_path, queries_path, truth_path)
            rows.append(row)
            print_row(row)
        vectors_path.unlink()
    print(f"# load average at end {os.getloadavg()[0]:.1f}")
    for row in rows:
        if row["backend"] == "client-local":
            ms = row["local_ms_per_point_synced"]
            print(f"# client-local N={row['n']:,}: upsert s is with SQLite fsync off after the first {BATCH}; "
                  f"synced it costs {ms:.1f} ms/point (one commit per point) = {ms * row['n'] / 6e4:.0f} min for N")
    if args.out:
        args.out.write_text(json.dumps({"dim": DIM, "clusters": N_CLUSTERS, "rows": rows}, indent=1))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
