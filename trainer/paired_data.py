"""Paired training data: pairs CSV + echo archive -> cached arrays -> a torch Dataset.

`load_paired_data(config, preset)` reads the pairs CSV (see e2r.phenotypes for the schema), maps
each study UID to its videos with e2r.echo.scan_archive, reads and preprocesses every ECG once
and decodes every video once into memory-mapped caches (trainer.cache). Rows whose ECG
record or echo study is missing or unreadable are counted in the DataSummary and left out;
training refuses with DataError when fewer than `min_pairs` training pairs remain.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from e2r.errors import DataError
from e2r.pairs import PairRow, read_pairs  # noqa: F401  (read_pairs is part of this module's API)
from trainer.config import TrainConfig
from trainer.cache import build_cached_array, cache_key, decode_for_cache, read_for_cache

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Pair:
    """One usable pair: row of the ECG cache, rows of the video cache (this study's videos)."""

    ecg_row: int
    video_rows: tuple[int, ...]
    study_uid: str
    patient_id: str
    ecg_path: str


@dataclass(frozen=True)
class DataSummary:
    """What was used and what was left out, and why (stored in the bundle)."""

    pairs_csv: str
    archive: str
    rows: int
    unpaired_rows: int
    test_rows: int
    missing_ecg: int
    unreadable_ecg: int
    missing_study: int
    no_video: int
    failed_videos: int
    train_pairs: int
    val_pairs: int
    val_source: str                  # "csv" or "held out from train (N patients)"
    studies: int
    videos: int
    examples: tuple[str, ...] = ()   # the first few reasons, one line each

    @property
    def skipped(self) -> int:
        """Paired train/val rows left out."""
        return self.missing_ecg + self.unreadable_ecg + self.missing_study + self.no_video

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        d = asdict(self)
        d["examples"] = list(self.examples)
        d["skipped"] = self.skipped
        return d


@dataclass(frozen=True)
class PairedData:
    """Cached arrays and the usable pairs split into train and val."""

    ecg: np.ndarray                  # (n_ecg, 12, N) float32, memory-mapped
    videos: Optional[np.ndarray]     # (n_videos, F, H, W[, 3]) uint8, memory-mapped (trainable echo)
    view_emb: Optional[np.ndarray]   # (n_videos, E) float32 (frozen echo encoder)
    train: tuple[Pair, ...]
    val: tuple[Pair, ...]
    summary: DataSummary = field(compare=False)
    phenotypes: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False, repr=False)


def resolve_inputs(data: str | Path, archive: str | Path | None) -> tuple[Path, Path]:
    """(pairs CSV, archive root) from `--data` (cohort folder or CSV) and `--archive`."""
    data = Path(data)
    if data.is_dir():
        csv_path = data / "pairs.csv"
        if not csv_path.exists():
            raise DataError(f"{data}: no pairs.csv in this folder; pass the pairs CSV with --data")
        root = Path(archive) if archive else data / "echo"
    elif data.exists():
        csv_path = data
        root = Path(archive) if archive else data.parent / "echo"
    else:
        raise DataError(f"--data {data}: no such file or folder; give a cohort folder or a pairs CSV")
    if not root.is_dir():
        raise DataError(f"echo archive {root}: not a folder; point --archive at the DICOM archive")
    return csv_path, root


def _ecg_exists(path: str) -> bool:
    p = Path(path)
    return p.exists() or p.with_name(p.name + ".hea").exists()


def training_videos(rows: list[PairRow], studies: dict[str, Any]) -> list[str]:
    """Sorted video paths of every archive study the pairs CSV puts outside the test split.

    Echo pretraining and alignment both cache exactly this list, so the videos are decoded once
    for both; no study of a test row is in it.
    """
    test = {r.study_uid for r in rows if r.split == "test"}
    uids = {r.study_uid for r in rows if r.split != "test"} - test
    return sorted({str(v.path) for u in uids if u in studies for v in studies[u].videos})


