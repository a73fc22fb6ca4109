"""`e2r index`: scan -> group -> decode (worker processes) -> embed -> upsert, resumable.

Point IDs are derived from the study UID and each point carries a fingerprint of its videos, so a
re-run skips unchanged studies, replaces changed ones and adds new ones; a run killed at any
moment and run again ends with every study exactly once. Decoding (the slow, pure-CPU part) runs
in worker processes that feed the model in the main process, so both stages overlap.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional


from e2r.echo import ArchiveScan, StudyInfo, scan_archive
from e2r.errors import BundleError, DataError, StoreError
from e2r.util import DEFAULT_HOME
from indexer.config import IndexConfig
from indexer.decode import DecodeJob, DecodedStudy, decode_study, decode_worker
from indexer.payload import build_payload, load_or_create_salt, study_fingerprint

log = logging.getLogger(__name__)


@dataclass
class IndexSummary:
    """What one index run did; `to_dict()` is the `--json` output."""

    collection: str
    model_hash: str
    studies_found: int = 0
    studies_in_shard: int = 0
    indexed: int = 0
    replaced: int = 0
    unchanged: int = 0
    failed: int = 0
    videos_indexed: int = 0
    videos_failed: int = 0
    with_phenotypes: int = 0
    skipped_files: dict[str, int] = field(default_factory=dict)
    skipped_examples: list[tuple[str, str]] = field(default_factory=list)
    failed_studies: list[tuple[str, str]] = field(default_factory=list)
    phenotype_errors: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    total_in_collection: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with stable keys."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def in_shard(study_uid: str, shard_index: int, shard_count: int) -> bool:
    """Stable assignment of a study to one of `shard_count` slices."""
    digest = hashlib.sha1(study_uid.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shard_count == shard_index


def index_archive(cfg: IndexConfig, store: Any, loaded: Any) -> IndexSummary:
    """Index every study of `cfg.archive` into `store` with the loaded model bundle.

    `store` is an open e2r.store.VectorStore; `loaded` is e2r.bundle.load_model's result.
    """
    from e2r.encode import encode_echo_studies
    from e2r.phenotypes import read_phenotypes
    from e2r.store import Point, point_id_for

    cfg.validate()
    if (getattr(loaded, "meta", None) or {}).get("train_config", {}).get("ecg_only"):
        raise BundleError(f"{cfg.model_dir}: an ECG-only model (its echo side was never trained); it embeds ECGs "
                          "(`e2r embed`, `e2r eval --protocol knn|linear`) but cannot index echo studies; index with "
                          "an aligned model (`e2r train`)")
    summary = IndexSummary(collection=cfg.collection, model_hash=loaded.hash)
    t0 = time.perf_counter()

    phenotypes: dict[str, dict[str, Any]] = {}
    if cfg.phenotypes is not None:
        phenotypes, row_errors = read_phenotypes(cfg.phenotypes)
        summary.phenotype_errors = [e.message for e in row_errors]
        for err in row_errors:
            log.warning("phenotype row skipped: %s", err.message)

    scan: ArchiveScan = scan_archive(cfg.archive, progress=cfg.progress, group_by=cfg.group_by)
    summary.studies_found = len(scan.studies)
    summary.skipped_files = dict(scan.skipped)
    summary.skipped_examples = [(p, r) for p, r, _ in scan.skipped_files[:20]]
    studies = [s for s in scan.studies if in_shard(s.study_uid, cfg.shard.index, cfg.shard.count)]
    summary.studies_in_shard = len(studies)
    summary.seconds["scan"] = time.perf_counter() - t0

    ensure_collection(store, cfg.collection, loaded)
    todo, replaced_ids = _studies_to_index(store, cfg.collection, studies, loaded.hash)
    summary.unchanged = len(studies) - len(todo)
    # Patient IDs are always hashed with a salt: the config's, else the one of the e2r home.
    salt = load_or_create_salt(cfg.salt_path or DEFAULT_HOME / "patient_salt")

    t_decode_cpu = t_model = t_store = 0.0
    batch: list[tuple[StudyInfo, DecodedStudy]] = []

    def flush() -> None:
        nonlocal t_model, t_store
        if not batch:
            return
        t1 = time.perf_counter()
        vectors = encode_echo_studies(loaded.model, [list(d.frames) for _, d in batch])  # (B, D), the one encode path
        t2 = time.perf_counter()
        points = []
        for (study, decoded), vector in zip(batch, vectors):
            payload = build_payload(study, decoded.used, phenotypes.get(study.study_uid), loaded.hash, salt,
                                    cfg.archive, cfg.store_paths)
            points.append((study, decoded, Point(id=point_id_for(study.study_uid), vector=vector, payload=payload)))
        try:
            store.upsert(cfg.collection, [p for _, _, p in points])
            stored = points
        except StoreError:
            # One bad point must not lose the batch: store them one by one and record the failures.
            stored = []
            for study, decoded, point in points:
                try:
                    store.upsert(cfg.collection, [point])
                    stored.append((study, decoded, point))
                except StoreError as err:
                    summary.failed += 1
                    summary.failed_studies.append((study.study_uid, f"not stored: {err}"))
                    log.warning("study %s not stored: %s", study.study_uid, err)
        for _, decoded, point in stored:
            summary.with_phenotypes += int(point.payload["has_phenotypes"])
            summary.videos_indexed += len(decoded.used)
            if point.id in replaced_ids:
                summary.replaced += 1
            else:
                summary.indexed += 1
        t_model += t2 - t1
        t_store += time.perf_counter() - t2
        batch.clear()

    jobs = [DecodeJob.for_study(i, s, loaded.preset.echo) for i, s in enumerate(todo)]
    bar = _progress(len(todo), cfg.progress)
    t_loop = time.perf_counter()
    for decoded in _decoded_stream(jobs, cfg.workers):
        t_decode_cpu += decoded.seconds
        study = todo[decoded.job_index]
        summary.videos_failed += len(decoded.errors)
        if not decoded.used:
            summary.failed += 1
            reason = decoded.errors[0][1] if decoded.errors else "no decodable video"
            summary.failed_studies.append((study.study_uid, reason))
            log.warning("study %s not indexed: %s", study.study_uid, reason)
        else:
            batch.append((study, decoded))
            if len(batch) >= cfg.batch_size:
                flush()
        if bar is not None:
            bar.update(1)
    flush()
    if bar is not None:
        bar.close()
    t_opt = time.perf_counter()
    store.optimize(cfg.collection)  # build the search index now, even when a re-run changed nothing
    t_store += time.perf_counter() - t_opt
    summary.seconds["decode_cpu"] = t_decode_cpu
    summary.seconds["model"] = t_model
    summary.seconds["store"] = t_store
    summary.seconds["embed_loop_wall"] = time.perf_counter() - t_loop
    summary.seconds["total"] = time.perf_counter() - t0
    summary.total_in_collection = store.count(cfg.collection)
    return summary


def ensure_collection(store: Any, name: str, loaded: Any) -> None:
    """Create the collection for this model, or check that an existing one was built with it."""
    from e2r.store import STUDY_INDEXED_SCHEMA

    dim = int(loaded.preset.embed_dim)
    if not store.collection_exists(name):
        store.create_collection(name, dim=dim, metadata=collection_metadata(loaded), payload_schema=STUDY_INDEXED_SCHEMA)
        return
    meta = store.get_metadata(name)
    if meta.get("echo_tower_hash") != loaded.echo_tower_hash:
        raise StoreError(
            f"collection {name!r} was built with a model aligned to echo tower {meta.get('echo_tower_hash')}, "
            f"but {loaded.path} is aligned to {loaded.echo_tower_hash}; index into another --collection "
            "or use the model it was built with"
        )
    if meta.get("model_hash") != loaded.hash:
        ecg_input = loaded.preset.ecg_preprocess.describe()
        other_input = meta.get("ecg_preprocess")
        differs = f"; its ECG input is {other_input}, the model's {ecg_input}" if other_input not in (None, ecg_input) else ""
        raise StoreError(
            f"collection {name!r} was built with model {meta.get('model_hash')} "
            f"({meta.get('model_path')}), not {loaded.hash} ({loaded.path}){differs}; "
            "index into another --collection or use the model it was built with"
        )


def collection_metadata(loaded: Any) -> dict[str, Any]:
    """What a collection remembers about how it was made (layout owned by e2r.store.schema)."""
    from e2r.store import collection_metadata as schema_metadata

    return schema_metadata(int(loaded.preset.embed_dim), model_hash=loaded.hash,
                           model_path=str(Path(loaded.path).resolve()),
                           extra={"preset": loaded.preset.name, "echo_tower_hash": loaded.echo_tower_hash,
                                  "ecg_preprocess": loaded.preset.ecg_preprocess.describe()})


def _studies_to_index(store: Any, name: str, studies: list[StudyInfo], model_hash: str) -> tuple[list[StudyInfo], set[str]]:
    """Studies whose point is missing or stale; and the ids of the stale ones (to be replaced)."""
    from e2r.store import point_id_for

    todo: list[StudyInfo] = []
    stale: set[str] = set()
    for start in range(0, len(studies), 512):
        chunk = studies[start:start + 512]
        ids = [point_id_for(s.study_uid) for s in chunk]
        existing = {p.id: p.payload for p in store.retrieve(name, ids)}
        for study, pid in zip(chunk, ids):
            payload = existing.get(pid)
            if payload is None:
                todo.append(study)
            elif payload.get("fingerprint") != study_fingerprint(study) or payload.get("model_hash") != model_hash:
                todo.append(study)
                stale.add(pid)
    return todo, stale


def _decoded_stream(jobs: list[DecodeJob], workers: int) -> Iterator[DecodedStudy]:
    """Decoded studies in job order; decoding in `workers` processes (0: in this process).

    Each worker process has one pipe and one thread here that feeds it a job at a time, so
    workers keep decoding while this thread embeds. Not multiprocessing.Pool: its queues' locks
    are named semaphores, which a killed run leaves for the resource tracker to report as leaked,
    and its orphaned workers print BrokenPipeError tracebacks (see indexer.decode.decode_worker).
    """
    if workers == 0 or len(jobs) <= 1:
        for job in jobs:
            yield decode_study(job)
        return
    ctx = mp.get_context("spawn")
    done: dict[int, DecodedStudy] = {}
    failed: list[str] = []
    todo = iter(range(len(jobs)))
    cond = threading.Condition()
    stop = False

    def feed(proc: Any, conn: Any) -> None:
        while True:
            with cond:
                i = None if stop else next(todo, None)
            if i is None:
                return
            try:
                conn.send(jobs[i])
                result = conn.recv()
            except (EOFError, OSError):
                proc.join(timeout=1)  # for its exit code
                with cond:
                    failed.append(f"a decode worker ended (exit code {proc.exitcode}) while decoding "
                                  f"{jobs[i].paths[0] if jobs[i].paths else 'a study'}; re-run the same "
                                  "command (indexed studies are kept), with --workers 0 if it happens again")
                    cond.notify_all()
                return
            with cond:
                done[i] = result
                cond.notify_all()

    procs, conns, threads = [], [], []
    try:
        for _ in range(min(workers, len(jobs))):
            conn, child_conn = ctx.Pipe()
            proc = ctx.Process(target=decode_worker, args=(child_conn,), daemon=True)
            proc.start()
            child_conn.close()  # the worker's end lives in the worker only: its exit is an EOF here
            procs.append(proc)
            conns.append(conn)
            threads.append(threading.Thread(target=feed, args=(proc, conn), daemon=True))
            threads[-1].start()
        for i in range(len(jobs)):
            with cond:
                cond.wait_for(lambda: i in done or bool(failed))
                if i not in done:
                    raise DataError(failed[0])
                result = done.pop(i)
            yield result
    finally:
        with cond:
            stop = True
        for proc, thread in zip(procs, threads):
            if thread.is_alive():  # busy with a study nobody will take: end it (its recv then ends)
                proc.terminate()
        for thread in threads:
            thread.join()
        for conn in conns:
            conn.close()  # an idle worker reads EOF and exits
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join()


def _progress(total: int, enabled: bool) -> Optional[Any]:
    if not enabled:
        return None
    from e2r.progress import progress_bar

    return progress_bar(total=total, desc="indexing", unit="study", dynamic_ncols=True)
