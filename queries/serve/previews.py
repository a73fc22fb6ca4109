"""Animated previews of indexed cine loops, made once and cached on disk.

A preview is found by study UID and video number only: the UID becomes the point ID the index
uses, the point's payload names the file (relative to the archive root the server was started
with), and the resolved file must lie inside that root. No text from a request is ever joined
into a path; the cache file is named by a hash.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from e2r.errors import E2RError

log = logging.getLogger(__name__)

PREVIEW_PX = 128      # preview height and width
MAX_FPS = 30.0        # faster loops are played in real time with every n-th frame
MAX_FRAMES = 60       # at most ~2 s of loop per preview
_VERSION = "1"        # part of the cache key: change it when the preview encoding changes
WEBP_QUALITY = 70     # lossy animated WebP: 5-10x smaller than GIF for cine loops, encoded once


class PreviewNotFound(E2RError):
    """No preview can exist for this study/video (unknown study, no such video, no file kept)."""


@dataclass(frozen=True)
class Preview:
    """A preview image: its bytes, media type, and whether it came from the cache."""

    data: bytes
    media_type: str
    cached: bool
    ms: float


class PreviewCache:
    """Makes and caches previews for one collection of an open store."""

    def __init__(self, store: Any, collection: str, archive_root: Optional[Path], cache_dir: Path):
        self.store = store
        self.collection = collection
        self.archive_root = Path(archive_root).resolve() if archive_root else None
        self.cache_dir = Path(cache_dir)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def payload(self, study_uid: str) -> dict[str, Any]:
        """The indexed payload of a study; PreviewNotFound when the collection has no such study."""
        from e2r.store import point_id_for

        try:
            records = self.store.retrieve(self.collection, [point_id_for(study_uid)])
        except E2RError:
            records = []
        if not records:
            raise PreviewNotFound(f"study {study_uid!r} is not in collection {self.collection!r}")
        return records[0].payload

    def get(self, study_uid: str, n: int) -> Preview:
        """The animated preview of video `n` of a study (made on the first request, then cached)."""
        import time

        t0 = time.perf_counter()
        payload = self.payload(study_uid)
        paths = payload.get("source_paths")
        n_videos = int(payload.get("n_videos") or len(paths or ()))
        if not 0 <= n < n_videos:
            raise PreviewNotFound(f"study {study_uid!r} has {n_videos} videos; ask for 0..{n_videos - 1}")
        if not paths:
            raise PreviewNotFound(f"study {study_uid!r} was indexed without file paths (--no-paths); "
                                  "no preview can be made")
        if self.archive_root is None:
            raise PreviewNotFound("previews need the archive: start `e2r serve` with --archive ARCHIVE_ROOT")
        fmt = preview_format()
        key = hashlib.sha256(f"{study_uid}|{n}|{payload.get('fingerprint')}|{fmt}|{_VERSION}".encode()).hexdigest()[:32]
        target = self.cache_dir / f"{key}.{fmt}"
        with self._lock(key):
            if target.is_file():
                return Preview(target.read_bytes(), f"image/{fmt}", True, (time.perf_counter() - t0) * 1000)
            data = make_preview(self._resolve(paths[n], study_uid, n), fmt)
            from e2r.util import atomic_write

            self.cache_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(target, lambda fh: fh.write(data))
        return Preview(data, f"image/{fmt}", False, (time.perf_counter() - t0) * 1000)

    def _resolve(self, rel: str, study_uid: str, n: int) -> Path:
        """The video's file inside the archive root (a path that leaves the root is refused)."""
        path = (self.archive_root / rel).resolve()
        if not path.is_relative_to(self.archive_root) or not path.is_file():
            raise PreviewNotFound(f"study {study_uid!r} video {n}: its file is not in the archive this server "
                                  "was started with (moved, deleted, or another --archive)")
        return path

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())


def preview_format() -> str:
    """"webp" (animated, lossy) when this Pillow can write it, else "gif"."""
    from PIL import features

    return "webp" if features.check("webp") else "gif"


def make_preview(path: Path, fmt: str = "webp") -> bytes:
    """An endlessly looping grey animation of the cine loop at its own frame rate (at most MAX_FPS)."""
    from PIL import Image

    from e2r.echo import decode_video, read_video_header

    info = read_video_header(path)
    src_fps = info.fps or MAX_FPS
    fps = min(src_fps, MAX_FPS)
    n_frames = max(1, min(MAX_FRAMES, math.ceil(info.n_frames * fps / src_fps)))
    frames = decode_video(info, n_frames=n_frames, size=(PREVIEW_PX, PREVIEW_PX),
                          fps=fps if info.fps else None, color="grey")  # (F, H, W) uint8
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    if fmt == "webp":
        images[0].save(buf, format="WEBP", save_all=True, append_images=images[1:], duration=int(round(1000.0 / fps)),
                       loop=0, quality=WEBP_QUALITY, method=2)
    else:
        # GIF delays are in 10 ms steps (browsers slow delays under 20 ms to 100 ms): round the
        # frames' start times, not each delay, so the loop keeps real time (30 fps: 30, 30, 40 ms ...).
        starts = [int(round(i * 100.0 / fps)) * 10 for i in range(len(images) + 1)]
        durations = [max(20, b - a) for a, b in zip(starts, starts[1:])]
        images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0,
                       optimize=False, disposal=1)
    return buf.getvalue()


def archive_is_synthetic(archive_root: Optional[Path]) -> bool:
    """Whether the archive is a phantom cohort (`e2r synth` writes manifest.json with synthetic: true)."""
    import json

    if archive_root is None:
        return False
    for folder in (Path(archive_root), Path(archive_root).parent):
        manifest = folder / "manifest.json"
        try:
            if manifest.is_file() and json.loads(manifest.read_text()).get("synthetic") is True:
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False
