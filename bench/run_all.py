"""Run every speed benchmark under bench/ in turn (`make bench`) and write issue 14's table.

    python bench/run_all.py [--only NAME ...] [--skip NAME ...] [--table bench/results.md]
                            [--real DATA_DIR COLLECTION --ecgs GLOB] [--cohort PHANTOM_DIR]
                            [--store-sizes 100000 230000 1000000]

Each script runs in its own process and prints its own numbers; this runner prints a header
before each, the load average at its start (the cores are shared: numbers taken under load are
slower), its wall time and exit code, and a summary at the end. A failing script does not stop
the others; the exit code is non-zero when any failed. bench_echoprime is skipped when torchvision
is not installed (the optional `echoprime` extra).

The three scripts behind the scale figures (bench_store, bench_search, bench_index) write JSON
next to the table; `--table` (default bench/results.md) turns them into one markdown table of
issue 14's figures: target, measured value, met or by how much missed, and the load average.
bench_store uses the trained-model embeddings of `--real` (replicated with noise to each size)
when given, else its synthetic mixture; bench_index indexes `--cohort` (a 1,000-patient phantom:
`e2r synth --patients 1000`) when given, else a 200-patient one it writes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Order: cheap first; bench_train last (it writes the tower that the view probe then reads).
SCRIPTS = ("bench_models", "bench_synth", "bench_store", "bench_index", "bench_search", "bench_serve",
           "bench_embed", "bench_import", "bench_echoprime", "bench_train")
# The store settings the figures are taken with (e2r.store.edge.IndexSettings; see docs/benchmarks.md).
STORE_CONFIG = "default"


def script_args(name: str, args: argparse.Namespace, out: Path) -> list[str]:
    """Arguments that make a figure script measure the issue's rows and write JSON to `out`."""
    if name == "bench_store":
        real = ["--real", *args.real, "--ecgs", args.ecgs] if args.real else []
        return [*real, "--backends", "edge", "--configs", STORE_CONFIG, "--brute", "--efs", "512", "1024", "2048",
                "--sizes", *map(str, args.store_sizes), "--out", str(out)]
    if name == "bench_search":
        return ["--presets", "tiny", "--sizes", "100000", "--importtime", "--out", str(out)]
    if name == "bench_index":
        cohort = ["--cohort", str(args.cohort)] if args.cohort else []
        return [*cohort, "--workers", "2", "--out", str(out)]
    return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", default=None, choices=SCRIPTS)
    ap.add_argument("--skip", nargs="+", default=(), choices=SCRIPTS)
    ap.add_argument("--table", type=Path, default=HERE / "results.md", help="where the issue-14 table is written")
    ap.add_argument("--real", nargs=2, metavar=("DATA_DIR", "COLLECTION"), default=None)
    ap.add_argument("--ecgs", default=None, help="with --real: glob of the ECG records used as queries")
    ap.add_argument("--cohort", type=Path, default=None, help="phantom cohort folder for bench_index")
    ap.add_argument("--store-sizes", type=int, nargs="+", default=[100_000, 230_000, 1_000_000])
    ap.add_argument("--table-only", action="store_true", help="rebuild the table from the JSON already written")
    args = ap.parse_args(argv)
    outs = {name: args.table.with_name(f"{args.table.stem}-{name}.json") for name in ("bench_store", "bench_search",
                                                                                  "bench_index")}
    results = []
    for name in ([] if args.table_only else args.only or SCRIPTS):
        if name in args.skip:
            continue
        if not (HERE / f"{name}.py").is_file():
            print(f"== {name}: skipped (no bench/{name}.py in this checkout)", flush=True)
            results.append((name, "skipped", 0.0))
            continue
        if name == "bench_echoprime" and importlib.util.find_spec("torchvision") is None:
            print(f"== {name}: skipped (torchvision not installed; pip install -e '.[echoprime]')", flush=True)
            results.append((name, "skipped", 0.0))
            continue
        extra = script_args(name, args, outs[name]) if name in outs else []
        print(f"== {name} {' '.join(extra)} (load average {os.getloadavg()[0]:.1f})", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *extra]).returncode
        results.append((name, "ok" if rc == 0 else f"exit {rc}", time.perf_counter() - t0))
    print("\nsummary:")
    for name, status, wall in results:
        print(f"  {name:16s} {status:8s} {wall:7.0f} s")
    loaded = {name: json.loads(p.read_text()) for name, p in outs.items() if p.is_file()}
    if loaded:
        args.table.write_text(issue_table(loaded))
        print(f"\nissue-14 table: {args.table}")
    return 0 if all(s in ("ok", "skipped") for _, s, _ in results) else 1


def _row(step: str, target: str, measured: str, met: str, load: float | None) -> str:
    return f"| {step} | {target} | {measured} | {met} | {'-' if load is None else f'{load:.1f}'} |"


def _verdict(value: float, limit: float, smaller_is_better: bool = True, unit: str = "") -> str:
    ok = value <= limit if smaller_is_better else value >= limit
    if ok:
        return "yes"
    return f"**no**: {abs(value - limit):.3g}{unit} ({value / limit:.2f}x the target) off"


