"""Run every speed benchmark under bench/ in turn (`make bench`) and say which ones ran.

    python bench/run_all.py [--only NAME ...] [--skip NAME ...]

Each script runs in its own process with its defaults and prints its own numbers; this runner
prints a header before each, the load average at its start (the cores are shared: numbers taken
under load are slower), its wall time and exit code, and a summary at the end. A failing script
does not stop the others; the exit code is non-zero when any failed. bench_echoprime is skipped
when torchvision is not installed (the optional `echoprime` extra).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Order: cheap first; bench_train last (it writes the tower that the view probe then reads).
SCRIPTS = ("bench_models", "bench_synth", "bench_store", "bench_index", "bench_search", "bench_echoprime",
           "bench_train")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", default=None, choices=SCRIPTS)
    ap.add_argument("--skip", nargs="+", default=(), choices=SCRIPTS)
    args = ap.parse_args(argv)
    results = []
    for name in args.only or SCRIPTS:
        if name in args.skip:
            continue
        if name == "bench_echoprime" and importlib.util.find_spec("torchvision") is None:
            print(f"== {name}: skipped (torchvision not installed; pip install -e '.[echoprime]')", flush=True)
            results.append((name, "skipped", 0.0))
            continue
        print(f"== {name} (load average {os.getloadavg()[0]:.1f})", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, str(HERE / f"{name}.py")]).returncode
        results.append((name, "ok" if rc == 0 else f"exit {rc}", time.perf_counter() - t0))
    print("\nsummary:")
    for name, status, wall in results:
        print(f"  {name:16s} {status:8s} {wall:7.0f} s")
    return 0 if all(s in ("ok", "skipped") for _, s, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
