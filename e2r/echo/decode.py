"""Decode an echo video to a fixed-size uint8 frame stack: sample frames, colour, crop, resize.

Only the frames that are sampled are decoded (pydicom 3 `iter_pixels(indices=...)`), which matters
for JPEG cines where each frame is a separate compressed image.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np

from e2r.echo.header import VideoInfo, read_video_header
from e2r.errors import ConfigError, DicomReadError
from e2r.util import one_line

log = logging.getLogger(__name__)

_COLORS = {"grey": "grey", "gray": "grey", "rgb": "rgb"}
_DEFLATED = "1.2.840.10008.1.2.1.99"
_JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


def sample_indices(n_available: int, n_frames: int, *, src_fps: Optional[float] = None,
                   fps: Optional[float] = None, stride: Optional[int] = None) -> np.ndarray:
    """Frame indices to take from a video of `n_available` frames.

    With `fps` and a known `src_fps`, frames are taken every `src_fps / fps` source frames
    (rounded), starting at frame 0; otherwise every `stride`-th frame (default 1). A video too
    short for `n_frames` samples is looped: indices wrap around to the start, as a cine loop
    replays (so a 10-frame video asked for 16 frames gives frames 0..9, 0..5).
    """
    if fps is not None and src_fps:
        step = src_fps / fps
    else:
        step = float(stride or 1)
    idx = np.floor(np.arange(n_frames) * step + 0.5).astype(np.int64)
    return idx % max(n_available, 1)


def decode_video(video: str | Path | VideoInfo, n_frames: int = 16, size: tuple[int, int] = (112, 112),
                 fps: Optional[float] = None, color: str = "grey", stride: Optional[int] = None) -> np.ndarray:
    """Decode `n_frames` frames of an echo video, cropped to the ultrasound region and resized.

    video: a file path or a `VideoInfo` from `read_video_header` / `scan_archive`.
    size: output (height, width).
    fps: target frame rate; frames are sampled at it from the first frame, using the file's frame
        time. stride: every `stride`-th frame (default 1), used when `fps` is None or the file
        gives no frame time (then a warning is logged).
    color: "grey" (luma, ITU-R 601) or "rgb".

    The crop is the file's ultrasound region (largest 2D region of SequenceOfUltrasoundRegions),
    else the largest centred box with the output's aspect ratio; a region of another aspect is
    padded with black (the background of an ultrasound image) rather than stretched. Short videos
    loop (see `sample_indices`). Non-8-bit data are scaled to 0..255 by the sampled frames' min/max.
    Returns uint8 (F, H, W) for grey or (F, H, W, 3) for rgb.
    Raises DicomReadError for files that are not echo videos or cannot be decoded.
    """
    mode = _COLORS.get(str(color).lower())
    if mode is None:
        raise ConfigError(f"color={color!r} is not supported; use 'grey' or 'rgb'.")
    if n_frames < 1:
        raise ConfigError(f"n_frames={n_frames} must be at least 1.")
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"size={size!r} must be (height, width) with positive values.")
    if fps is not None and fps <= 0:
        raise ConfigError(f"fps={fps} must be positive.")
    if stride is not None and stride < 1:
        raise ConfigError(f"stride={stride} must be at least 1.")

    info = video if isinstance(video, VideoInfo) else read_video_header(video)
    if fps is not None and info.fps is None:
        log.warning("%s: no frame time in the file; sampling with stride %d instead of %.3g fps",
                    info.path, stride or 1, fps)
    idx = sample_indices(info.n_frames, n_frames, src_fps=info.fps, fps=fps, stride=stride)
    wanted = sorted(set(int(i) for i in idx))
    decoded = _decode_frames(info, wanted, mode)
    frames = _to_uint8(decoded, info)                      # (K, H, W) or (K, H, W, 3)
    crop = info.region or _centre_box(info.rows, info.cols, size)
    out = np.stack([_crop_resize(f, crop, size, mode) for f in frames])
    pos = {f: k for k, f in enumerate(wanted)}
    return out[[pos[int(i)] for i in idx]]


def _decode_frames(info: VideoInfo, indices: list[int], mode: str) -> list[np.ndarray]:
    """Decode the given frames with pydicom: RGB (colour data) or (H, W) luma/grey frames.

    YBR data are decoded raw and converted here: the Y plane is the luma, and PIL's YCbCr->RGB
    is the YBR_FULL transform; this is several times faster than pydicom's numpy conversion.
    JPEG baseline is decoded with Pillow first (faster than libjpeg), other decoders as fallback.
    """
    import pydicom.pixels as px
    from pydicom.uid import UID

    ybr = info.photometric in ("YBR_FULL", "YBR_FULL_422")
    plugins = ["pillow", ""] if info.transfer_syntax == _JPEG_BASELINE else [""]
    try:
        if info.photometric == "PALETTE COLOR" or info.transfer_syntax == _DEFLATED:
            # Palette colour needs the LUT; a deflated body must be inflated by dcmread first
            # (frame-wise decoding reads the file as stored). Both decode the whole video.
            import pydicom

            ds = pydicom.dcmread(info.path)
            arr = ds.pixel_array
            if info.photometric == "PALETTE COLOR":
                arr = px.apply_color_lut(arr, ds)
            return [np.asarray(arr[i]) for i in indices]  # (F, H, W[, 3]): videos have >= 2 frames
        for k, plugin in enumerate(plugins):
            try:
                frames = list(px.iter_pixels(info.path, indices=indices, raw=ybr, decoding_plugin=plugin))
                break
            except Exception:
                if k == len(plugins) - 1:
                    raise
                log.debug("%s: %s decoder failed, trying the others", info.path, plugin, exc_info=True)
    except Exception as err:  # decoders raise many types (RuntimeError, ValueError, OSError, ...)
        ts = UID(info.transfer_syntax).name if info.transfer_syntax else "unknown transfer syntax"
        # Only a missing decoder is fixed by installing one; broken data or headers are not.
        missing = "no" in str(err).lower() and ("plugin" in str(err).lower() or "decoder" in str(err).lower()
                                              or "handler" in str(err).lower())
        advice = ("install a decoder for it (pylibjpeg, pylibjpeg-openjpeg or gdcm)" if missing
                  else "the pixel data or the header describing it is broken; re-export the file")
        raise DicomReadError(
            f"{info.path}: pixel data cannot be decoded ({ts}: {one_line(err, 150)}); {advice}.",
            reason="decode_failed") from None
    if ybr:
        if mode == "grey":
            return [np.ascontiguousarray(f[..., 0]) for f in frames]
        from PIL import Image

        return [np.asarray(Image.fromarray(np.ascontiguousarray(f), mode="YCbCr").convert("RGB"))
                for f in frames]
    return frames


def _to_uint8(frames: list[np.ndarray], info: VideoInfo) -> np.ndarray:
    arr = np.stack(frames)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (3, 4) or arr.shape[1:3] != (info.rows, info.cols):
        raise DicomReadError(f"{info.path}: decoded frames have shape {arr.shape[1:]}, not "
                             f"{info.rows}x{info.cols} as the header says; re-export the file.",
                             reason="decode_failed")
    if arr.dtype != np.uint8:
        lo, hi = float(arr.min()), float(arr.max())
        arr = ((arr.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-6))).round().astype(np.uint8)
    if info.photometric == "MONOCHROME1":
        arr = 255 - arr
    return arr


def _centre_box(rows: int, cols: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Largest centred box with the aspect ratio of `size` (H, W), inclusive corners."""
    aspect = size[1] / size[0]
    w = min(cols, round(rows * aspect))
    h = min(rows, round(w / aspect))
    x0, y0 = (cols - w) // 2, (rows - h) // 2
    return (x0, y0, x0 + w - 1, y0 + h - 1)


def _crop_resize(frame: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int],
                 mode: str) -> np.ndarray:
    from PIL import Image

    x0, y0, x1, y1 = box
    img = Image.fromarray(np.ascontiguousarray(frame[y0:y1 + 1, x0:x1 + 1]))
    if mode == "grey" and img.mode != "L":
        img = img.convert("L")          # ITU-R 601 luma
    elif mode == "rgb" and img.mode != "RGB":
        img = img.convert("RGB")
    img = _pad_to_aspect(img, size[1] / size[0])
    return np.asarray(img.resize((size[1], size[0]), Image.BILINEAR))


def _pad_to_aspect(img: Any, aspect: float) -> Any:
    """Centre `img` on a black canvas with width/height == aspect (no stretching)."""
    from PIL import Image

    w, h = img.size
    if abs(w / h - aspect) < 1e-3:
        return img
    new_w, new_h = (w, round(w / aspect)) if w / h > aspect else (round(h * aspect), h)
    canvas = Image.new(img.mode, (new_w, new_h), 0)
    canvas.paste(img, ((new_w - w) // 2, (new_h - h) // 2))
    return canvas
