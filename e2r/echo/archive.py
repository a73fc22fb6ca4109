"""Scan a DICOM folder tree (any layout) into echo studies of videos, reading headers only.

`scan_archive` never stops at a bad file: anything that is not a multi-frame ultrasound video is
skipped and counted by reason (the header of one file: e2r.echo.header).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

from e2r.echo.header import VideoInfo, read_video_header
from e2r.errors import DataError, DicomReadError
from e2r.util import one_line, sniff_dicom

log = logging.getLogger(__name__)

# How videos become studies: by DICOM StudyInstanceUID (default) or by the folder holding them.
GROUP_BY = ("uid", "folder")


@dataclass(frozen=True)
class StudyInfo:
    """One echo study: its videos (sorted by path) and the IDs they share."""

    study_uid: str
    patient_id: str
    study_date: str              # YYYYMMDD or ""
    videos: tuple[VideoInfo, ...]

    @property
    def views(self) -> tuple[str, ...]:
        """View label of each video, in video order; "unknown" where the file names none."""
        return tuple(v.view or "unknown" for v in self.videos)


@dataclass(frozen=True)
class ArchiveScan:
    """What a scan found: studies sorted by UID, and what it skipped and why."""

    studies: tuple[StudyInfo, ...]
    skipped: dict[str, int]                       # reason -> number of files
    skipped_files: tuple[tuple[str, str, str], ...]  # (path, reason, one-line message)
    n_files: int                                  # files looked at

    @property
    def n_videos(self) -> int:
        """Number of videos in all studies."""
        return sum(len(s.videos) for s in self.studies)


def is_dicom_file(path: Union[str, Path]) -> bool:
    """True when the file looks like DICOM by its content (reads at most 132 bytes)."""
    return sniff_dicom(Path(path))[0]


def scan_archive(root: Union[str, Path], progress: bool = False, workers: int = 1,
                 group_by: str = "uid") -> ArchiveScan:
    """Scan a folder tree (any layout, any file names) for echo videos, reading headers only.

    Videos are grouped by StudyInstanceUID (`group_by="uid"`), or by the folder that holds them
    (`group_by="folder"`, for archives whose UIDs are not one per study folder): the study key is
    then the folder's name (MIMIC-IV-ECHO's `s{study_id}`), with `~` and 8 hex digits of its path
    relative to `root` appended where two folders share a name; `missing_uid` then does not apply.
    Files that are not videos are skipped and counted by reason (`empty_file`, `not_dicom`,
    `corrupt`, `structured_report`, `other_modality`, `not_video`, `single_frame`, `missing_uid`
    for a video without StudyInstanceUID, `duplicate` for a second file with an already-seen
    SOPInstanceUID, `unreadable`). Hidden files and
    folders (names starting with ".") are ignored. `workers` > 1 reads headers in threads (helps
    on network file systems). Raises DataError only when `root` is not a folder.
    """
    root = Path(root)
    if group_by not in GROUP_BY:
        raise DataError(f"--group-by {group_by!r}: must be one of {', '.join(GROUP_BY)}")
    if not root.is_dir():
        raise DataError(f"{root}: is not a folder; pass the folder that holds the echo DICOM files.")
    files = list(_walk(root))
    results: Iterator[tuple[str, Optional[VideoInfo], Optional[DicomReadError]]]
    if workers > 1:
        pool = ThreadPoolExecutor(max_workers=workers)
        results = pool.map(_read_one, files)
    else:
        pool, results = None, map(_read_one, files)
    if progress:
        from e2r.progress import progress_bar

        results = progress_bar(results, total=len(files), desc="scanning", unit="file")
    videos: list[VideoInfo] = []
    skipped: list[tuple[str, str, str]] = []
    seen_sop: dict[str, str] = {}
    try:
        for path, info, err in results:
            if err is not None:
                skipped.append((path, err.reason, str(err)))
            elif info is not None and not info.study_uid and group_by == "uid":
                skipped.append((path, "missing_uid", f"{path}: video has no StudyInstanceUID; "
                                "it cannot be grouped into a study, fix the file's tags."))
            elif info is not None and info.sop_uid and info.sop_uid in seen_sop:
                skipped.append((path, "duplicate", f"{path}: same SOPInstanceUID as "
                                f"{seen_sop[info.sop_uid]}; the copy is ignored."))
            elif info is not None:
                seen_sop[info.sop_uid] = path
                videos.append(info)
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    counts = Counter(reason for _, reason, _ in skipped)
    if skipped:
        log.info("scan of %s: %d videos, skipped %s", root, len(videos), dict(counts))
    return ArchiveScan(
        studies=_group(videos, folder_keys(root, videos) if group_by == "folder" else None),
        skipped=dict(sorted(counts.items())),
        skipped_files=tuple(skipped),
        n_files=len(files),
    )


def _walk(root: Path) -> Iterator[str]:
    """All regular files under root in a stable order, skipping hidden files and folders."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield os.path.join(dirpath, name)


def _read_one(path: str) -> tuple[str, Optional[VideoInfo], Optional[DicomReadError]]:
    try:
        return path, read_video_header(path), None
    except DicomReadError as err:
        return path, None, err
    except Exception as err:  # a scan must survive any malformed file; log for bug reports
        log.debug("unexpected error reading %s", path, exc_info=True)
        msg = f"{path}: cannot be read ({type(err).__name__}: {one_line(err, 120)}); skipped."
        return path, None, DicomReadError(msg, reason="unreadable")


def folder_keys(root: Path, videos: list[VideoInfo]) -> dict[str, str]:
    """{video path: study key} under `group_by="folder"` (see scan_archive)."""
    import hashlib

    folders = sorted({os.path.dirname(str(v.path)) for v in videos})
    names: dict[str, int] = {}
    for f in folders:
        names[os.path.basename(f)] = names.get(os.path.basename(f), 0) + 1
    key_of = {}
    for f in folders:
        name = os.path.basename(f)
        if names[name] > 1:
            rel = Path(os.path.relpath(f, root)).as_posix()
            name = f"{name}~{hashlib.sha1(rel.encode()).hexdigest()[:8]}"
        key_of[f] = name
    return {str(v.path): key_of[os.path.dirname(str(v.path))] for v in videos}


def _group(videos: list[VideoInfo], keys: Optional[dict[str, str]] = None) -> tuple[StudyInfo, ...]:
    by_study: dict[str, list[VideoInfo]] = {}
    for v in videos:
        by_study.setdefault(keys[str(v.path)] if keys else v.study_uid, []).append(v)
    studies = []
    for uid in sorted(by_study):
        vids = tuple(sorted(by_study[uid], key=lambda v: v.path))
        patients = {v.patient_id for v in vids if v.patient_id}
        if len(patients) > 1:
            log.warning("study %s: videos name %d different patient IDs; using the first", uid, len(patients))
        studies.append(StudyInfo(
            study_uid=uid,
            patient_id=next((v.patient_id for v in vids if v.patient_id), ""),
            study_date=next((v.study_date for v in vids if v.study_date), ""),
            videos=vids,
        ))
    return tuple(studies)
