"""Search latency: in-process p50/p95 split into read+preprocess / encode / store query / kNN,
at 10k and 100k indexed studies, tiny and base presets; the wall time of one `e2r search`
process; batch throughput (ECGs/s).

The store is filled with synthetic study vectors (a Gaussian mixture of 50 clusters, normalised —
clustered like real embeddings) with phenotype payloads, because timing does not depend on what
the vectors mean; the ECG side is real: a WFDB record read, preprocessed and encoded by the model.

    python bench/bench_search.py [--sizes 10000 100000] [--presets tiny base] [--queries 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np



def fill_store(store, name: str, loaded, n: int, seed: int = 0) -> None:
    from e2r.phenotypes import derive_labels
    from e2r.store import Point, point_id_for
    from indexer.pipeline import ensure_collection

    ensure_collection(store, name, loaded)
    rng = np.random.default_rng(seed)
    dim = loaded.preset.embed_dim
    centres = rng.standard_normal((50, dim))
    batch = 2000
    for start in range(0, n, batch):
        m = min(batch, n - start)
        vec = centres[rng.integers(0, 50, m)] + 0.5 * rng.standard_normal((m, dim))
        vec = (vec / np.linalg.norm(vec, axis=1, keepdims=True)).astype(np.float32)
        lvef = rng.uniform(15, 75, m)
        wall = rng.uniform(7, 17, m)
        points = []
        for i in range(m):
            ph = {"lvef": float(lvef[i]), "ivsd": float(wall[i]), "lvpwd": float(wall[i] - 1)}
            payload = {"study_uid": f"1.2.3.{start + i}", "views": ["A4C", "PLAX"], "n_videos": 2,
                       "study_date": 20200101, **ph, **derive_labels(ph)}
            points.append(Point(point_id_for(payload["study_uid"]), vec[i], payload))
        store.upsert(name, points)
    store.optimize(name)


def pct(values, q):
    return float(np.percentile(values, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--presets", nargs="+", default=["tiny", "base"])
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--batch", type=int, default=200, help="ECGs in the batch-throughput run")
    args = ap.parse_args()

    import torch

    from e2r.bundle import load_model
    from e2r.store import open_store
    from queries.search import Searcher
    from test_search import write_ecg

    torch.set_num_threads(os.cpu_count() or 2)
    work = Path(tempfile.mkdtemp(prefix="e2r-bench-search-"))
    ecg = write_ecg(work / "ecg", "q", seed=1, fs=500)
    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}; synthetic clustered vectors")
    print(f"{'preset':6} {'N':>7} {'read+pre p50/p95':>17} {'encode p50/p95':>15} {'store p50/p95':>14} "
          f"{'kNN p50/p95':>12} {'total p50/p95 ms':>17} {'batch ECG/s':>11}")
    for preset in args.presets:
        bundle = work / f"model-{preset}"
        _write_bundle(bundle, preset)
        loaded = load_model(bundle)
        for n in args.sizes:
            home = work / f"home-{preset}-{n}"
            with open_store(home) as store:
                fill_store(store, "echo_studies", loaded, n)
                searcher = Searcher(store, "echo_studies", model=loaded)
                searcher.search(ecg)  # warm-up
                rows = {"read_preprocess": [], "encode": [], "store_query": [], "knn": [], "total": []}
                for _ in range(args.queries):
                    t0 = time.perf_counter()
                    res = searcher.search(ecg, top_k=10, k=50)
                    rows["total"].append((time.perf_counter() - t0) * 1000)
                    for key in ("read_preprocess", "encode", "store_query", "knn"):
                        rows[key].append(res.timings_ms[key])
                t0 = time.perf_counter()
                done = sum(1 for _ in searcher.search_many([ecg] * args.batch, top_k=10, k=50))
                eps = done / (time.perf_counter() - t0)
            cells = [f"{pct(rows[k], 50):.1f}/{pct(rows[k], 95):.1f}" for k in ("read_preprocess", "encode", "store_query", "knn", "total")]
            print(f"{preset:6} {n:>7} {cells[0]:>17} {cells[1]:>15} {cells[2]:>14} {cells[3]:>12} {cells[4]:>17} {eps:>11.1f}", flush=True)

        # One `e2r search` process from start to printed answer (largest size, this preset).
        home = work / f"home-{preset}-{args.sizes[-1]}"
        walls = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "e2r", "search", str(ecg), "--data-dir", str(home)],
                           check=True, capture_output=True)
            walls.append(time.perf_counter() - t0)
        print(f"  one `e2r search` process ({preset}, {args.sizes[-1]} studies): median {statistics.median(walls):.2f} s over 3 runs")
    walls = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "e2r", "--help"], check=True, capture_output=True)
        walls.append(time.perf_counter() - t0)
    print(f"`e2r --help`: median {statistics.median(walls):.2f} s")


def _write_bundle(path: Path, preset: str) -> None:
    import torch

    from e2r.bundle import save_bundle
    from e2r.models import Echo2ECG
    from e2r.presets import get_preset

    torch.manual_seed(0)
    save_bundle(Echo2ECG(get_preset(preset)).eval(), path, train_config={"note": "untrained, timing only"})


if __name__ == "__main__":
    main()
