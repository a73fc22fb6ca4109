"""Does the query path scale over threads in one process? (issue 24: 4 clients of `e2r serve`)

    python bench/probe_query_threads.py --data-dir E2R_HOME --collection NAME [--records DIR] [--per-thread 40] [--pool 2]

Runs read + preprocess alone, then whole searches (queries.search.Searcher: read, preprocess,
encode, store, vote), on 1, 2 and 4 threads, each thread working through the same records, and
prints the rate per thread count. With --pool N it also runs the whole search with read +
preprocess handed to N worker processes (forkserver), the encode and the store query staying in
the threads: what a process pool in `e2r serve` would buy. Any index works (timing hardly depends on what the model learned);
the records default to ../shared/data's PTB-XL folder at 500 Hz.
"""

from __future__ import annotations

import argparse
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
import time
from pathlib import Path

DEFAULT_RECORDS = Path("../shared/data/ecg/ptbxl/records500/00000")


def rate(job, records: list[Path], n_threads: int) -> float:
    """Records (or searches) per second with `n_threads` threads each running `job` over `records`."""
    def worker() -> None:
        for r in records:
            job(r)

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return n_threads * len(records) / (time.perf_counter() - t0)


def _read_for_model(path: Path, cfg):
    """read_for_model in a worker process: (PreprocessedECG, the ECG summary the search reports)."""
    from e2r.ecg import read_for_model

    record, pre = read_for_model(path, cfg)
    return pre, {"path": str(path), "fs": record.fs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--collection", default="echo_studies")
    ap.add_argument("--records", type=Path, default=DEFAULT_RECORDS)
    ap.add_argument("--per-thread", type=int, default=40)
    ap.add_argument("--pool", type=int, default=0, help="Also run whole searches with a pool of this many processes.")
    args = ap.parse_args()

    from e2r.ecg import read_for_model
    from e2r.store import open_store
    from queries.search import Searcher

    records = sorted(args.records.glob("*.hea"))[:args.per_thread]
    if not records:
        ap.error(f"no WFDB headers in {args.records}")
    with open_store(data_dir=args.data_dir) as store:
        searcher = Searcher(store, args.collection)
        cfg = searcher.loaded.preset.ecg_preprocess
        searcher.search(records[0])  # warm: the encoder's session and the store's first query
        jobs = {"read + preprocess": lambda r: read_for_model(r, cfg), "whole search": searcher.search}
        pool = None
        if args.pool:
            from e2r.encode import encode_ecg

            pool = ProcessPoolExecutor(args.pool, mp_context=multiprocessing.get_context("forkserver"))
            list(pool.map(_read_for_model, records[:args.pool * 2], [cfg] * args.pool * 2))  # workers up

            def pooled(r: Path):
                pre, info = pool.submit(_read_for_model, r, cfg).result()
                return searcher._query(encode_ecg(searcher.loaded, [pre])[0], info, 10, 50, None, "softmax", {})

            jobs[f"search, pool of {args.pool}"] = pooled
        for name, job in jobs.items():
            for n in (1, 2, 4):
                print(f"{name:18s} {n} thread(s): {rate(job, records, n):6.1f} /s", flush=True)
        if pool is not None:
            pool.shutdown()


if __name__ == "__main__":
    main()
