"""Decode an echo video to a fixed-size uint8 frame stack: sample frames, colour, crop, resize.

Only the frames that are sampled are decoded, which matters for JPEG cines where each frame is a
separate compressed image. JPEG baseline grey frames (the common echo export) are decoded by
Pillow straight from the frame's bytes, located with the header's pixel-data offset, and, where the
output is small next to the cropped region, straight to 1/2, 1/4 or 1/8 scale
(libjpeg's DCT scaling, Pillow's draft mode; only while the output stays 1/2 of the decoded crop
or smaller); everything else goes through pydicom's decoders
(`iter_pixels(indices=...)`).
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
        why = "no plausible frame time" if info.notes else "no frame time"
        log.warning("%s: %s in the file; sampling with stride %d instead of %.3g fps",
                    info.path, why, stride or 1, fps)
    idx = sample_indices(info.n_frames, n_frames, src_fps=info.fps, fps=fps, stride=stride)
    wanted = sorted(set(int(i) for i in idx))
    crop = info.region or _centre_box(info.rows, info.cols, size)
    frames, scale = None, 1
    if _jpeg_direct(info, mode):
        scale = _draft_scale(crop, size)
        frames = _decode_jpeg_direct(info, wanted, scale)
    if frames is None:
        scale = 1
        frames = _to_uint8(_decode_frames(info, wanted, mode), info)  # (K, H, W) or (K, H, W, 3)
    out = _crop_resize_all(frames, _scaled_box(crop, scale, frames.shape[1:3]), size, mode)
    pos = {f: k for k, f in enumerate(wanted)}
    return out[[pos[int(i)] for i in idx]]


# JPEG baseline grey output read straight from the frame bytes: MONOCHROME2, or the Y plane of
# YBR (what the generic path takes for grey output too).
_DIRECT_PHOTOMETRIC = ("MONOCHROME2", "YBR_FULL", "YBR_FULL_422")


def _jpeg_direct(info: VideoInfo, mode: str) -> bool:
    return (mode == "grey" and info.transfer_syntax == _JPEG_BASELINE and info.pixel_data_offset is not None
            and info.photometric in _DIRECT_PHOTOMETRIC)


def _draft_scale(box: tuple[int, int, int, int], size: tuple[int, int]) -> int:
    """The largest JPEG scale-down (1, 2, 4, 8) at which the crop, padded to the output's aspect,
    still has at least twice the output's pixels per side, so the final (antialiased) resize
    still reduces by 2x or more and hides the DCT scaling's own filter."""
    w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
    aspect = size[1] / size[0]
    padded_w = max(w, h * aspect)  # _pad_to_aspect's canvas width
    for scale in (8, 4, 2):
        if padded_w / scale >= 2 * size[1] and padded_w / aspect / scale >= 2 * size[0]:
            return scale
    return 1


