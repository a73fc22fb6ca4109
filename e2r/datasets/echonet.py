"""EchoNet-Dynamic's `FileList.csv`: one row per apical-4-chamber video in `Videos/<FileName>.avi`.

Columns (EchoNet-Dynamic 1.0, as its own loader reads them): `FileName, EF, ESV, EDV,
FrameHeight, FrameWidth, FPS, NumberOfFrames, Split` with Split in TRAIN/VAL/TEST. FileName has
no `.avi` (a trailing `.avi`, as a few copies have, is tolerated). EF is in %, ESV/EDV in mL —
the same units as e2r's phenotype fields lvef / lvesv / lvedv.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from e2r.datasets.columns import read_rows
from e2r.errors import DataError
from e2r.phenotypes import parse_number

log = logging.getLogger(__name__)

FILELIST_COLUMNS = ("FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split")
# FileList's Split -> e2r's split names.
SPLIT_NAMES = {"TRAIN": "train", "VAL": "val", "TEST": "test"}
# EchoNet-Dynamic is single-view: every video is an apical 4-chamber loop.
ECHONET_VIEW = "A4C"


@dataclass(frozen=True)
class EchoNetVideo:
    """One FileList.csv row."""

    file_name: str          # FileName without `.avi`; the video is Videos/<file_name>.avi
    ef: Optional[float]     # ejection fraction, % (e2r's lvef)
    esv: Optional[float]    # end-systolic volume, mL (lvesv)
    edv: Optional[float]    # end-diastolic volume, mL (lvedv)
    fps: float              # frames per second
    n_frames: int           # NumberOfFrames
    height: int             # FrameHeight, pixels
    width: int              # FrameWidth, pixels
    split: str              # 'train' / 'val' / 'test'


@dataclass(frozen=True)
class FileListRowError:
    """One FileList.csv row that could not be used, with its 1-based line number."""

    line: int
    message: str


def scan_filelist(path: str | Path) -> tuple[list[EchoNetVideo], list[FileListRowError]]:
    """Read FileList.csv into videos and bad rows (returned, not raised).

    A missing file, or a missing/renamed column, is a DataError naming the file, the column and
    the columns found.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: EchoNet-Dynamic FileList.csv not found; give the dataset folder that holds "
                        "FileList.csv and Videos/")
    videos: list[EchoNetVideo] = []
    errors: list[FileListRowError] = []
    seen: set[str] = set()
    for line, raw in read_rows(path, FILELIST_COLUMNS,
                               expected=f"EchoNet-Dynamic's FileList.csv columns {', '.join(FILELIST_COLUMNS)}"):
        try:
            video = _row(raw)
            if video.file_name in seen:
                raise ValueError(f"FileName {video.file_name!r} appears twice")
            seen.add(video.file_name)
            videos.append(video)
        except ValueError as err:
            errors.append(FileListRowError(line, f"{path}:{line}: {err}"))
    return videos, errors


def read_filelist(path: str | Path) -> list[EchoNetVideo]:
    """The usable rows of an EchoNet-Dynamic FileList.csv; bad rows are logged with their line
    and counted (use `scan_filelist` to get them)."""
    videos, errors = scan_filelist(path)
    if errors:
        log.warning("%s: %d row(s) skipped; first: %s", path, len(errors), errors[0].message)
    return videos


def video_path(root: str | Path, video: EchoNetVideo) -> Path:
    """Where a FileList row's video lives under the dataset folder."""
    return Path(root) / "Videos" / f"{video.file_name}.avi"


def _row(raw: dict) -> EchoNetVideo:
    name = (raw.get("FileName") or "").strip()
    if name.lower().endswith(".avi"):
        name = name[:-4]
    if not name or "/" in name or "\\" in name:
        raise ValueError(f"FileName {name!r} is not a video name")
    split_text = (raw.get("Split") or "").strip().upper()
    if split_text not in SPLIT_NAMES:
        raise ValueError(f"Split {raw.get('Split')!r} is not one of {', '.join(SPLIT_NAMES)}")
    fps = _number(raw, "FPS", required=True)
    if fps <= 0:
        raise ValueError(f"FPS={fps} is not positive")
    return EchoNetVideo(
        file_name=name,
        ef=_number(raw, "EF"),
        esv=_number(raw, "ESV"),
        edv=_number(raw, "EDV"),
        fps=fps,
        n_frames=_integer(raw, "NumberOfFrames"),
        height=_integer(raw, "FrameHeight"),
        width=_integer(raw, "FrameWidth"),
        split=SPLIT_NAMES[split_text],
    )


def _number(raw: dict, column: str, required: bool = False) -> Optional[float]:
    value = parse_number((raw.get(column) or "").strip(), column)
    if value is None and required:
        raise ValueError(f"{column} is empty")
    return value


def _integer(raw: dict, column: str) -> int:
    value = _number(raw, column, required=True)
    if value != int(value) or value <= 0:
        raise ValueError(f"{column}={value:g} is not a positive whole number")
    return int(value)
