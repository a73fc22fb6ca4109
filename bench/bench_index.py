"""Indexing throughput on the phantom archive with the tiny model: studies/s, videos/s, and where
the time goes (decode vs model vs store), for 0 and 1 decode worker processes.

    python bench/bench_index.py [--patients 200] [--workers 0 1]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--cohort", type=Path, default=None, help="reuse an existing phantom cohort folder")
    ap.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    rows = []

    from e2r.bundle import load_model
    from e2r.phantom import write_cohort
    from e2r.store import open_store
    from indexer.config import IndexConfig
    from indexer.pipeline import index_archive
    from e2r.bundle import save_untrained_bundle

    work = Path(tempfile.mkdtemp(prefix="e2r-bench-index-"))
    cohort = args.cohort or work / "cohort"
    if args.cohort is None:
        t0 = time.perf_counter()
        write_cohort(cohort, patients=args.patients, seed=0)
        print(f"phantom cohort: {args.patients} patients in {time.perf_counter() - t0:.1f} s")
    save_untrained_bundle("tiny", 0, work / "model")
    loaded = load_model(work / "model")
    print(f"machine: {os.cpu_count()} CPU cores; tiny preset (untrained weights: speed does not depend on training)")
    print(f"{'workers':>7} {'studies':>7} {'videos':>6} {'studies/s':>9} {'videos/s':>8} "
          f"{'scan s':>6} {'decode cpu s':>12} {'model s':>7} {'store s':>7} {'wall s':>6}")
    for workers in args.workers:
        home = work / f"home-{workers}"
        with open_store(home) as store:
            cfg = IndexConfig(archive=cohort / "echo", model_dir=work / "model", phenotypes=cohort / "phenotypes.csv",
                              salt_path=home / "salt", workers=workers, progress=False)
            s = index_archive(cfg, store, loaded)
        wall = s.seconds["embed_loop_wall"]
        rows.append({"workers": workers, "studies": s.indexed, "videos": s.videos_indexed, "studies_per_s": s.indexed / wall,
                     "load": os.getloadavg()[0], **{f"{k}_s": v for k, v in s.seconds.items()}})
        if args.out:
            args.out.write_text(json.dumps({"rows": rows}, indent=1))
        print(f"{workers:>7} {s.indexed:>7} {s.videos_indexed:>6} {s.indexed / wall:>9.2f} {s.videos_indexed / wall:>8.2f} "
              f"{s.seconds['scan']:>6.1f} {s.seconds['decode_cpu']:>12.1f} {s.seconds['model']:>7.1f} "
              f"{s.seconds['store']:>7.1f} {s.seconds['total']:>6.1f}", flush=True)
    print("decode cpu = time spent decoding summed over processes; with workers it overlaps the model.")


if __name__ == "__main__":
    main()
