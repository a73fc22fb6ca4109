"""Decode an AVI echo video (EchoNet-Dynamic's `Videos/*.avi`) to the same uint8 frame stack as
`e2r.echo.decode_video` gives for a DICOM cine loop.

The decoder is PyAV (the `echonet` extra): its wheel bundles FFmpeg's libraries with their codecs
(MJPEG, MPEG-4 part 2, H.264, ...), so no system ffmpeg is needed and a broken file raises a
Python exception instead of a silent empty read. Frames are sampled with the DICOM path's own
`e2r.echo.sample_indices` (frame rate from the container), converted to grey by ITU-R 601 luma
(as Pillow does for DICOM RGB), centre-cropped to the output's aspect ratio (an AVI has no
ultrasound-region tags; EchoNet's frames are already cropped to the sector) and resized bilinearly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from e2r.echo.decode import sample_indices
from e2r.errors import ConfigError, E2RError
from e2r.util import one_line


class VideoReadError(E2RError):
    """An AVI video cannot be opened or decoded. `reason`: `missing`, `no_video_stream`,
    `corrupt` or `no_decoder`."""

    def __init__(self, message: str, reason: str = "corrupt"):
        super().__init__(message)
        self.reason = reason


def _av():
    try:
        import av
    except ImportError:
        raise VideoReadError("reading AVI videos needs PyAV; install it with pip install 'e2r[echonet]' "
                             "(or pip install av)", reason="no_decoder") from None
    return av


def decode_avi(path: str | Path, n_frames: int = 16, size: tuple[int, int] = (112, 112),
               fps: Optional[float] = None, color: str = "grey", stride: Optional[int] = None) -> np.ndarray:
    """Decode `n_frames` frames of an AVI file; the arguments are those of `e2r.echo.decode_video`
    (so an echo encoder's `decode_kwargs()` apply unchanged). Returns uint8 (F, H, W) for grey or
    (F, H, W, 3) for rgb. Raises VideoReadError for a missing, empty or undecodable file."""
    mode = {"grey": "grey", "gray": "grey", "rgb": "rgb"}.get(str(color).lower())
    if mode is None:
        raise ConfigError(f"color={color!r} is not supported; use 'grey' or 'rgb'.")
    if n_frames < 1 or len(size) != 2 or min(size) < 1:
        raise ConfigError(f"n_frames={n_frames}, size={size!r}: need n_frames >= 1 and a positive (height, width).")
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"{path}: video file not found; FileList.csv names a video missing from Videos/",
                             reason="missing")
    av = _av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream in the file; re-download it", reason="no_video_stream")
            stream = container.streams.video[0]
            src_fps = float(stream.average_rate) if stream.average_rate else None
            frames, n_available = _read_frames(container, stream, n_frames, src_fps, fps, stride)
        if not frames:
            raise VideoReadError(f"{path}: the video has no decodable frame; re-download it", reason="corrupt")
        idx = sample_indices(n_available, n_frames, src_fps=src_fps, fps=fps, stride=stride)
        rgb = {int(i): frames[int(i)].to_ndarray(format="rgb24") for i in set(idx.tolist())}  # (H, W, 3) each
    except VideoReadError:
        raise
    except Exception as err:  # PyAV raises FFmpegError subclasses (OSError/ValueError) and others
        raise VideoReadError(f"{path}: cannot decode the video ({one_line(err, 120)}); the file is damaged, "
                             "re-download it", reason="corrupt") from None
    return np.stack([_grey_or_rgb(rgb[int(i)], size, mode) for i in idx])


def _read_frames(container, stream, n_frames: int, src_fps: Optional[float], fps: Optional[float],
                 stride: Optional[int]) -> tuple[list, int]:
    """(decoded frames, frame count to sample from): PyAV VideoFrames, not yet converted, from the
    start up to the last one the sampling needs, and the container's frame count; all frames and
    their number when the container does not say how many it holds, or holds fewer than it says."""
    n_hdr = int(stream.frames or 0)
    last = int(sample_indices(n_hdr, n_frames, src_fps=src_fps, fps=fps, stride=stride).max()) if n_hdr else None
    out: list = []
    for frame in container.decode(stream):
        out.append(frame)
        if last is not None and len(out) > last:
            return out, n_hdr
    return out, len(out)


def _grey_or_rgb(frame: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    from PIL import Image

    h, w = frame.shape[:2]
    aspect = size[1] / size[0]
    cw = min(w, round(h * aspect))
    ch = min(h, round(cw / aspect))
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    img = Image.fromarray(np.ascontiguousarray(frame[y0:y0 + ch, x0:x0 + cw]))
    if mode == "grey":
        img = img.convert("L")  # ITU-R 601 luma, as the DICOM path
    return np.asarray(img.resize((size[1], size[0]), Image.BILINEAR))