def load_phenotypes_for(config: TrainConfig, csv_path: Path) -> dict[str, dict[str, Any]]:
    """The phenotype rows of --phenotypes, or of phenotypes.csv beside the pairs CSV; {} when
    neither exists (validation then has no phenotype-aware figures)."""
    from e2r.phenotypes import read_phenotypes

    path = Path(config.phenotypes) if config.phenotypes else csv_path.parent / "phenotypes.csv"
    if not path.is_file():
        if config.phenotypes:
            raise DataError(f"--phenotypes {path}: no such file; give the phenotype CSV of the studies")
        log.warning("no phenotype CSV at %s: validation reports exact-pair retrieval only", path)
        return {}
    rows, errors = read_phenotypes(path)
    for err in errors[:5]:
        log.warning("phenotype row skipped: %s", err.message)
    return rows


def decoded_video_cache(config: TrainConfig, echo_cfg: Any, paths: list[str]):
    """The memory-mapped cache of these videos decoded with the echo encoder's settings."""
    kw = echo_cfg.decode_kwargs()
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()}
    return build_cached_array(
        config.resolved_cache_dir, "videos", cache_key(settings, paths), paths,
        functools.partial(decode_for_cache, **kw), None, np.uint8, workers=config.workers,
        progress=config.progress, desc="decoding videos")


def load_paired_data(config: TrainConfig, preset: Any, embedder: Any = None,
                     encoder_id: Optional[str] = None) -> PairedData:
    """Build the cached, split data set for a run (see module doc).

    `embedder`: for a frozen echo encoder, the model whose `embed_videos` fills a per-video
    embedding cache instead of a decoded-video cache; `encoder_id` names its weights in the
    cache key (default: a hash of the video encoder's weights).
    """
    from e2r.echo import scan_archive

    csv_path, root = resolve_inputs(config.data, config.archive)
    rows = read_pairs(csv_path)
    phenotypes = load_phenotypes_for(config, csv_path)
    counts: Counter[str] = Counter()
    examples: list[str] = []

    def skip(kind: str, msg: str) -> None:
        counts[kind] += 1
        if len(examples) < 5:
            examples.append(msg)

    scan = scan_archive(root, progress=config.progress, group_by=config.group_by)
    studies = {s.study_uid: s for s in scan.studies}
    candidates: list[tuple[PairRow, Any]] = []
    for row in rows:
        if not row.ecg_path:
            counts["unpaired"] += 1
            continue
        if row.split == "test":
            counts["test"] += 1
            continue
        study = studies.get(row.study_uid)
        if not _ecg_exists(row.ecg_path):
            skip("missing_ecg", f"{csv_path.name} line {row.line}: ECG record {row.ecg_path} not found")
        elif study is None:
            skip("missing_study", f"{csv_path.name} line {row.line}: study {row.study_uid} not in {root}")
        elif not study.videos:
            skip("no_video", f"{csv_path.name} line {row.line}: study {row.study_uid} has no video")
        else:
            candidates.append((row, study))

    cache_dir = config.resolved_cache_dir
    ecg_paths = sorted({row.ecg_path for row, _ in candidates})
    pp = preset.ecg_preprocess
    ecg_cache = build_cached_array(
        cache_dir, "ecg", cache_key({"preprocess": asdict(pp)}, ecg_paths), ecg_paths,
        functools.partial(read_for_cache, preprocess_cfg=pp), None, np.float32,
        workers=config.workers, progress=config.progress, desc="reading ECGs")
    ecg_row = {p: i for i, p in enumerate(ecg_paths)}

    video_paths = training_videos(rows, studies)
    videos, view_emb, video_failed = _cache_videos(config, preset, video_paths, embedder, encoder_id)
    video_row = {p: i for i, p in enumerate(video_paths)}

    by_split: dict[str, list[Pair]] = {"train": [], "val": []}
    for row, study in candidates:
        i = ecg_row[row.ecg_path]
        if i in ecg_cache.failed:
            skip("unreadable_ecg", f"{csv_path.name} line {row.line}: {ecg_cache.failed[i]}")
            continue
        vrows = tuple(video_row[str(v.path)] for v in study.videos
                      if video_row[str(v.path)] not in video_failed)
        if not vrows:
            skip("no_video", f"{csv_path.name} line {row.line}: no video of study "
                             f"{row.study_uid} decodes")
            continue
        split = row.split if row.split in by_split else "train"
        by_split[split].append(Pair(i, vrows, row.study_uid, row.patient_id, row.ecg_path))

    train, val, val_source = _split(by_split["train"], by_split["val"], config)
    summary = DataSummary(
        pairs_csv=str(csv_path), archive=str(root), rows=len(rows),
        unpaired_rows=counts["unpaired"], test_rows=counts["test"],
        missing_ecg=counts["missing_ecg"], unreadable_ecg=counts["unreadable_ecg"],
        missing_study=counts["missing_study"], no_video=counts["no_video"],
        failed_videos=len(video_failed), train_pairs=len(train), val_pairs=len(val),
        val_source=val_source, studies=len({p.study_uid for p in (*train, *val)}),
        videos=len(video_paths) - len(video_failed), examples=tuple(examples))
    for msg in examples:
        log.warning("left out: %s", msg)
    if summary.skipped:
        log.warning("%d of %d paired rows left out (%d ECG missing, %d ECG unreadable, %d study "
                    "missing, %d without a decodable video)", summary.skipped,
                    summary.skipped + len(train) + len(val), summary.missing_ecg,
                    summary.unreadable_ecg, summary.missing_study, summary.no_video)
    if len(train) < config.min_pairs:
        raise DataError(
            f"{csv_path}: only {len(train)} usable training pairs remain ({summary.skipped} rows "
            f"left out: {summary.missing_ecg} ECG records missing, {summary.unreadable_ecg} "
            f"unreadable, {summary.missing_study} studies not in {root}, {summary.no_video} "
            f"without a decodable video); need at least {config.min_pairs} (--min-pairs)")
    if len(val) < 2:
        raise DataError(f"{csv_path}: only {len(val)} validation pairs; need at least 2 "
                        "(add rows with split=val or more patients)")
    return PairedData(ecg_cache.array, videos, view_emb, tuple(train), tuple(val), summary, phenotypes)


