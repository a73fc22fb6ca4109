"""ECG embeddings to a file (`e2r embed`) and to an array (`encode_ecgs`, for notebooks).

Every ECG is read and encoded exactly as `e2r search` encodes its query: `read_for_model` with the
model's preprocessing, then `e2r.encode.encode_ecg_features`. `write_embeddings(..., out="emb.npz")`
writes

    emb.npz          embedding   (N, D) float32  the shared ECG-echo space, L2-normalised: the vector
                                                 `e2r search` queries the echo index with
                     features    (N, C) float32  the ECG encoder's pooled output, before the projection head
                     path, record, fs, duration_s, fingerprint   (N,) one per row, row order
                     meta        JSON text: format, e2r version, model hash and path, preset, preprocessing
    emb.csv          the same per-row columns with `row`, for pandas
    emb.errors.csv   path, reason: one line per ECG that was skipped
    emb.json         the meta

Why `.npz` and a CSV rather than Parquet: numpy, already a dependency, loads it in one line
(`np.load("emb.npz")["embedding"]`), pandas loads the CSV in one (`pd.read_csv("emb.csv")`), and
the vectors stay plain 2-D float32 arrays; Parquet would add pyarrow (a ~40 MB wheel) to every
install for one output format, and store each vector as a list cell.

Re-runs reuse rows: a row is kept when its ECG's fingerprint (see `fingerprint`), the model hash and
the e2r version match the existing file's, so 100,000 ECGs can be embedded in pieces; the npz is
also saved along the way (every `checkpoint_s`) so an interrupted run loses at most that much work.
Every file is written whole to a temporary name and moved into place (`e2r.util.atomic_write`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from e2r.errors import ConfigError, E2RError
from e2r.util import atomic_write, one_line, unexpected_read_error

log = logging.getLogger(__name__)

FORMAT = "e2r-ecg-embeddings"
FORMAT_VERSION = 1
#: The two arrays of every row, by their name in the npz.
ARRAYS = {
    "embedding": "(N, D) float32, the shared ECG-echo space, L2-normalised: the vector `e2r search` queries with",
    "features": "(N, C) float32, the ECG encoder's pooled output, before the projection head",
}
ROW_COLUMNS = ("path", "record", "fs", "duration_s", "fingerprint")
CHECKPOINT_S = 600.0  # seconds of encoding between two saves of the npz during a run
# Files a WFDB record can consist of, beside the name the user gave (a DICOM ECG is one file).
_RECORD_SUFFIXES = (".hea", ".dat", ".mat")


@dataclass(frozen=True)
class EmbeddedECG:
    """One row: an ECG's identity and both of its vectors."""

    path: str  # as listed (record name for WFDB, file for DICOM)
    record: str  # WFDB record name / DICOM SOP Instance UID
    fs: float  # the file's sampling rate, Hz (the model input is resampled to the preset's)
    duration_s: float  # length of the recording
    fingerprint: str  # see `fingerprint`
    features: np.ndarray  # (C,) float32
    embedding: np.ndarray  # (D,) float32


@dataclass(frozen=True)
class EmbedSummary:
    """What `write_embeddings` did (`e2r embed --json` prints `to_dict()`)."""

    rows: int  # rows in the output
    encoded: int  # rows encoded in this run
    reused: int  # rows taken from the existing output
    skipped: int  # ECGs that could not be read, listed with their reason in files["errors"]
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sidecar_paths(out: str | Path) -> dict[str, Path]:
    """The files `write_embeddings(out=...)` writes: npz, ids CSV, errors CSV, meta JSON."""
    out = Path(out)
    stem = out.with_suffix("")
    return {"embeddings": out, "ids": Path(f"{stem}.csv"), "errors": Path(f"{stem}.errors.csv"),
            "meta": Path(f"{stem}.json")}


