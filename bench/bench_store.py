"""Benchmark the two embedded store backends side by side at archive scale.

For each N (10k, 100k; 1M with --full) and each backend (Qdrant Edge = the embedded default,
qdrant-client local mode) this measures: upsert time (batches of 1,000 study points with a
realistic payload; local mode commits SQLite once per point, so after timing its first batch
synchronously the benchmark turns fsync off and reports the synced cost separately), index build time (Edge builds HNSW when the store is closed), reopen time
(open + first query), query latency p50/p95 over 200 queries (and p50 with a payload filter),
recall@10 against exact numpy cosine search, memory (RSS increase of a fresh process that opens
the store and queries it) and disk size.

Vectors (default): 512-d, a Gaussian mixture of 50 clusters, L2-normalised; queries are fresh
draws of the same mixture. With --real DATA_DIR COLLECTION --ecgs GLOB: a trained model's study
embeddings from an indexed (phantom) archive, replicated with Gaussian noise to N (noise norm =
the median nearest-neighbour distance of the real set, so a replica sits as far from its source
as the source's nearest real neighbour), each replica carrying its source's phenotype payload;
the queries are the same model's embeddings of real ECG records (the query a search makes).
Each phase runs in its own process so reopen time and memory are those of a cold process.

--configs names Edge index settings (CONFIGS below: HNSW m / ef_construct, int8 scalar
quantisation with rescoring, float vectors on disk); --brute adds torch brute force (one matmul
over the same float32 vectors per query, EchoPrime's kNN) in its own process, side by side.

    python bench/bench_store.py                      # 10k and 100k, both backends
    python bench/bench_store.py --full               # + 1M for the Edge backend
    python bench/bench_store.py --sizes 10000 --out result.json
    python bench/bench_store.py --real /tmp/bfull/home bench-attention-seed0 \
        --ecgs '/tmp/bfull/cohort-1000p-s0-128px/ecg/p1000/*/*.hea' --sizes 100000 \
        --backends edge --configs default int8 --brute
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
N_STEP = 100  # queries timed through a search's whole store step (top-k + labelled voters)
TOP_K = 10
COLLECTION = "bench"
BATCH = 1000
# Edge index settings compared by --configs (e2r.store.settings.IndexSettings fields).
CONFIGS = {
    "default": {},
    "int8": {"quantization": "int8"},
    "int8-disk": {"quantization": "int8", "vectors_on_disk": True},
    "qdrant": {"m": 16, "ef_construct": 100, "payload_m": None, "acorn_max_selectivity": None,
               "exact_filter_points": None},  # e2r 0.2's
    "m16": {"m": 16, "ef_construct": 100},
    "m8": {"m": 8, "ef_construct": 64},
}


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


REAL_FIELDS = ("views", "n_videos", "lvef", "lvh", "lvef_class", "ivsd", "lvpwd", "study_date")


def real_payload(i: int, source: dict) -> dict:
    """Replica i's payload: its source study's phenotypes and views under a new study UID."""
    return {"study_uid": f"1.2.840.{i}", **{k: source[k] for k in REAL_FIELDS if source.get(k) is not None}}


def payload(i: int) -> dict:
    """A study payload shaped like the indexer's (phenotypes, date, views)."""
    rng = np.random.default_rng(i)
    return {"study_uid": f"1.2.840.{i}", "study_date": 20150101 + (i % 9) * 10000 + i % 28,
            "views": ["A4C", "PLAX"] if i % 3 else ["A4C"], "n_videos": 2 if i % 3 else 1,
            "lvef": round(float(rng.uniform(15, 75)), 1), "lvh": int(i % 4 == 0)}


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Exact cosine top-k row indices (vectors are unit-norm, so dot product), chunked over base;
    with `mask`, among the rows where it is True (-1 where fewer than k pass)."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.full((len(queries), k), -1, np.int64)
    for start in range(0, len(base), 100_000):
        s = queries @ base[start:start + 100_000].T
        if mask is not None:
            s[:, ~mask[start:start + 100_000]] = -np.inf
        i = np.argpartition(-s, k, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, i, 1)], 1)
        cand_i = np.concatenate([best_i, i + start], 1)
        order = np.argsort(-cand_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, order, 1), np.take_along_axis(cand_i, order, 1)
    return np.where(np.isfinite(best_s), best_i, -1)


