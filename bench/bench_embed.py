"""`e2r embed` throughput and peak memory: N phantom ECGs (seeded 12-lead records from the
phantom's ECG model, 500 Hz, 10 s) written once to a folder, then one `e2r embed` process over
the folder, timed from the outside; peak RSS is the child's maximum resident set (getrusage).

    python bench/bench_embed.py [--ecgs 10000] [--model BUNDLE] [--workdir DIR] [--out r.json]

Without --model an untrained bundle of --preset is used: the time per ECG does not depend on what
the weights learnt. A second run over the same folder measures the re-run that reuses every row.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def write_ecgs(folder: Path, n: int, fs: float = 500.0, seed: int = 0) -> float:
    """Write n phantom ECGs (one heart each) into folder; returns the seconds it took (0 if present)."""
    from e2r.phantom.ecg_synth import synth_ecg
    from e2r.phantom.latent import draw_baseline_exam
    from e2r.phantom.writers import write_ecg_wfdb

    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.hea"))) >= n:
        return 0.0
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    for i in range(n):
        sig, _ = synth_ecg(draw_baseline_exam(rng), rng, fs)
        write_ecg_wfdb(folder, f"e{i:06d}", sig, fs, "standard")
    return time.perf_counter() - t0


def run_embed(folder: Path, model: Path, out: Path) -> dict:
    """One `e2r embed` process over folder; wall seconds, peak RSS of the child, its JSON summary."""
    cmd = [sys.executable, "-m", "e2r", "embed", str(folder), "--model", str(model), "--out", str(out), "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"e2r embed failed ({res.returncode}): {res.stderr.strip().splitlines()[-1:]}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KB, max over children
    return {"wall_s": round(wall, 1), "peak_rss_mb": round(max(peak_kb, before) / 1024, 1),
            "summary": json.loads(res.stdout)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ecgs", type=int, default=10_000)
    ap.add_argument("--model", type=Path, default=None, help="a model bundle (default: an untrained --preset one)")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--workdir", type=Path, default=Path("bench_out/embed"))
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)

    folder = args.workdir / f"ecgs-{args.ecgs}"
    written = write_ecgs(folder, args.ecgs)
    model = args.model
    if model is None:
        from e2r.bundle import save_untrained_bundle

        model = args.workdir / f"untrained-{args.preset}"
        if not (model / "bundle.json").is_file():
            save_untrained_bundle(args.preset, 0, model, note="bench_embed")
    out = args.workdir / "emb.npz"
    for p in out.parent.glob("emb.*"):
        p.unlink()
    first = run_embed(folder, model, out)
    again = run_embed(folder, model, out)
    rows = first["summary"].get("rows")
    result = {
        "ecgs": args.ecgs, "preset": args.preset, "model": str(model), "cpus": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0], "write_s": round(written, 1),
        "first": {**first, "ecgs_per_s": round(rows / first["wall_s"], 1) if rows else None},
        "rerun": again,
    }
    print(f"e2r embed, {args.ecgs} ECGs ({args.preset}): {first['wall_s']} s, "
          f"{result['first']['ecgs_per_s']} ECGs/s, peak RSS {first['peak_rss_mb']} MB; "
          f"re-run reusing every row: {again['wall_s']} s (load {result['load_avg_1min']:.2f})")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