def fingerprint(path: str | Path) -> str:
    """Absolute path, size and mtime (ns) of each file of the record (`path` itself and
    `<record>.hea/.dat/.mat`), hashed to 16 hex digits; "" when none exists.

    Size + mtime, not a content hash: a re-run over 100,000 ECGs then costs one stat per file
    instead of reading the whole archive again, and any rewrite of a file changes its mtime (the
    rule make and rsync trust). The absolute path ties a row to its file, not to a look-alike."""
    p = Path(path)
    base = str(p.with_suffix("")) if p.suffix.lower() in _RECORD_SUFFIXES else str(p)
    parts = []
    for f in dict.fromkeys([str(p), *(base + s for s in _RECORD_SUFFIXES)]):
        try:
            st = os.stat(f)
        except OSError:
            continue
        parts.append(f"{os.path.abspath(f)}|{st.st_size}|{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:16] if parts else ""


def list_ecgs(inputs: str | Path | Sequence[str | Path]) -> list[str]:
    """ECG records, folders and `.txt` lists (as `e2r search` takes them, e2r.ecg.list_ecg_records)
    -> record paths, in order, each once."""
    from e2r.ecg import list_ecg_records

    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    return list(dict.fromkeys(p for item in inputs for p in list_ecg_records(item)))


def embed_ecg_batches(paths: Sequence[str], model: Any, batch_size: int = 64
                      ) -> Iterator[tuple[list[EmbeddedECG], list[tuple[str, str]]]]:
    """Yield (rows, skipped [(path, reason)]) for each batch of `batch_size` paths. An ECG that
    cannot be read is skipped with its one-line reason and never stops the run; a reader failure
    e2r did not name (a bug) is logged with its traceback and skipped the same way."""
    from e2r.ecg import read_for_model
    from e2r.encode import encode_ecg_features

    cfg = _preset(model).ecg_preprocess
    for start in range(0, len(paths), batch_size):
        ok, prepared, skipped = [], [], []
        for path in paths[start:start + batch_size]:
            fp = fingerprint(path)  # before reading: a file changed meanwhile is re-encoded next run
            try:
                record, pre = read_for_model(path, cfg)
            except E2RError as err:
                skipped.append((path, one_line(err, limit=400)))
                continue
            except Exception as err:  # noqa: BLE001  (reported per file, with the traceback in the log)
                log.warning("%s: unexpected error while reading", path, exc_info=True)
                skipped.append((path, unexpected_read_error(path, err)))
                continue
            ok.append((path, record, fp))
            prepared.append(pre)
        rows = []
        if prepared:
            features, embedding = encode_ecg_features(model, prepared, batch_size=batch_size)  # (b, C), (b, D)
            rows = [EmbeddedECG(path, record.record_name, float(record.fs), round(record.duration_s, 3), fp, f, z)
                    for (path, record, fp), f, z in zip(ok, features, embedding)]
        yield rows, skipped


def encode_ecgs(paths: str | Path | Sequence[str | Path], model: Any, array: str = "embedding",
                batch_size: int = 64) -> tuple[np.ndarray, list[str]]:
    """ECGs (records, folders or `.txt` lists) -> (array (N, D) float32, the N paths it holds), on
    the same path as `e2r embed`. `array="embedding"`: the shared-space vectors `e2r search` uses;
    `array="features"`: the encoder's pooled features (N, C). `model`: a bundle folder (its ECG
    encoder as `e2r.bundle.load_ecg_encoder` gives it: ONNX Runtime when the bundle has a graph), an
    ECGGraph, a LoadedModel or an Echo2ECG. Unreadable ECGs are left out, each with a logged warning."""
    if array not in ARRAYS:
        raise ConfigError(f"array={array!r} is not one of {', '.join(ARRAYS)}")
    if isinstance(model, (str, Path)):
        from e2r.bundle import load_ecg_encoder

        model = load_ecg_encoder(model)
    vectors, ids = [], []
    for rows, skipped in embed_ecg_batches(list_ecgs(paths), model, batch_size):
        for path, reason in skipped:
            log.warning("skipped %s", reason)
        vectors += [getattr(r, array) for r in rows]
        ids += [r.path for r in rows]
    dim = _dims(model)[array]
    return (np.stack(vectors) if vectors else np.zeros((0, dim), np.float32)), ids


def write_embeddings(inputs: str | Path | Sequence[str | Path], model: Any, out: str | Path,
                     batch_size: int = 64, overwrite: bool = False, progress: bool = False,
                     checkpoint_s: float = CHECKPOINT_S) -> EmbedSummary:
    """Embed ECGs into `out` (.npz) and its sidecars (module docstring), reusing the rows of an
    existing `out` whose fingerprint, model hash and e2r version match. `model` is an ECG encoder
    from `e2r.bundle.load_ecg_encoder` or a LoadedModel (its hash is recorded). ConfigError for an
    `out` that cannot be written, or that exists and was made by another model (unless
    `overwrite`); E2RError when no ECG could be read."""
    from e2r.progress import progress_bar

    out = Path(out)
    files = sidecar_paths(out)
    if out.suffix != ".npz":
        raise ConfigError(f"--out {out}: must end in .npz (the embeddings file; sidecars go beside it)")
    if batch_size < 1:
        raise ConfigError(f"--batch-size {batch_size}: must be >= 1")
    _check_writable(out)
    paths = list_ecgs(inputs)
    meta = _meta(model)
    previous = {} if overwrite else _read_previous(out, meta)
    done: dict[str, EmbeddedECG] = {}
    for path in paths:
        row = previous.get(path)
        if row is not None and row.fingerprint and row.fingerprint == fingerprint(path):
            done[path] = row
    reused = len(done)
    todo = [p for p in paths if p not in done]
    skipped: list[tuple[str, str]] = []
    last_save = time.monotonic()
    with progress_bar(total=len(todo), desc="embedding", unit="ecg", disable=not progress) as bar:
        for rows, bad in embed_ecg_batches(todo, model, batch_size):
            done.update((r.path, r) for r in rows)
            skipped += bad
            bar.update(len(rows) + len(bad))
            if time.monotonic() - last_save >= checkpoint_s and len(done) < len(paths):
                _write_npz(out, [done[p] for p in paths if p in done], meta | {"complete": False})
                last_save = time.monotonic()
    rows = [done[p] for p in paths if p in done]
    _write_csv(files["errors"], ("path", "reason"), skipped)
    if not rows:
        raise E2RError(f"no readable ECG among {len(paths)} records; the reasons are in {files['errors']}")
    _write_npz(out, rows, meta | {"complete": True})
    _write_csv(files["ids"], ("row", *ROW_COLUMNS),
               [(i, *(getattr(r, c) for c in ROW_COLUMNS)) for i, r in enumerate(rows)])
    meta_text = json.dumps(meta | {"complete": True, "rows": len(rows)}, indent=2) + "\n"
    atomic_write(files["meta"], lambda fh: fh.write(meta_text.encode()))
    return EmbedSummary(rows=len(rows), encoded=len(rows) - reused, reused=reused, skipped=len(skipped),
                        files={k: str(v) for k, v in files.items()})


# -- helpers ---------------------------------------------------------------------------------------
def _preset(model: Any):
    return model.preset  # an ECGGraph, a LoadedModel and an Echo2ECG all carry it


def _dims(model: Any) -> dict[str, int]:
    preset = _preset(model)
    return {"embedding": preset.embed_dim, "features": preset.ecg.dim}


def _meta(model: Any) -> dict[str, Any]:
    from e2r import __version__

    preset = _preset(model)
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "e2r_version": __version__,
            "model_hash": getattr(model, "hash", None),
            "model_path": str(Path(model.path).resolve()) if getattr(model, "path", None) else None,
            "preset": preset.name, "ecg_preprocess": asdict(preset.ecg_preprocess),
            "arrays": ARRAYS, "dims": _dims(model), "columns": list(ROW_COLUMNS)}