def timed_searches(store, collection: str, queries: np.ndarray, truth: np.ndarray, id_of: dict,
                   flt=None, check=None) -> tuple[list[float], list[float]]:
    """Search each query for the top-k: (seconds per search, recall@k against its exact row of
    `truth`, whose -1 entries mean fewer than k points pass the filter). `check(hits)` may raise."""
    lat, recalls = [], []
    for q, want in zip(queries, truth):
        t0 = time.perf_counter()
        hits = store.search(collection, q, TOP_K, flt)
        lat.append(time.perf_counter() - t0)
        if check is not None:
            check(hits)
        wanted = {int(i) for i in want if i >= 0}
        recalls.append(len({id_of[h.id] for h in hits} & wanted) / max(1, len(wanted)))
    return lat, recalls


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

def open_bench_store(backend: str, data_dir: Path, config: str):
    from e2r.store import open_store, default_store_dir
    from e2r.store.edge import EdgeStore
    from e2r.store.settings import IndexSettings

    if backend == "edge":
        return EdgeStore(default_store_dir(data_dir), index_settings=IndexSettings(**CONFIGS[config]))
    return open_store(data_dir, backend=backend)


def child_build(backend: str, data_dir: Path, vectors_path: Path, config: str = "default",
                payloads_path: str = "") -> dict:
    from e2r.store import Point, point_id_for

    base = np.load(vectors_path, mmap_mode="r")
    sources = json.loads(Path(payloads_path).read_text()) if payloads_path else None
    make_payload = (lambda i: real_payload(i, sources[i % len(sources)])) if sources else payload
    store = open_bench_store(backend, data_dir, config)
    store.create_collection(COLLECTION, base.shape[1], {"model_hash": "bench"})
    fsync_ms = float("nan")
    t0 = time.perf_counter()
    for start in range(0, len(base), BATCH):
        rows = np.asarray(base[start:start + BATCH])
        store.upsert(COLLECTION, [Point(point_id_for(str(start + j)), v, make_payload(start + j))
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


def child_query(backend: str, data_dir: Path, queries_path: Path, truth_path: Path, n: int,
                config: str = "default", efs: str = "") -> dict:
    import e2r.store.client  # noqa: F401  (imports are not part of reopening)
    import e2r.store.edge  # noqa: F401
    from e2r.store import parse_filter, point_id_for

    queries = np.load(queries_path)
    truth = np.load(truth_path)  # (Q, k) unfiltered, then (Q, k) filtered exact top-k rows
    rss0 = rss_mb()
    t0 = time.perf_counter()
    store = open_bench_store(backend, data_dir, config)
    store.search(COLLECTION, queries[0], TOP_K)
    reopen_s = time.perf_counter() - t0
    count = store.count(COLLECTION)
    id_of = {point_id_for(str(i)): i for i in range(n)}
    lat, recalls = timed_searches(store, COLLECTION, queries, truth[:len(queries)], id_of)

    def lvef_below_40(hits) -> None:
        if any(h.payload["lvef"] >= 40 for h in hits):
            raise RuntimeError("filter not applied")

    flat, frecalls = timed_searches(store, COLLECTION, queries[:N_FILTERED], truth[len(queries):], id_of,
                                    parse_filter(["lvef<40", "views=PLAX"]), check=lvef_below_40)
    # A search's store step (queries.search.neighbours_and_voters): the top-10 with the fields a
    # result shows and the 50 labelled voters.
    from queries.search import neighbours_and_voters

    step = []
    for q in queries[:N_STEP]:
        t0 = time.perf_counter()
        neighbours_and_voters(store, COLLECTION, q, TOP_K, 50)
        step.append(time.perf_counter() - t0)
    rss1 = rss_mb()
    sweep = {}
    for ef in [int(e) for e in efs.split(",") if e]:  # query-time HNSW breadth on the same build
        store.hnsw_ef = ef
        t_ef, r_ef = timed_searches(store, COLLECTION, queries, truth[:len(queries)], id_of)
        sweep[ef] = {"p50_ms": 1e3 * float(np.percentile(t_ef, 50)), "p95_ms": 1e3 * float(np.percentile(t_ef, 95)),
                     "recall10": float(np.mean(r_ef))}
    store.close()
    return {"ef_sweep": sweep, "step_p50_ms": 1e3 * float(np.percentile(step, 50)),
            "step_p95_ms": 1e3 * float(np.percentile(step, 95)), "count": count, "reopen_s": reopen_s, "p50_ms": 1e3 * float(np.percentile(lat, 50)),
            "p95_ms": 1e3 * float(np.percentile(lat, 95)), "filtered_p50_ms": 1e3 * float(np.percentile(flat, 50)),
            "filtered_p95_ms": 1e3 * float(np.percentile(flat, 95)), "recall10": float(np.mean(recalls)),
            "filtered_recall10": float(np.mean(frecalls)), "rss_mb": rss1 - rss0}


def child_brute(vectors_path: Path, queries_path: Path) -> dict:
    """EchoPrime's kNN: the float32 matrix in memory, one matmul + topk per query."""
    import torch

    torch.set_num_threads(os.cpu_count() or 2)
    rss0 = rss_mb()
    base = torch.from_numpy(np.load(vectors_path))
    queries = torch.from_numpy(np.load(queries_path))
    lat = []
    with torch.inference_mode():
        for q in queries:
            t0 = time.perf_counter()
            torch.topk(base @ q, TOP_K)
            lat.append(time.perf_counter() - t0)
    return {"brute_p50_ms": 1e3 * float(np.percentile(lat, 50)), "brute_p95_ms": 1e3 * float(np.percentile(lat, 95)),
            "brute_rss_mb": rss_mb() - rss0}


def run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_one(backend: str, n: int, work: Path, vectors_path: Path, queries_path: Path, truth_path: Path,
              config: str = "default", payloads_path: str = "", efs: str = "") -> dict:
    data_dir = work / f"{backend}-{config}-{n}"
    shutil.rmtree(data_dir, ignore_errors=True)
    row = {"backend": backend if backend != "edge" else f"edge:{config}", "n": n}
    row.update(run_child("build", backend, str(data_dir), str(vectors_path), config, payloads_path))
    folder = data_dir / ("store" if backend == "edge" else "store-local")
    row["disk_mb"] = disk_mb(folder)
    row.update(run_child("query", backend, str(data_dir), str(queries_path), str(truth_path), str(n), config, efs))
    if row["count"] != n:
        raise RuntimeError(f"{backend} at {n}: {row['count']} points stored, expected {n}")
    shutil.rmtree(data_dir, ignore_errors=True)
    return row


COLUMNS = [("backend", "backend", "{}"), ("n", "N", "{:,}"), ("upsert_s", "upsert s", "{:.1f}"),
           ("index_s", "index s", "{:.1f}"), ("reopen_s", "reopen s", "{:.2f}"), ("p50_ms", "p50 ms", "{:.2f}"),
           ("p95_ms", "p95 ms", "{:.2f}"), ("filtered_p50_ms", "filt p50", "{:.2f}"),
           ("filtered_p95_ms", "filt p95", "{:.2f}"), ("recall10", "recall@10", "{:.3f}"),
           ("filtered_recall10", "filt rec", "{:.3f}"), ("step_p50_ms", "step p50", "{:.2f}"), ("rss_mb", "RSS MB", "{:.0f}"), ("disk_mb", "disk MB", "{:.0f}"),
           ("brute_p50_ms", "brute p50", "{:.2f}"), ("brute_ratio", "brute/p50", "{:.0f}x"),
           ("load", "load", "{:.1f}")]


WIDTH = 11


def print_header() -> None:
    print("".join(h.rjust(WIDTH) for _, h, _ in COLUMNS), flush=True)


def print_row(row: dict) -> None:
    print("".join((fmt.format(row[k]) if k in row else "-").rjust(WIDTH) for k, _, fmt in COLUMNS), flush=True)


def load_real(data_dir: Path, collection: str, ecg_glob: str) -> tuple[np.ndarray, list[dict], np.ndarray, float]:
    """(study embeddings (M, D), their payloads, ECG query embeddings (Q, D), noise norm)."""
    import glob

    from e2r.store import open_store
    from queries.search import Searcher

    with open_store(data_dir) as store:
        recs = list(store.iterate(collection, with_vectors=True))
        ecgs = sorted(glob.glob(ecg_glob))[:N_QUERIES]
        if len(ecgs) < N_QUERIES:
            raise SystemExit(f"--ecgs {ecg_glob}: {len(ecgs)} records, need {N_QUERIES}")
        queries, _, _ = Searcher(store, collection).encode(ecgs)
    real = np.stack([r.vector for r in recs]).astype(np.float32)
    sim = real @ real.T
    np.fill_diagonal(sim, -2.0)
    noise = float(np.median(np.sqrt(np.maximum(0.0, 2.0 - 2.0 * sim.max(1)))))
    return real, [r.payload for r in recs], np.asarray(queries, np.float32), noise


def replicate(real: np.ndarray, n: int, noise: float, out: np.ndarray, seed: int = 2) -> None:
    """out[i] = normalise(real[i % M] + Gaussian noise of norm ~`noise`), chunked."""
    rng = np.random.default_rng(seed)
    dim = real.shape[1]
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        x = real[np.arange(start, start + m) % len(real)] + rng.standard_normal((m, dim), dtype=np.float32) * (noise / np.sqrt(dim))
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)


def filter_mask(n: int, sources: list[dict] | None) -> np.ndarray:
    """Rows passing the benchmark's filter lvef<40 & views=PLAX."""
    def ok(p: dict) -> bool:
        return p.get("lvef") is not None and p["lvef"] < 40 and "PLAX" in (p.get("views") or [])
    if sources is not None:
        src = np.array([ok(p) for p in sources])
        return src[np.arange(n) % len(sources)]
    return np.array([ok(payload(i)) for i in range(n)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--full", action="store_true", help="add N=1,000,000 (Edge only; local mode is brute force)")
    ap.add_argument("--backends", nargs="+", default=["edge", "client-local"])
    ap.add_argument("--configs", nargs="+", default=["default"], choices=sorted(CONFIGS),
                    help="Edge index settings to compare (CONFIGS)")
    ap.add_argument("--brute", action="store_true", help="also time torch brute force over the same vectors")
    ap.add_argument("--efs", type=int, nargs="+", default=[], help="Edge: also query the same build at these hnsw_ef")
    ap.add_argument("--real", nargs=2, metavar=("DATA_DIR", "COLLECTION"), default=None,
                    help="replicate this indexed collection's study embeddings instead of the mixture")
    ap.add_argument("--ecgs", default=None, help="with --real: glob of ECG records whose embeddings are the queries")
    ap.add_argument("--local-max", type=int, default=100_000, help="largest N run in qdrant-client local mode")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        phase, rest = args.child[0], args.child[1:]
        if phase == "build":
            res = child_build(rest[0], Path(rest[1]), Path(rest[2]), *rest[3:])
        elif phase == "brute":
            res = child_brute(Path(rest[0]), Path(rest[1]))
        else:
            res = child_query(rest[0], Path(rest[1]), Path(rest[2]), Path(rest[3]), int(rest[4]), *rest[5:])
        print(json.dumps(res))
        return

    sizes = sorted(set(args.sizes + ([1_000_000] if args.full else [])))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="e2r-bench-store-"))
    work.mkdir(parents=True, exist_ok=True)
    sources, payloads_path = None, ""
    if args.real:
        if not args.ecgs:
            raise SystemExit("--real needs --ecgs GLOB (the ECG records whose embeddings are the queries)")
        real, sources, queries, noise = load_real(Path(args.real[0]), args.real[1], args.ecgs)
        dim = real.shape[1]
        payloads_path = str(work / "payloads.json")
        Path(payloads_path).write_text(json.dumps(sources))
        print(f"# {dim}-d trained-model embeddings: the {len(real):,} studies of collection {args.real[1]} "
              f"replicated with Gaussian noise (norm {noise:.3f} = their median nearest-neighbour distance) to N; "
              f"queries: the model's embeddings of {len(queries)} real ECG records (+{N_FILTERED} with filter "
              f"lvef<40 & views=PLAX, each replica carrying its source's payload), top-{TOP_K}")
    else:
        dim = DIM
        print(f"# {DIM}-d vectors: Gaussian mixture of {N_CLUSTERS} clusters, L2-normalised (clustered like "
              f"real embeddings); {N_QUERIES} queries (+{N_FILTERED} with filter lvef<40 & views=PLAX), top-{TOP_K}")
        rng = np.random.default_rng(0)
        centres = rng.standard_normal((N_CLUSTERS, DIM)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        queries = mixture(N_QUERIES, 1, centres)
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at start (shared machine: timings include contention); workdir {work}",
          flush=True)
    queries_path = work / "queries.npy"
    np.save(queries_path, queries)
    rows = []
    print_header()
    for n in sizes:
        vectors_path = work / f"vectors-{n}.npy"
        base = np.lib.format.open_memmap(vectors_path, mode="w+", dtype=np.float32, shape=(n, dim))
        if args.real:
            replicate(real, n, noise, base)
        else:
            mixture(n, 2, centres, out=base)
        base.flush()
        truth_path = work / f"truth-{n}.npy"
        dense = np.asarray(base)
        truth = exact_topk(dense, queries, TOP_K)
        truth_f = exact_topk(dense, queries[:N_FILTERED], TOP_K, filter_mask(n, sources))
        np.save(truth_path, np.concatenate([truth, truth_f]))
        del base, dense
        brute = run_child("brute", str(vectors_path), str(queries_path)) if args.brute else {}
        for backend in args.backends:
            if backend == "client-local" and n > args.local_max:
                print(f"# client-local skipped at N={n:,} (brute force in Python; over --local-max)", flush=True)
                continue
            for config in (args.configs if backend == "edge" else ["default"]):
                row = bench_one(backend, n, work, vectors_path, queries_path, truth_path, config, payloads_path,
                                ",".join(str(e) for e in args.efs) if backend == "edge" else "")
                row.update(brute)
                if brute:
                    row["brute_ratio"] = brute["brute_p50_ms"] / row["p50_ms"]
                row["load"] = os.getloadavg()[0]
                rows.append(row)
                print_row(row)
                for ef, res in row.get("ef_sweep", {}).items():
                    print(f"#   {row['backend']} N={n:,} hnsw_ef={ef}: p50 {res['p50_ms']:.2f} ms, "
                          f"p95 {res['p95_ms']:.2f} ms, recall@10 {res['recall10']:.3f}", flush=True)
                if args.out:  # after every row, so a long run killed midway keeps what it measured
                    args.out.write_text(json.dumps({"dim": dim, "real": bool(args.real), "rows": rows}, indent=1))
        vectors_path.unlink()
    print(f"# load average at end {os.getloadavg()[0]:.1f}")
    for row in rows:
        if row["backend"] == "client-local":
            ms = row["local_ms_per_point_synced"]
            print(f"# client-local N={row['n']:,}: upsert s is with SQLite fsync off after the first {BATCH}; "
                  f"synced it costs {ms:.1f} ms/point (one commit per point) = {ms * row['n'] / 6e4:.0f} min for N")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
