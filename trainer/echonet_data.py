"""EchoNet-Dynamic as echo-tower pretraining data (`e2r train-echo --data ECHONET_DIR`).

The folder holds `FileList.csv` and `Videos/<FileName>.avi` (e2r.datasets.echonet). Each video is
its own study (EchoNet-Dynamic has one A4C video per patient visit); its targets are EF -> lvef,
EDV -> lvedv, ESV -> lvesv; the tower's other fields have no value and are left out. The splits
are FileList's own (TRAIN -> train, VAL -> val; TEST is never read). The videos are decoded with
`e2r.echo.avi.decode_avi` using the echo encoder's `decode_kwargs()` — the same frame sampling,
grey conversion and size as DICOM cine loops — into the same kind of memory-mapped cache
(trainer.cache). A video that is missing or does not decode is skipped and counted.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from e2r.errors import DataError
from trainer.config import TrainConfig
from trainer.echo_data import build_echo_data

log = logging.getLogger(__name__)

# FileList column -> e2r phenotype field (same units: %, mL).
ECHONET_FIELDS = {"ef": "lvef", "edv": "lvedv", "esv": "lvesv"}


def echonet_filelist(data: str | Path) -> Optional[Path]:
    """FileList.csv when `data` is an EchoNet-Dynamic folder (or that file itself), else None."""
    data = Path(data)
    if data.is_dir() and (data / "FileList.csv").is_file():
        return data / "FileList.csv"
    if data.is_file() and data.name.lower() == "filelist.csv":
        return data
    return None


def load_echonet_data(config: TrainConfig, echo_cfg: Any, fields: Sequence[str], min_studies: int):
    """EchoData (trainer.echo_data) for an EchoNet-Dynamic folder: decode the TRAIN/VAL
    videos once into the cache, build the targets. DataError when too few videos remain."""
    from e2r.datasets.echonet import ECHONET_VIEW, scan_filelist, video_path
    from e2r.echo.avi import decode_avi
    from trainer.cache import build_cached_array, cache_key

    filelist = echonet_filelist(config.data)
    root = filelist.parent
    if config.phenotypes or config.archive:
        log.warning("%s: EchoNet-Dynamic folder; its FileList.csv carries the labels and Videos/ the videos, "
                    "so --phenotypes / --archive are not used", root)
    videos, bad_rows = scan_filelist(filelist)
    for err in bad_rows[:5]:
        log.warning("skipped row %s", err.message)
    if len(bad_rows) > 5:
        log.warning("... and %d more bad rows in %s", len(bad_rows) - 5, filelist)
    used = [v for v in videos if v.split in ("train", "val")]
    paths = [str(video_path(root, v)) for v in used]
    kw = echo_cfg.decode_kwargs()
    settings = {"reader": "avi", **{k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()}}
    decoded = build_cached_array(config.resolved_cache_dir, "videos", cache_key(settings, paths), paths,
                                 functools.partial(decode_avi, **kw), None, np.uint8, workers=config.workers,
                                 progress=config.progress, desc="decoding AVI videos")
    missing = sum(1 for i in decoded.failed if not Path(paths[i]).is_file())
    if decoded.failed:
        first = decoded.failed[min(decoded.failed)]
        log.warning("%d of %d videos skipped (%d missing, %d undecodable); first: %s", len(decoded.failed),
                    len(paths), missing, len(decoded.failed) - missing, first)

    wanted = list(ECHONET_FIELDS.values())
    targets = tuple(f for f in fields if f in wanted)
    if not targets:
        raise DataError(f"{filelist}: EchoNet-Dynamic labels only {', '.join(wanted)}; none of the requested "
                        f"fields ({', '.join(fields)}) can be learnt from it")
    values, labelled = {}, {"train": [], "val": []}
    unlabelled = 0
    for i, v in enumerate(used):
        if i in decoded.failed:
            continue
        vals = {ECHONET_FIELDS[k]: getattr(v, k) for k in ECHONET_FIELDS}
        if all(vals[f] is None for f in targets):
            unlabelled += 1
            continue
        values[v.file_name] = vals
        labelled[v.split].append((v.file_name, [i]))
    n_train, n_val = len(labelled["train"]), len(labelled["val"])
    if n_train < min_studies:
        raise DataError(f"{filelist}: {n_train} TRAIN videos with a label that decode; echo pretraining needs at "
                        f"least {min_studies} (--min-studies); check that Videos/ holds the FileList's videos")
    if n_val < 2:
        raise DataError(f"{filelist}: {n_val} VAL videos with a label that decode; need at least 2 "
                        "(FileList's Split column selects them)")
    summary = {"echonet": str(root), "filelist_rows": len(videos) + len(bad_rows), "bad_rows": len(bad_rows),
               "test_videos_not_read": sum(v.split == "test" for v in videos), "failed_videos": len(decoded.failed),
               "missing_videos": missing, "unlabelled": unlabelled, "view": ECHONET_VIEW}
    view_of = {i: ECHONET_VIEW for i in range(len(used))}
    return build_echo_data(decoded.array, labelled, values, targets, view_of, summary)
