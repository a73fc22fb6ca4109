"""`e2r serve` over HTTP: warm search latency (one client), throughput (4 concurrent clients),
time from `e2r serve` start to the first answered request, the server's memory, and preview
generation first vs cached. Both ECG encoder backends in one run, side by side: ONNX Runtime (the
bundle's graph; the server never imports torch) and torch (a copy of the same model without its
graph, same hash, in a copy of the store: two embedded stores, so both servers run at once and
take turns request by request for the one-client latency, under the same load).

The index: a small real phantom cohort (`e2r synth`) indexed with an untrained tiny bundle (timing
does not depend on what the model learned), then its real study vectors replicated with Gaussian
perturbation (renormalised) to --points points, each copy keeping its original's payload and
source files (so previews work) under a new study UID. The ECG side is real: a phantom WFDB record
uploaded as multipart form data each request, read, preprocessed and encoded by the server.

    python bench/bench_serve.py [--points 10000] [--patients 24] [--requests 200] [--clients 4] [--starts 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
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
BACKENDS = ("onnxruntime", "torch")


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


def torch_twin(work: Path) -> Path:
    """`work/model`'s model without its ECG graph (same hash): what a torch server loads."""
    from e2r.bundle import load_model, save_bundle

    save_bundle(load_model(work / "model").model, work / "model-torch", ecg_graph=False)
    return work / "model-torch"