def _check_writable(out: Path) -> None:
    """ConfigError now, before any ECG is encoded, when `out` cannot be written."""
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; give a file name ending in .npz")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write there ({one_line(exc)}); choose another path") from exc


def _read_previous(out: Path, meta: dict[str, Any]) -> dict[str, EmbeddedECG]:
    """The rows of an existing `out` that this model can reuse, by path."""
    if not out.exists():
        return {}
    try:
        with np.load(out, allow_pickle=False) as data:
            old_meta = json.loads(str(data["meta"]))
            arrays = {k: data[k] for k in (*ARRAYS, *ROW_COLUMNS)}
        if old_meta.get("format") != FORMAT:
            raise ValueError(f"format {old_meta.get('format')!r}")
    except Exception as exc:  # noqa: BLE001  (any unreadable file gets the same answer)
        raise ConfigError(f"--out {out}: exists and is not an e2r embeddings file ({one_line(exc)}); "
                          "pass --overwrite to replace it, or choose another --out") from exc
    if old_meta.get("model_hash") != meta["model_hash"]:
        raise ConfigError(f"--out {out}: was made by model {old_meta.get('model_hash')}, not this model "
                          f"({meta['model_hash']}); pass --overwrite to replace it, or choose another --out")
    if old_meta.get("e2r_version") != meta["e2r_version"] or old_meta.get("format_version") != FORMAT_VERSION:
        log.info("%s: written by e2r %s; every ECG is encoded again", out, old_meta.get("e2r_version"))
        return {}
    return {str(p): EmbeddedECG(str(p), str(rec), float(fs), float(dur), str(fp), f, z)
            for p, rec, fs, dur, fp, f, z in zip(*(arrays[c] for c in ROW_COLUMNS),
                                                  arrays["features"], arrays["embedding"])}


def _write_npz(out: Path, rows: list[EmbeddedECG], meta: dict[str, Any]) -> None:
    dims = meta["dims"]
    arrays: dict[str, np.ndarray] = {
        name: (np.stack([getattr(r, name) for r in rows]).astype(np.float32) if rows
               else np.zeros((0, dims[name]), np.float32)) for name in ARRAYS}
    arrays["path"] = np.array([r.path for r in rows], dtype=str)
    arrays["record"] = np.array([r.record for r in rows], dtype=str)
    arrays["fs"] = np.array([r.fs for r in rows], dtype=np.float64)
    arrays["duration_s"] = np.array([r.duration_s for r in rows], dtype=np.float64)
    arrays["fingerprint"] = np.array([r.fingerprint for r in rows], dtype=str)
    arrays["meta"] = np.array(json.dumps(meta | {"rows": len(rows)}))
    atomic_write(out, lambda fh: np.savez(fh, **arrays))


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write(path, lambda fh: fh.write(buf.getvalue().encode("utf-8", "surrogateescape")))
