"""Decode once, train many times: memory-mapped caches of decoded videos, frozen-tower per-video
embeddings and preprocessed ECGs.

A cache is one `.npy` file (np.lib.format.open_memmap) plus a `.json` sidecar, both named by a
key that hashes the settings (echo decode settings / ECG preprocessing) and the source files
(path, size, mtime). The arrays are written under a temporary name and renamed when complete, so
an interrupted build is never mistaken for a finished one, and a later run (or another arm of the
benchmark) with the same settings reuses it. Items that fail to load are recorded in the sidecar.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from e2r.errors import E2RError
from e2r.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedArray:
    """A finished cache: `array[i]` holds item i; `failed` maps item index -> reason."""

    array: np.ndarray
    failed: dict[int, str]
    path: Path
    reused: bool


def file_stamp(path: str | Path) -> list[Any]:
    """(path, size, mtime_ns) of a source file, or (path, None, None) when it is missing."""
    try:
        st = os.stat(path)
        return [str(path), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(path), None, None]


def cache_key(settings: dict[str, Any], sources: Sequence[str | Path]) -> str:
    """Hash of the settings and the source files' stamps (16 hex characters)."""
    blob = json.dumps({"settings": settings, "sources": [file_stamp(p) for p in sources]},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _load(job: tuple[Callable[[Any], np.ndarray], Any]) -> tuple[np.ndarray | None, str | None]:
    fn, item = job
    try:
        return fn(item), None
    except E2RError as err:
        return None, str(err)
    except (OSError, ValueError) as err:  # unreadable file or unexpected content
        return None, f"{type(err).__name__}: {err}"


def build_cached_array(cache_dir: str | Path, prefix: str, key: str, items: Sequence[Any],
                       load: Callable[[Any], np.ndarray], item_shape: tuple[int, ...] | None,
                       dtype: np.dtype, workers: int = 0, progress: bool = True,
                       desc: str = "caching") -> CachedArray:
    """Return the cache `<cache_dir>/<prefix>-<key>.npy`, building it with `load(item)` if absent.

    `load` must be picklable when workers > 1 (a module-level function or functools.partial).
    A failing item (E2RError, OSError, ValueError) leaves zeros in its row and is listed in
    `failed` with the error message. `item_shape` None: taken from the first item that loads.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    npy = cache_dir / f"{prefix}-{key}.npy"
    meta_path = cache_dir / f"{prefix}-{key}.json"
    if npy.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        arr = np.load(npy, mmap_mode="r")
        if arr.shape[0] == len(items) and meta.get("complete") and (
                item_shape is None or tuple(arr.shape[1:]) == tuple(item_shape)):
            log.info("reusing cache %s", npy)
            return CachedArray(arr, {int(k): v for k, v in meta["failed"].items()}, npy, True)
    failed: dict[int, str] = {}
    if item_shape is None:
        item_shape = _probe_shape(items, load, failed)
    shape = (len(items), *item_shape)
    tmp = cache_dir / f".{prefix}-{key}.{os.getpid()}.tmp.npy"
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
    jobs = [(load, it) for i, it in enumerate(items) if i not in failed]
    todo = [i for i in range(len(items)) if i not in failed]
    bar = progress_bar(total=len(items), desc=desc, unit="item", disable=not progress, leave=False)
    if workers > 1 and len(items) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = pool.map(_load, jobs, chunksize=max(1, len(items) // (workers * 8)))
            _fill(arr, todo, results, failed, bar)
    else:
        _fill(arr, todo, map(_load, jobs), failed, bar)
    bar.close()
    _finish(arr, tmp, npy, meta_path, {"complete": True, "shape": list(shape), "dtype": str(dtype),
                                       "failed": {str(k): v for k, v in failed.items()}})
    return CachedArray(np.load(npy, mmap_mode="r"), failed, npy, False)


def _finish(arr: np.ndarray, tmp: Path, npy: Path, meta_path: Path, meta: dict[str, Any]) -> None:
    """Make a finished memmap durable under its final name, then write the sidecar that marks it
    complete (sidecar last: a crash in between leaves no `complete` cache)."""
    from e2r.util import atomic_write

    arr.flush()
    del arr
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, npy)
    atomic_write(meta_path, lambda f: f.write(json.dumps(meta).encode()))


def _probe_shape(items: Sequence[Any], load: Callable[[Any], np.ndarray],
                 failed: dict[int, str]) -> tuple[int, ...]:
    for i, item in enumerate(items):
        value, err = _load((load, item))
        if err is None:
            return tuple(value.shape)
        failed[i] = err
    return (0,)  # nothing loads: every item is in `failed`


def _fill(arr: np.ndarray, todo: list[int], results, failed: dict[int, str], bar) -> None:
    bar.update(len(failed))
    for i, (value, err) in zip(todo, results):
        if err is not None:
            failed[i] = err
        elif tuple(value.shape) != arr.shape[1:]:
            failed[i] = f"shape {tuple(value.shape)} instead of {arr.shape[1:]}"
        else:
            arr[i] = value
        bar.update(1)


def decode_for_cache(path: str, n_frames: int, size: tuple[int, int], fps: float | None,
                     color: str, stride: int | None) -> np.ndarray:
    """decode_video with the preset's settings (module-level so worker processes can run it)."""
    from e2r.echo import decode_video

    return decode_video(path, n_frames=n_frames, size=tuple(size), fps=fps, color=color,
                        stride=stride)


def read_for_cache(path: str, preprocess_cfg: Any) -> np.ndarray:
    """read_ecg + preprocess_ecg (module-level so worker processes can run it)."""
    from e2r.ecg import read_for_model

    return read_for_model(path, preprocess_cfg)[1].signal.astype(np.float32, copy=False)


def build_embedding_cache(cache_dir: str | Path, settings: dict[str, Any], paths: Sequence[str],
                          load: Callable[[Any], np.ndarray], model: Any,
                          progress: bool = True) -> CachedArray:
    """Per-video embeddings of a frozen echo encoder, `<cache_dir>/viewemb-<key>.npy` (n, E).

    The key adds the encoder's kind and weight file to the decode settings, so new weights
    rebuild it. Each video is decoded and embedded in the main process; no frames are kept.
    """
    from e2r.encode import embed_videos

    weights = getattr(model.preset.echo, "weights", None)
    key = cache_key({**settings, "kind": model.preset.echo.kind,
                     "weights": file_stamp(weights) if weights else None}, paths)

    def decode_and_embed(path: str) -> np.ndarray:
        return embed_videos(model, [load(path)])[0]  # (E,)

    return build_cached_array(cache_dir, "viewemb", key, paths, decode_and_embed,
                              (model.preset.echo.out_dim,), np.float32, workers=0,
                              progress=progress, desc="embedding videos")


def embed_cached_videos(cache_dir: str | Path, decoded: CachedArray, encoder: Any, echo_cfg: Any,
                        encoder_id: str | None = None, batch_size: int = 64,
                        progress: bool = True) -> CachedArray:
    """Per-video embeddings (n, E) of a frozen video encoder over an already decoded video cache.

    Cached as `<cache_dir>/viewemb-<key>.npy`; the key hashes the decoded cache's file name (its
    own key: settings + sources) and `encoder_id` (default: a hash of the encoder's weights), so
    other weights or other videos rebuild it. Videos that failed to decode stay failed; their
    rows are zeros.
    """
    from e2r.bundle import content_hash
    from e2r.encode import encode_videos

    if encoder_id is None:
        encoder_id = content_hash({}, encoder.state_dict())
    key = cache_key({"decoded": decoded.path.name, "encoder": encoder_id}, [])
    n = len(decoded.array)
    ok = [i for i in range(n) if i not in decoded.failed]
    chunks = [ok[i:i + batch_size] for i in range(0, len(ok), batch_size)]

    def load(chunk: list[int]) -> np.ndarray:
        return encode_videos(encoder, echo_cfg, [np.asarray(decoded.array[i]) for i in chunk], batch_size=batch_size)

    return _build_rows(Path(cache_dir), f"viewemb-{key}", n, echo_cfg.out_dim, chunks, load, decoded.failed,
                       progress)


def _build_rows(cache_dir: Path, stem: str, n: int, dim: int, chunks: list[list[int]],
                load: Callable[[list[int]], np.ndarray], failed: dict[int, str], progress: bool) -> CachedArray:
    npy, meta_path = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"
    if npy.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        arr = np.load(npy, mmap_mode="r")
        if meta.get("complete") and arr.shape == (n, dim):
            return CachedArray(arr, {int(k): v for k, v in meta["failed"].items()}, npy, True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{stem}.{os.getpid()}.tmp.npy"
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
    with progress_bar(total=sum(map(len, chunks)), desc="embedding videos", unit="video", disable=not progress,
                      leave=False) as bar:
        for chunk in chunks:
            arr[chunk] = load(chunk)
            bar.update(len(chunk))
    _finish(arr, tmp, npy, meta_path, {"complete": True, "shape": [n, dim], "dtype": "float32",
                                       "failed": {str(k): v for k, v in failed.items()}})
    return CachedArray(np.load(npy, mmap_mode="r"), dict(failed), npy, False)