def copy_store(home: Path, to: Path, model: Path) -> Path:
    """A copy of the store whose collection records `model` as its bundle."""
    from e2r.store import open_store

    shutil.copytree(home, to)
    with open_store(to) as store:
        store.set_metadata("echo_studies", {"model_path": str(model)})
    return to


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> tuple[float, float]:
    """(resident, peak resident) MB of a process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


class Server:
    """One `e2r serve` process on a free port."""

    def __init__(self, home: Path, archive: Path):
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.t_start = time.perf_counter()
        self.proc = subprocess.Popen([*E2R, "serve", "--data-dir", str(home), "--archive", str(archive),
                                      "--port", str(self.port)], stderr=subprocess.PIPE, text=True)
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def wait_healthy(self) -> float:
        """Seconds from the process start to the first answered /v1/health."""
        import httpx

        while True:
            try:
                if self.client.get("/v1/health").status_code == 200:
                    return time.perf_counter() - self.t_start
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"e2r serve exited: {self.proc.stderr.read()}")
            time.sleep(0.02)

    def stop(self) -> str:
        """Stop the server; its stderr."""
        self.client.close()
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        return err


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--patients", type=int, default=24)
    ap.add_argument("--requests", type=int, default=200, help="requests per client")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--starts", type=int, default=3, help="server starts per backend (interleaved; median)")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPU cores; load average at start {os.getloadavg()[0]:.2f} / "
          f"{os.getloadavg()[1]:.2f} / {os.getloadavg()[2]:.2f} (1/5/15 min)", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        home, cohort, n_real = build_index(work, args.patients, args.points)
        homes = {"onnxruntime": home, "torch": copy_store(home, work / "home-torch", torch_twin(work))}
        print(f"index: {args.points} points = {n_real} real phantom studies (tiny preset, untrained) + "
              f"{args.points - n_real} perturbed copies of their vectors; built in {time.perf_counter() - t0:.0f} s",
              flush=True)
        ecg = sorted((cohort / "ecg").rglob("*.hea"))[0]
        upload = [("files", (ecg.name, ecg.read_bytes())),
                  ("files", (ecg.with_suffix(".dat").name, ecg.with_suffix(".dat").read_bytes()))]
        form = {"top_k": "10", "k": "50"}
        fig: dict[str, dict[str, float]] = {b: {} for b in BACKENDS}

        # Start -> first answer: each backend's server started alone, in turns.
        starts: dict[str, dict[str, list[float]]] = {b: {"health": [], "search": []} for b in BACKENDS}
        for _ in range(args.starts):
            for backend in BACKENDS:
                server = Server(homes[backend], cohort / "echo")
                try:
                    starts[backend]["health"].append(server.wait_healthy())
                    server.client.post("/v1/search", files=upload, data=form).raise_for_status()
                    starts[backend]["search"].append(time.perf_counter() - server.t_start)
                finally:
                    err = server.stop()
                if ("encoding ECGs with torch" in err) != (backend == "torch"):
                    raise SystemExit(f"the {backend} server did not run on {backend}: {err[-2000:]}")
        for backend in BACKENDS:
            fig[backend]["health_s"] = statistics.median(starts[backend]["health"])
            fig[backend]["first_search_s"] = statistics.median(starts[backend]["search"])

        servers = {b: Server(homes[b], cohort / "echo") for b in BACKENDS}
        try:
            for server in servers.values():
                server.wait_healthy()
                for _ in range(10):  # warm-up
                    server.client.post("/v1/search", files=upload, data=form).raise_for_status()
            # One client: the two servers take turns, request by request.
            lat: dict[str, list[float]] = {b: [] for b in BACKENDS}
            inside: dict[str, list[float]] = {b: [] for b in BACKENDS}
            for _ in range(args.requests):
                for backend, server in servers.items():
                    t = time.perf_counter()
                    r = server.client.post("/v1/search", files=upload, data=form)
                    lat[backend].append((time.perf_counter() - t) * 1000)
                    r.raise_for_status()
                    inside[backend].append(sum(r.json()["timings_ms"].values()))
            for backend in BACKENDS:
                fig[backend].update(p50_ms=pct(lat[backend], 50), p95_ms=pct(lat[backend], 95),
                                    inside_p50_ms=pct(inside[backend], 50))
            # Concurrent clients: one server at a time (each saturates the cores).
            for backend, server in servers.items():
                cpu0 = cpu_s(server.proc.pid)
                fig[backend].update(concurrent(server.url, upload, form, args.clients, args.requests))
                fig[backend]["cpu_ms"] = (cpu_s(server.proc.pid) - cpu0) * 1000 / (args.clients * args.requests)
            for backend, server in servers.items():
                fig[backend]["rss_mb"], fig[backend]["peak_rss_mb"] = rss_mb(server.proc.pid)
            previews(servers["onnxruntime"].client, upload, form)
        finally:
            for server in servers.values():
                server.stop()

    print(f"\n{'figure':58} " + " ".join(f"{b:>14}" for b in BACKENDS))
    rows = (("start -> /v1/health (s, median of %d starts)" % args.starts, "health_s", "{:.2f}"),
            ("start -> first answered search (s)", "first_search_s", "{:.2f}"),
            (f"warm search, one client, {args.requests} requests: p50 ms", "p50_ms", "{:.1f}"),
            ("  p95 ms", "p95_ms", "{:.1f}"),
            ("  inside the Searcher p50 ms", "inside_p50_ms", "{:.1f}"),
            (f"{args.clients} concurrent clients x {args.requests}: searches/s", "per_s", "{:.1f}"),
            ("  latency p50 ms", "c_p50_ms", "{:.1f}"),
            ("  latency p95 ms", "c_p95_ms", "{:.1f}"),
            ("  errors", "errors", "{:.0f}"),
            ("  server CPU per search (ms, user + system)", "cpu_ms", "{:.1f}"),
            ("server RSS after the runs (MB)", "rss_mb", "{:.0f}"),
            ("server peak RSS (MB)", "peak_rss_mb", "{:.0f}"))
    for label, key, fmt in rows:
        print(f"{label:58} " + " ".join(f"{fmt.format(fig[b][key]):>14}" for b in BACKENDS))
    print(f"load average at end {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f} / {os.getloadavg()[2]:.2f}")


def concurrent(url: str, upload: list, form: dict, clients: int, requests: int) -> dict[str, float]:
    """`clients` threads x `requests` searches against one server: rate, latency, errors."""
    import httpx

    errors = [0]
    lat: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            for _ in range(requests):
                t = time.perf_counter()
                try:
                    ok = c.post("/v1/search", files=upload, data=form).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    lat.append((time.perf_counter() - t) * 1000)
                    errors[0] += not ok

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    return {"per_s": clients * requests / wall, "c_p50_ms": pct(lat, 50), "c_p95_ms": pct(lat, 95),
            "errors": float(errors[0])}


def previews(client, upload: list, form: dict) -> None:
    """Preview generation, first request vs cached, for five neighbours of a search."""
    first = client.post("/v1/search", files=upload, data=form)
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


if __name__ == "__main__":
    main()