def _scaled_box(box: tuple[int, int, int, int], scale: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The crop box (inclusive corners) in the coordinates of an image decoded at 1/scale."""
    if scale == 1:
        return box
    x0, y0, x1, y1 = box
    rows, cols = shape
    return (min(x0 // scale, cols - 1), min(y0 // scale, rows - 1),
            min(max(x1 + 1, x0 + scale) // scale - 1, cols - 1), min(max(y1 + 1, y0 + scale) // scale - 1, rows - 1))


def _decode_jpeg_direct(info: VideoInfo, indices: list[int], scale: int) -> Optional[np.ndarray]:
    """uint8 (K, H/scale, W/scale) grey frames, or None when this file needs the generic path (its
    decoder then raises the DicomReadError that names the problem)."""
    from pydicom.encaps import generate_frames

    try:
        with open(info.path, "rb") as fh:
            fh.seek(info.pixel_data_offset)
            items = fh.read()
        wanted = set(indices)
        frames = {}
        for i, data in enumerate(generate_frames(items, number_of_frames=info.n_frames)):
            if i in wanted:
                frames[i] = _jpeg_grey(data, info.rows, info.cols, scale)
            if len(frames) == len(wanted):
                break
        return np.stack([frames[i] for i in indices])
    except Exception:  # noqa: BLE001  (any failure: the generic decoders say what is wrong)
        log.debug("%s: direct JPEG decode failed, using pydicom's decoders", info.path, exc_info=True)
        return None


def _jpeg_grey(data: bytes, rows: int, cols: int, scale: int) -> np.ndarray:
    """One JPEG frame as uint8 (ceil(rows/scale), ceil(cols/scale)) grey (Y for YCbCr data)."""
    from PIL import Image

    if _jpeg_size(data) != (rows, cols):  # the header must describe the image (else: generic path's error)
        raise ValueError(f"JPEG frame is {_jpeg_size(data)}, the header says {(rows, cols)}")
    shape = (-(-rows // scale), -(-cols // scale))
    try:
        # Pillow's JPEG decoder fed the bytes directly: Image.open's marker parsing in Python
        # costs more than decoding a small echo frame.
        decoder = Image._getdecoder("L", "jpeg", ("L", "", scale, 0))
        core = Image.core.new("L", (shape[1], shape[0]))
        decoder.setimage(core, (0, 0, shape[1], shape[0]))
        try:
            consumed, err = decoder.decode(data)
        finally:
            decoder.cleanup()
        if err < 0 or consumed >= 0:
            raise OSError(f"JPEG decoder error {err}")
        img = Image.new("L", (1, 1))
        img.im, img._size = core, (shape[1], shape[0])
    except (AttributeError, TypeError):  # a Pillow without these internals: the public way
        import io

        img = Image.open(io.BytesIO(data))
        img.draft("L", (shape[1], shape[0]))
        img = img.convert("L")
    arr = np.asarray(img)
    if arr.shape != shape:
        raise ValueError(f"JPEG frame decodes to {arr.shape}, not {shape}")
    return arr


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> Optional[tuple[int, int]]:
    """(rows, cols) from a JPEG stream's start-of-frame marker; None if there is none."""
    i = 2 if data[:2] == b"\xff\xd8" else len(data)
    while i + 9 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _SOF:
            return int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
        i += 2 + length
    return None


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
        return [_from_ybr(f, mode, info) for f in frames]
    return frames


def _from_ybr(frame: np.ndarray, mode: str, info: VideoInfo) -> np.ndarray:
    """One raw YBR frame as luma (H, W) or RGB (H, W, 3). A frame that decodes to one channel is
    grey data under a YBR header (a grey JPEG labelled YBR_FULL): it is used as the grey it is."""
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[-1] == 1):
        return frame.reshape(frame.shape[:2])
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise DicomReadError(f"{info.path}: a frame decodes to shape {frame.shape}, not the 3 channels "
                             f"{info.photometric} has; re-export the file.", reason="decode_failed")
    if mode == "grey":
        return np.ascontiguousarray(frame[..., 0])
    from PIL import Image

    if frame.dtype == np.int8:  # 8-bit YBR marked signed (PixelRepresentation 1): the bytes are as stored
        frame = frame.view(np.uint8)
    elif frame.dtype != np.uint8:
        raise DicomReadError(f"{info.path}: {info.photometric} frames decode to {frame.dtype} samples; e2r reads "
                             "8-bit YBR colour only, re-export the file as RGB or 8-bit YBR.",
                             reason="decode_failed")
    return np.asarray(Image.fromarray(np.ascontiguousarray(frame), mode="YCbCr").convert("RGB"))


def _to_uint8(frames: list[np.ndarray], info: VideoInfo) -> np.ndarray:
    if len({f.shape for f in frames}) > 1:  # e.g. one grey and one colour JPEG frame in a video
        raise DicomReadError(f"{info.path}: frames decode to different shapes "
                             f"({', '.join(sorted({str(f.shape) for f in frames}))}); re-export the file.",
                             reason="decode_failed")
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


def _crop_resize_all(frames: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int],
                     mode: str) -> np.ndarray:
    """`_crop_resize` of every frame: the crop and the black padding done once in numpy for the
    stack (the same pixels as the per-frame Pillow crop and paste), Pillow's resize per frame."""
    from PIL import Image

    grey_in = frames.ndim == 3
    if grey_in != (mode == "grey"):  # colour to grey or back: Pillow converts frame by frame
        return np.stack([_crop_resize(f, box, size, mode) for f in frames])
    x0, y0, x1, y1 = box
    stack = frames[:, y0:y1 + 1, x0:x1 + 1]
    h, w = stack.shape[1:3]
    aspect = size[1] / size[0]
    if abs(w / h - aspect) >= 1e-3:
        new_w, new_h = (w, round(w / aspect)) if w / h > aspect else (round(h * aspect), h)
        top, left = (new_h - h) // 2, (new_w - w) // 2
        pad = [(0, 0), (top, new_h - h - top), (left, new_w - w - left)] + [(0, 0)] * (stack.ndim - 3)
        stack = np.pad(stack, pad)
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(f)).resize((size[1], size[0]), Image.BILINEAR))
                     for f in stack])


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
