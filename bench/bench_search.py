"""Search latency: in-process p50/p95 split into read+preprocess / encode / store query / kNN,
at 10k and 100k indexed studies, tiny and base presets; the wall time of one `e2r search`
process; batch throughput (ECGs/s).

The store is filled with synthetic study vectors (a Gaussian mixture of 50 clusters, normalised —
clustered like real embeddings) with phenotype payloads, because timing does not depend on what
the vectors mean; the ECG side is real: a WFDB record read, preprocessed and encoded by the model.

    python bench/bench_search.py [--sizes 10000 100000] [--presets tiny base] [--queries 50] [--out r.json]

"store" is a search's whole store step: one search_batch call (the top-k neighbours and the k
labelled voters); `--importtime` also writes the top cumulative entries of `python -X importtime -m
e2r search` (what a cold process spends importing).
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
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    ap.add_argument("--importtime", action="store_true", help="record the top import times of `e2r search`")
    args = ap.parse_args()
    results: dict = {"rows": [], "load_start": os.getloadavg()[0]}

    import torch

    from e2r.bundle import load_model
    from e2r.store import open_store
    from queries.search import Searcher
    from e2r.phantom.pulse_ecg import write_pulse_ecg

    torch.set_num_threads(os.cpu_count() or 2)
    work = Path(tempfile.mkdtemp(prefix="e2r-bench-search-"))
    ecg = write_pulse_ecg(work / "ecg", "q", seed=1, fs=500)
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
            results["rows"].append({"preset": preset, "n": n, "batch_ecg_per_s": eps, "load": os.getloadavg()[0],
                                    **{f"{k}_p50_ms": pct(v, 50) for k, v in rows.items()},
                                    **{f"{k}_p95_ms": pct(v, 95) for k, v in rows.items()}})
            cells = [f"{pct(rows[k], 50):.1f}/{pct(rows[k], 95):.1f}" for k in ("read_preprocess", "encode", "store_query", "knn", "total")]
            print(f"{preset:6} {n:>7} {cells[0]:>17} {cells[1]:>15} {cells[2]:>14} {cells[3]:>12} {cells[4]:>17} {eps:>11.1f}", flush=True)

        # One `e2r search` process from start to printed answer (largest size, this preset).
        home = work / f"home-{preset}-{args.sizes[-1]}"
        cmd = [sys.executable, "-m", "e2r", "search", str(ecg), "--data-dir", str(home)]
        walls, helps = [], []
        for _ in range(3):  # interleaved, so both see the same load
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            walls.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "e2r", "--help"], check=True, capture_output=True)
            helps.append(time.perf_counter() - t0)
        results.setdefault("process", {})[preset] = {"search_s": statistics.median(walls), "help_s": statistics.median(helps),
                                                     "n": args.sizes[-1], "load": os.getloadavg()[0]}
        print(f"  one `e2r search` process ({preset}, {args.sizes[-1]} studies): median {statistics.median(walls):.2f} s "
              f"over 3 runs; `e2r --help` {statistics.median(helps):.2f} s", flush=True)
        if args.importtime and "importtime" not in results:
            results["importtime"] = import_top(cmd)
            for name, ms in results["importtime"]:
                print(f"    importtime {ms:8.0f} ms  {name}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


def import_top(cmd: list[str], n: int = 12) -> list[tuple[str, float]]:
    """The n largest cumulative import times (ms) of a command, from `python -X importtime`."""
    proc = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, check=True)
    found = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            found.append((parts[2].rstrip(), int(parts[1]) / 1000))
    return sorted(found, key=lambda x: -x[1])[:n]


def _write_bundle(path: Path, preset: str) -> None:
    import torch

    from e2r.bundle import save_bundle
    from e2r.models import Echo2ECG
    from e2r.presets import get_preset

    torch.manual_seed(0)
    save_bundle(Echo2ECG(get_preset(preset)).eval(), path, train_config={"note": "untrained, timing only"})


if __name__ == "__main__":
    main()