def issue_table(r: dict) -> str:
    """Markdown: issue 14's figures, each with its target, the measured value and whether it is met."""
    lines = [f"Issue 14's figures, `python bench/run_all.py` on {platform.machine()} with {os.cpu_count()} CPU cores "
             f"(shared: the load column is the 1-minute load average when the figure was taken).", "",
             "| step | target | measured | met | load |", "|---|---|---|---|---|"]
    store = r.get("bench_store", {}).get("rows", [])
    if store:
        big = max(store, key=lambda x: x["n"])
        vec = "trained-model embeddings replicated with noise" if r["bench_store"].get("real") else "synthetic mixture"
        lines.append(_row(f"one store query at {big['n']:,} ({r['bench_store']['dim']}-d {vec})",
                          "<= 2 ms p50, RSS <= 2 GB", f"{big['p50_ms']:.2f} ms p50, {big['p95_ms']:.2f} ms p95, "
                          f"RSS {big['rss_mb']:.0f} MB", "yes" if big["p50_ms"] <= 2 and big["rss_mb"] <= 2048 else
                          _verdict(big["p50_ms"], 2.0, unit=" ms"), big.get("load")))
        lines.append(_row(f"filtered query at {big['n']:,} (lvef<40 & views=PLAX)", "-",
                          f"{big['filtered_p50_ms']:.2f} ms p50, {big['filtered_p95_ms']:.2f} ms p95, recall@10 "
                          f"{big['filtered_recall10']:.3f}", "-", big.get("load")))
        lines.append(_row(f"recall@10 vs exact at {big['n']:,}", ">= 0.98", f"{big['recall10']:.3f}",
                          _verdict(big["recall10"], 0.98, smaller_is_better=False), big.get("load")))
        if "brute_p50_ms" in big:
            lines.append(_row(f"brute force (torch matmul) at {big['n']:,}", "the headline ratio",
                              f"{big['brute_p50_ms']:.1f} ms p50 = {big['brute_p50_ms'] / big['p50_ms']:.0f}x the "
                              "store query", "-", big.get("load")))
        if "step_p50_ms" in big:
            lines.append(_row(f"store step of a search at {big['n']:,} (top-k + labelled voters)",
                              "one round trip", f"1 engine call (search_batch), {big['step_p50_ms']:.2f} ms p50", "yes",
                              big.get("load")))
        build_min = (big["upsert_s"] + big["index_s"]) / 60
        lines.append(_row(f"build at {big['n']:,} (upsert + HNSW)", "1M in <= 15 min",
                          f"{build_min:.1f} min (upsert {big['upsert_s']:.0f} s, HNSW {big['index_s']:.0f} s)",
                          _verdict(build_min * 1e6 / big["n"], 15.0, unit=" min") if big["n"] >= 1e6 else
                          f"not at 1M ({build_min * 1e6 / big['n']:.0f} min scaled linearly)", big.get("load")))
        lines.append(_row("largest store measured", "1M, with RSS and disk",
                          f"{big['n']:,}: RSS {big['rss_mb']:.0f} MB, disk {big['disk_mb']:.0f} MB",
                          "yes" if big["n"] >= 1e6 else "**no**", big.get("load")))
    search = r.get("bench_search", {})
    rows = search.get("rows", [])
    for backend in sorted({x.get("backend", "torch") for x in rows}):  # bench_search measures both side by side
        s = max((x for x in rows if x.get("backend", "torch") == backend), key=lambda x: x["n"])
        lines.append(_row(f"read + preprocess one 500 Hz, 10 s WFDB record ({backend} run)", "<= 10 ms",
                          f"{s['read_preprocess_p50_ms']:.1f} ms p50",
                          _verdict(s["read_preprocess_p50_ms"], 10.0, unit=" ms"), s["load"]))
        path = s["total_p50_ms"]
        label = f"{path:.1f} ms p50 at {s['n']:,} (encode {s['encode_p50_ms']:.1f} ms)"
        if store and "step_p50_ms" in big and big["n"] > s["n"]:
            path = path - s["store_query_p50_ms"] + big["step_p50_ms"]
            label += f"; at {big['n']:,}: {path:.1f} ms (its store step swapped for the {big['n']:,} one)"
        lines.append(_row(f"full in-process query path (tiny, ECG encoder on {backend})", "<= 20 ms p50 at 1M", label,
                          _verdict(path, 20.0, unit=" ms"), s["load"]))
    for preset, p in search.get("process", {}).items():
        for key in sorted(k for k in p if k.startswith("search_") and k.endswith("_s")):
            backend = key[len("search_"):-len("_s")] or "torch"
            extra = p[key] - p["help_s"]
            lines.append(_row(f"one `e2r search` process ({preset}, {p['n']:,} studies, {backend})",
                              "<= `e2r --help` + 2.5 s",
                              f"{p[key]:.2f} s (`--help` {p['help_s']:.2f} s: +{extra:.2f} s)",
                              _verdict(extra, 2.5, unit=" s"), p["load"]))
    index = r.get("bench_index", {}).get("rows", [])
    if index:
        i = index[-1]
        lines.append(_row(f"indexing (tiny, {i['studies']:,} studies / {i['videos']:,} videos, {i['workers']} workers)",
                          ">= 120 studies/s", f"{i['studies_per_s']:.0f} studies/s (decode {i['decode_cpu_s']:.1f} CPU-s, "
                          f"model {i['model_s']:.1f} s, store {i['store_s']:.1f} s, scan {i['scan_s']:.1f} s)",
                          _verdict(i["studies_per_s"], 120.0, smaller_is_better=False, unit=" studies/s"), i["load"]))
    top = search.get("importtime")
    for backend, entries in (top.items() if isinstance(top, dict) else [("torch", top)] if top else []):
        lines += ["", f"Largest cumulative imports of `python -X importtime -m e2r search` ({backend}, ms):", ""]
        lines += [f"- {name.strip()}: {ms:.0f}" for name, ms in entries]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