def _cache_videos(config: TrainConfig, preset: Any, paths: list[str], embedder: Any, encoder_id: Optional[str]):
    if embedder is None:
        cached = decoded_video_cache(config, preset.echo, paths)
        return cached.array, None, cached.failed
    from trainer.cache import build_embedding_cache, embed_cached_videos

    if preset.echo.kind == "video":
        # Small frames: decode into the shared cache with workers, then embed in batches.
        decoded = decoded_video_cache(config, preset.echo, paths)
        cached = embed_cached_videos(config.resolved_cache_dir, decoded, embedder.video_encoder, preset.echo,
                                     encoder_id, progress=config.progress)
        return None, cached.array, cached.failed
    kw = preset.echo.decode_kwargs()
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()}
    cached = build_embedding_cache(config.resolved_cache_dir, settings, paths,
                                   functools.partial(decode_for_cache, **kw), embedder,
                                   progress=config.progress)
    return None, cached.array, cached.failed


def _split(train: list[Pair], val: list[Pair], config: TrainConfig):
    if val:
        return train, val, "csv"
    patients = sorted({p.patient_id for p in train})
    rng = np.random.default_rng(config.seed)
    n_val = max(1, int(round(config.val_fraction * len(patients)))) if len(patients) > 1 else 0
    held = set(rng.permutation(patients)[:n_val].tolist())
    return ([p for p in train if p.patient_id not in held], [p for p in train if p.patient_id in held],
            f"held out from train ({len(held)} patients)")
