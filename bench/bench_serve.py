"""`e2r serve` over HTTP: warm search latency (one client), throughput (4 concurrent clients),
time from `e2r serve` start to the first answered request, and preview generation first vs cached.

The index: a small real phantom cohort (`e2r synth`) indexed with an untrained tiny bundle (timing
does not depend on what the model learned), then its real study vectors replicated with Gaussian
perturbation (renormalised) to --points points, each copy keeping its original's payload and
source files (so previews work) under a new study UID. The ECG side is real: a phantom WFDB record
uploaded as multipart form data each request, read, preprocessed and encoded by the server.

    python bench/bench_serve.py [--points 10000] [--patients 24] [--requests 200] [--clients 4]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
E2R = [sys.executable, "-m", "e2r"]


def run(cmd: list[str]) -> None:
    """Run an e2r command quietly; its stderr's tail when it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[2:])} failed: {proc.stderr[-2000:]}")


def build_index(work: Path, patients: int, points: int) -> tuple[Path, Path, int]:
    """(home, archive, number of real studies): synth + index + replicate to `points`."""
    from e2r.bundle import save_untrained_bundle
    from e2r.store import Point, open_store, point_id_for

    cohort, home = work / "cohort", work / "home"
    run([*E2R, "synth", str(cohort), "--patients", str(patients), "--seed", "0"])
    save_untrained_bundle("tiny", 0, work / "model")
    run([*E2R, "index", str(cohort / "echo"), "--model", str(work / "model"), "--data-dir", str(home), "--workers", "1"])
    rng = np.random.default_rng(0)
    with open_store(home) as store:
        real = list(store.iterate("echo_studies", with_vectors=True))
        n_real = len(real)
        vecs = np.stack([r.vector for r in real])
        for start in range(n_real, points, 2000):
            m = min(2000, points - start)
            src = rng.integers(0, n_real, m)
            v = vecs[src] + 0.3 * rng.standard_normal((m, vecs.shape[1])) * np.abs(vecs).mean()
            v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
            batch = []
            for i in range(m):
                uid = f"2.25.{start + i}"
                batch.append(Point(point_id_for(uid), v[i], {**real[src[i]].payload, "study_uid": uid}))
            store.upsert("echo_studies", batch)
        store.optimize("echo_studies")
        total = store.count("echo_studies")
    return home, cohort, n_real if total else 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--patients", type=int, default=24)
    ap.add_argument("--requests", type=int, default=200, help="requests per client")
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    import httpx

    print(f"machine: {os.cpu_count()} CPU cores; load average at start {os.getloadavg()[0]:.2f} / "
          f"{os.getloadavg()[1]:.2f} / {os.getloadavg()[2]:.2f} (1/5/15 min)", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        home, cohort, n_real = build_index(work, args.patients, args.points)
        print(f"index: {args.points} points = {n_real} real phantom studies (tiny preset, untrained) + "
              f"{args.points - n_real} perturbed copies of their vectors; built in {time.perf_counter() - t0:.0f} s",
              flush=True)
        ecg = sorted((cohort / "ecg").rglob("*.hea"))[0]
        upload = [("files", (ecg.name, ecg.read_bytes())),
                  ("files", (ecg.with_suffix(".dat").name, ecg.with_suffix(".dat").read_bytes()))]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        t_start = time.perf_counter()
        proc = subprocess.Popen([*E2R, "serve", "--data-dir", str(home), "--archive", str(cohort / "echo"),
                                 "--port", str(port)], stderr=subprocess.PIPE, text=True)
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                while True:
                    try:
                        if client.get("/v1/health").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if proc.poll() is not None:
                        raise SystemExit(f"e2r serve exited: {proc.stderr.read()}")
                    time.sleep(0.05)
                t_health = time.perf_counter() - t_start
                first = client.post("/v1/search", files=upload, data={"top_k": "10", "k": "50"})
                first.raise_for_status()
                t_first_search = time.perf_counter() - t_start
                print(f"start -> first answered request: /v1/health {t_health:.2f} s, first search "
                      f"{t_first_search:.2f} s (process start, imports, model + store open, first encode)")

                for _ in range(10):  # warm-up
                    client.post("/v1/search", files=upload, data={"top_k": "10", "k": "50"}).raise_for_status()
                lat, server_ms = [], []
                for _ in range(args.requests):
                    t = time.perf_counter()
                    r = client.post("/v1/search", files=upload, data={"top_k": "10", "k": "50"})
                    lat.append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
                    server_ms.append(sum(r.json()["timings_ms"].values()))
                print(f"one client, {args.requests} warm searches (top_k 10, k 50): p50 {pct(lat, 50):.1f} ms, "
                      f"p95 {pct(lat, 95):.1f} ms over HTTP; inside Searcher p50 {pct(server_ms, 50):.1f} ms")

                errors = [0]
                lat_c: list[float] = []
                lock = threading.Lock()

                def worker() -> None:
                    with httpx.Client(base_url=url, timeout=60) as c:
                        for _ in range(args.requests):
                            t = time.perf_counter()
                            try:
                                ok = c.post("/v1/search", files=upload, data={"top_k": "10", "k": "50"}).status_code == 200
                            except httpx.HTTPError:
                                ok = False
                            with lock:
                                lat_c.append((time.perf_counter() - t) * 1000)
                                errors[0] += not ok

                threads = [threading.Thread(target=worker) for _ in range(args.clients)]
                t = time.perf_counter()
                for th in threads:
                    th.start()
                for th in threads:
                    th.join()
                wall = time.perf_counter() - t
                n = args.clients * args.requests
                print(f"{args.clients} concurrent clients x {args.requests} requests: {n / wall:.1f} searches/s "
                      f"({wall:.1f} s), latency p50 {pct(lat_c, 50):.1f} ms p95 {pct(lat_c, 95):.1f} ms, "
                      f"errors {errors[0]}")

                uids = [nb["study_uid"] for nb in first.json()["neighbours"]]
                made, cached, made_srv, cached_srv = [], [], [], []
                for uid in uids[:5]:
                    for bucket, srv in ((made, made_srv), (cached, cached_srv)):
                        t = time.perf_counter()
                        r = client.get(f"/v1/studies/{uid}/videos/0/preview")
                        bucket.append((time.perf_counter() - t) * 1000)
                        r.raise_for_status()
                        srv.append(float(r.headers["x-e2r-preview-ms"]))
                        assert r.headers["x-e2r-preview"] == ("made" if bucket is made else "cached")
                print(f"preview (phantom 128 px cine of 32 frames at 25 fps -> {r.headers['content-type']} "
                      f"{len(r.content) / 1024:.0f} KiB): first request median "
                      f"{statistics.median(made):.1f} ms (server {statistics.median(made_srv):.1f} ms), cached median "
                      f"{statistics.median(cached):.1f} ms (server {statistics.median(cached_srv):.1f} ms) over {len(made)} studies")
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"load average at end {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f} / {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
