"""Search latency: in-process p50/p95 split into read+preprocess / encode / store query / kNN,
at 10k and 100k indexed studies, tiny and base presets; the wall time of one `e2r search`
process; batch throughput (ECGs/s). Both ECG encoder backends in the same run, side by side:
ONNX Runtime (the bundle's graph, e2r.ecg_graph; the process never imports torch) and torch.

The store is filled with synthetic study vectors (a Gaussian mixture of 50 clusters, normalised —
clustered like real embeddings) with phenotype payloads, because timing does not depend on what
the vectors mean; the ECG side is real: a WFDB record read, preprocessed and encoded by the model.

    python bench/bench_search.py [--sizes 10000 100000] [--presets tiny base] [--queries 50] [--out r.json]

"store" is a search's whole store step: one search_batch call (the top-k neighbours and the k
labelled voters); `--importtime` also writes the top cumulative entries of `python -X importtime -m
e2r search` (what a cold process spends importing), for each backend.

The two backends share one store and take turns query by query, so both see the same load. For
the process timing the collection's model path is switched between the bundle and a copy of the
same model without its graph (the same hash), which `e2r search` then encodes with torch.
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

BACKENDS = ("onnxruntime", "torch")
STEPS = ("read_preprocess", "encode", "store_query", "knn")


def synthetic_studies(n: int, dim: int, seed: int = 0, batch: int = 2000):
    """Batches of `n` synthetic study points: unit vectors from a Gaussian mixture of 50 clusters,
    with phenotype payloads (every study labelled) as `e2r index` writes them."""
    from e2r.phenotypes import derive_labels
    from e2r.store import Point, point_id_for

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim))
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
        yield points


def fill_store(store, name: str, loaded, n: int, seed: int = 0) -> None:
    """A collection for `loaded` holding n synthetic studies (synthetic_studies), indexed."""
    from indexer.pipeline import ensure_collection

    ensure_collection(store, name, loaded)
    for points in synthetic_studies(n, loaded.preset.embed_dim, seed):
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
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the one-process timing")
    args = ap.parse_args()
    results: dict = {"rows": [], "load_start": os.getloadavg()[0]}

    import torch

    from e2r.bundle import load_ecg_encoder
    from e2r.store import open_store
    from queries.search import Searcher
    from e2r.phantom.pulse_ecg import write_pulse_ecg

    torch.set_num_threads(os.cpu_count() or 2)
    work = Path(tempfile.mkdtemp(prefix="e2r-bench-search-"))
    ecg = write_pulse_ecg(work / "ecg", "q", seed=1, fs=500)
    import onnxruntime

    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; "
          f"synthetic clustered vectors; load average {os.getloadavg()[0]:.2f} at start")
    print(f"{'preset':6} {'N':>7} {'backend':11} {'read+pre p50/p95':>17} {'encode p50/p95':>15} {'store p50/p95':>14} "
          f"{'kNN p50/p95':>12} {'total p50/p95 ms':>17} {'batch ECG/s':>11}")
    for preset in args.presets:
        bundle = work / f"model-{preset}"
        twin = _write_bundle(bundle, preset)
        encoders = {"onnxruntime": load_ecg_encoder(bundle, backend="onnx"),
                    "torch": load_ecg_encoder(bundle, backend="torch")}
        for n in args.sizes:
            home = work / f"home-{preset}-{n}"
            with open_store(home) as store:
                fill_store(store, "echo_studies", encoders["torch"], n)
                searchers = {b: Searcher(store, "echo_studies", model=m) for b, m in encoders.items()}
                rows = {b: {k: [] for k in (*STEPS, "total")} for b in BACKENDS}
                for searcher in searchers.values():
                    searcher.search(ecg)  # warm-up
                for _ in range(args.queries):
                    for backend, searcher in searchers.items():  # turn by turn: the same load for both
                        t0 = time.perf_counter()
                        res = searcher.search(ecg, top_k=10, k=50)
                        rows[backend]["total"].append((time.perf_counter() - t0) * 1000)
                        for key in STEPS:
                            rows[backend][key].append(res.timings_ms[key])
                eps = {}
                for backend, searcher in searchers.items():
                    t0 = time.perf_counter()
                    done = sum(1 for _ in searcher.search_many([ecg] * args.batch, top_k=10, k=50))
                    eps[backend] = done / (time.perf_counter() - t0)
            for backend in BACKENDS:
                r = rows[backend]
                results["rows"].append({"preset": preset, "n": n, "backend": backend, "batch_ecg_per_s": eps[backend],
                                        "load": os.getloadavg()[0],
                                        **{f"{k}_p50_ms": pct(v, 50) for k, v in r.items()},
                                        **{f"{k}_p95_ms": pct(v, 95) for k, v in r.items()}})
                cells = [f"{pct(r[k], 50):.1f}/{pct(r[k], 95):.1f}" for k in (*STEPS, "total")]
                print(f"{preset:6} {n:>7} {backend:11} {cells[0]:>17} {cells[1]:>15} {cells[2]:>14} {cells[3]:>12} "
                      f"{cells[4]:>17} {eps[backend]:>11.1f}", flush=True)

        # One `e2r search` process from start to printed answer (largest size, this preset), per backend.
        home = work / f"home-{preset}-{args.sizes[-1]}"
        cmd = [sys.executable, "-m", "e2r", "search", str(ecg), "--data-dir", str(home)]
        model_paths = {"onnxruntime": bundle, "torch": twin}
        walls: dict[str, list[float]] = {b: [] for b in BACKENDS}
        helps = []
        for _ in range(args.rounds):  # interleaved, so all three see the same load
            for backend in BACKENDS:
                _point_collection_at(home, model_paths[backend])
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True)
                walls[backend].append(time.perf_counter() - t0)
                on_torch = "encoding ECGs with torch" in proc.stderr  # the fallback's one line
                if proc.returncode or on_torch != (backend == "torch"):
                    raise SystemExit(f"e2r search ({backend}) went wrong: {proc.stderr[-2000:]}")
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "e2r", "--help"], check=True, capture_output=True)
            helps.append(time.perf_counter() - t0)
        help_s = statistics.median(helps)
        results.setdefault("process", {})[preset] = {
            "help_s": help_s, "n": args.sizes[-1], "load": os.getloadavg()[0], "rounds": args.rounds,
            **{f"search_{b}_s": statistics.median(w) for b, w in walls.items()}}
        print(f"  one `e2r search` process ({preset}, {args.sizes[-1]} studies), median of {args.rounds}: "
              + ", ".join(f"{b} {statistics.median(w):.2f} s (+{statistics.median(w) - help_s:.2f} s)"
                          for b, w in walls.items())
              + f"; `e2r --help` {help_s:.2f} s; load {os.getloadavg()[0]:.2f}", flush=True)
        if args.importtime and "importtime" not in results:
            results["importtime"] = {}
            for backend in BACKENDS:
                _point_collection_at(home, model_paths[backend])
                results["importtime"][backend] = import_top(cmd)
                for name, ms in results["importtime"][backend]:
                    print(f"    importtime ({backend}) {ms:8.0f} ms  {name}")
            _point_collection_at(home, bundle)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


def _point_collection_at(home: Path, bundle: Path) -> None:
    """Make the collection's recorded model path `bundle` (a bundle of the same model, same hash)."""
    from e2r.store import open_store

    with open_store(home) as store:
        store.set_metadata("echo_studies", {"model_path": str(bundle)})


def import_top(cmd: list[str], n: int = 12) -> list[tuple[str, float]]:
    """The n largest cumulative import times (ms) of a command, from `python -X importtime`."""
    proc = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], capture_output=True, text=True, check=True)
    found = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            found.append((parts[2].rstrip(), int(parts[1]) / 1000))
    return sorted(found, key=lambda x: -x[1])[:n]


def _write_bundle(path: Path, preset: str) -> Path:
    """An untrained bundle of `preset` with its ECG graph at `path`, and the same model without the
    graph beside it (its torch twin, same hash); returns the twin's path."""
    import torch

    from e2r.bundle import save_bundle
    from e2r.models import Echo2ECG
    from e2r.presets import get_preset

    torch.manual_seed(0)
    model = Echo2ECG(get_preset(preset)).eval()
    save_bundle(model, path, train_config={"note": "untrained, timing only"})
    twin = path.with_name(f"{path.name}-torch")
    save_bundle(model, twin, train_config={"note": "untrained, timing only"}, ecg_graph=False)
    return twin


if __name__ == "__main__":
    main()
