"""Read one DICOM echo video's header: what it is, its IDs, timing, size, view and ultrasound region.

Only the header is parsed (`dcmread(stop_before_pixels=True)`); the pixel data is checked for
presence and length by walking its element and fragment headers, never decoded. Every way a file
can fail to be an echo video raises `DicomReadError` with a short `reason` key, so an archive scan
can count what it skipped.
"""

from __future__ import annotations

import logging
import math
import re
import statistics
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from e2r.echo.views import view_of
from e2r.errors import DicomReadError
from e2r.util import one_line, sniff_dicom

log = logging.getLogger(__name__)

US_MULTIFRAME_SOP = "1.2.840.10008.5.1.4.1.1.3.1"
_US_SOP_CLASSES = {
    US_MULTIFRAME_SOP,
    "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
    "1.2.840.10008.5.1.4.1.1.3",  # retired US multi-frame
    "1.2.840.10008.5.1.4.1.1.6",  # retired US image
    "1.2.840.10008.5.1.4.1.1.6.2",  # enhanced US volume
}
_SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
_DICOMDIR_SOP = "1.2.840.10008.1.3.10"

# A region this much larger than the image in both directions is taken to be in the coordinates
# of an image that was later downsampled (e.g. pydicom's ybr_color example: 480x640 region, 240x320
# pixels), and is scaled down by the smallest integer factor that makes it fit.
_RESCALE_MARGIN = 1.1
# What pydicom raises on malformed data, when it parses a header or converts a raw value lazily
# (a deflated syntax over a body that is not deflated, nested sequences without end, a byte flip
# that turns a VR into one pydicom does not know, ...). Caught at the reader and named; anything
# else is a programming error and is left to surface.
_DATA_ERRORS = (EOFError, ValueError, KeyError, TypeError, IndexError, struct.error, OSError, zlib.error,
                RecursionError, NotImplementedError, OverflowError, UnicodeDecodeError,
                MemoryError)  # a flipped length (e.g. big-endian over a little-endian body) asks for GBs
_DEFLATED = "1.2.840.10008.1.2.1.99"


def _pydicom_errors() -> tuple[type[BaseException], ...]:
    """_DATA_ERRORS plus pydicom's own data exceptions (imported when a file is read)."""
    from pydicom.errors import BytesLengthException, InvalidDicomError

    return (InvalidDicomError, BytesLengthException, *_DATA_ERRORS)
_MIN_SIDE = 16  # pixels: an echo frame smaller than this is not a usable image
_MIN_REGION_SIDE = 8
# Frame rates a real cine loop can have (fps). Clinical echo runs at about 10 fps (3D, colour
# Doppler loops) to about 1000 fps (high-frame-rate tissue imaging); the range is a factor 2
# wider on each side so no real loop is refused, and still narrow enough that a frame time
# written in the wrong unit (s or us as ms: a factor 1000 off) always falls outside it. A timing
# tag outside the range is ignored with a note (`VideoInfo.notes`); the next tag is used.
FPS_RANGE = (5.0, 2000.0)



@dataclass(frozen=True)
class VideoInfo:
    """Header of one multi-frame ultrasound video (no pixels)."""

    path: str                   # file as found
    study_uid: str              # StudyInstanceUID ("" when missing)
    series_uid: str             # SeriesInstanceUID
    sop_uid: str                # SOPInstanceUID
    patient_id: str             # PatientID as written (PHI: never index it unhashed)
    study_date: str             # YYYYMMDD, "" when missing or malformed
    n_frames: int               # NumberOfFrames
    frame_time_ms: Optional[float]  # FrameTime, else from CineRate/RecommendedDisplayFrameRate/FrameTimeVector
    rows: int
    cols: int
    view: Optional[str]         # A4C, A2C, A3C, A5C, PLAX, PSAX, SUBCOSTAL, SUPRASTERNAL or None
    photometric: str            # PhotometricInterpretation, e.g. MONOCHROME2, RGB, YBR_FULL_422
    transfer_syntax: str        # TransferSyntaxUID
    region: Optional[tuple[int, int, int, int]]  # ultrasound region (x0, y0, x1, y1), inclusive, inside the image
    # File offset of encapsulated pixel data's first item (the basic offset table), for decoding
    # frame by frame without parsing the header again; None when not encapsulated (little endian).
    pixel_data_offset: Optional[int] = None
    # What the reader ignored or assumed, one line each (e.g. a frame time outside FPS_RANGE);
    # `e2r inspect` shows them.
    notes: tuple[str, ...] = ()

    @property
    def fps(self) -> Optional[float]:
        """Frames per second from the frame time, or None when the file does not say."""
        if not self.frame_time_ms:
            return None
        return 1000.0 / self.frame_time_ms


def read_video_header(path: str | Path) -> VideoInfo:
    """Read the header of one echo video (multi-frame ultrasound DICOM) without decoding pixels.

    Raises `DicomReadError` whose `reason` says why the file is not a usable video: `empty_file`,
    `not_dicom`, `corrupt` (unparsable, truncated, too little pixel data), `structured_report`,
    `other_modality` (CT, MR, ECG, ...), `not_video` (no pixel data), `single_frame`.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise DicomReadError(f"{path}: cannot be read ({err.strerror or err}); check the path.",
                             reason="unreadable") from None
    if path.is_dir():
        raise DicomReadError(f"{path}: is a folder, not a DICOM file; pass a .dcm file.",
                             reason="not_dicom")
    if size == 0:
        raise DicomReadError(f"{path}: is empty (0 bytes); re-copy or re-export the file.",
                             reason="empty_file")
    ok, why = sniff_dicom(path)
    if not ok:
        raise DicomReadError(f"{path}: {why}; pass a DICOM echo video.", reason="not_dicom")

    ds, pixel_pos = _read_header(path)
    try:
        return _video_info(path, ds, size, pixel_pos)
    except _pydicom_errors() as err:
        raise DicomReadError(
            f"{path}: DICOM header holds a value that cannot be read ({type(err).__name__}: "
            f"{one_line(err, 120)}); the file is corrupt, re-export it.", reason="corrupt") from None


def _video_info(path: Path, ds: Any, size: int, pixel_pos: int) -> VideoInfo:
    _check_kind(path, ds, size, pixel_pos)
    rows, cols, n_frames = _side(path, ds, "Rows"), _side(path, ds, "Columns"), _n_frames(ds)
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    items_at = _check_pixel_data(path, ds, ts, size, pixel_pos, rows, cols, n_frames)
    frame_time_ms, timing_notes = _frame_time_ms(ds)
    for note in timing_notes:
        log.info("%s: %s", path, note)
    return VideoInfo(
        path=str(path),
        study_uid=str(ds.get("StudyInstanceUID", "") or ""),
        series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        sop_uid=str(ds.get("SOPInstanceUID", "") or ""),
        patient_id=str(ds.get("PatientID", "") or ""),
        study_date=_date(ds.get("StudyDate", "")),
        n_frames=n_frames,
        frame_time_ms=frame_time_ms,
        rows=rows,
        cols=cols,
        view=view_of(ds),
        photometric=str(ds.get("PhotometricInterpretation", "") or ""),
        transfer_syntax=ts,
        region=_region(ds, rows, cols),
        pixel_data_offset=items_at,
        notes=timing_notes,
    )


def _read_header(path: Path) -> tuple[Any, int]:
    """Parse everything before the pixel data; return the dataset and the pixel data offset."""
    import pydicom

    try:
        with open(path, "rb") as f, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(f, stop_before_pixels=True, force=True)
            pos = f.tell()
    except _pydicom_errors() as err:
        raise DicomReadError(
            f"{path}: DICOM header cannot be parsed ({type(err).__name__}: {one_line(err, 120)}); "
            "the file is corrupt or truncated, re-export it.", reason="corrupt") from None
    for w in caught:
        log.debug("%s: %s", path, w.message)
    if len(ds) == 0 and len(getattr(ds, "file_meta", None) or ()):
        raise DicomReadError(f"{path}: ends right after its file meta header (truncated); "
                             "re-copy the file.", reason="corrupt")
    if len(ds) == 0:
        raise DicomReadError(f"{path}: holds no DICOM elements; pass a DICOM echo video.",
                             reason="not_dicom")
    return ds, pos


def _check_kind(path: Path, ds: Any, size: int, pixel_pos: int) -> None:
    """Raise unless `ds` is a multi-frame ultrasound image."""
    file_meta = getattr(ds, "file_meta", None)
    sop = str(ds.get("SOPClassUID", "") or getattr(file_meta, "MediaStorageSOPClassUID", "") or "")
    modality = str(ds.get("Modality", "") or "").upper()
    if sop.startswith(_SR_PREFIX) or modality == "SR":
        raise DicomReadError(f"{path}: is a structured report (SR), not a video; echo measurements "
                             "are read from the phenotype CSV instead.", reason="structured_report")
    if sop == _DICOMDIR_SOP:
        raise DicomReadError(f"{path}: is a DICOMDIR index, not a video; point e2r at the image files.",
                             reason="not_video")
    if modality and modality != "US":
        raise DicomReadError(f"{path}: has modality {modality}, not ultrasound (US); pass an echo "
                             "video (multi-frame US).", reason="other_modality")
    if not modality and sop not in _US_SOP_CLASSES:
        raise DicomReadError(f"{path}: is neither tagged ultrasound nor an ultrasound SOP class "
                             f"({sop or 'no SOP class'}); pass an echo video.", reason="other_modality")
    if "Rows" not in ds or "Columns" not in ds:
        if pixel_pos >= size:
            raise DicomReadError(f"{path}: ends inside its header (truncated); re-copy the file.",
                                 reason="corrupt")
        raise DicomReadError(f"{path}: has no image (no Rows/Columns); pass an echo video.",
                             reason="not_video")
    if _n_frames(ds) <= 1:
        raise DicomReadError(f"{path}: is a single-frame image, not a video (cine loop); "
                             "e2r uses multi-frame echo videos only.", reason="single_frame")


def _check_pixel_data(path: Path, ds: Any, ts: str, size: int, pos: int,
                      rows: int, cols: int, n_frames: int) -> Optional[int]:
    """Check the pixel data element is there and long enough, reading only element/item headers.
    Returns where the items of encapsulated pixel data begin (None for native pixel data)."""
    implicit, little = getattr(ds, "original_encoding", (ts == "1.2.840.10008.1.2", True))
    if little is False or ts == _DEFLATED:
        return None  # big-endian or deflated body: file offsets say nothing here; the decoder checks
    implicit = bool(implicit) if implicit is not None else ts in ("", "1.2.840.10008.1.2")
    with open(path, "rb") as f:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            raise DicomReadError(f"{path}: ends before its pixel data (truncated); re-copy the file.",
                                 reason="corrupt")
        group, elem = struct.unpack("<HH", head[:4])
        if (group, elem) not in ((0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)):
            raise DicomReadError(f"{path}: has no pixel data; pass an echo video.", reason="not_video")
        if implicit:
            length, start = struct.unpack("<L", head[4:8])[0], pos + 8
        else:
            raw = f.read(4)
            if len(raw) < 4:
                raise DicomReadError(f"{path}: ends inside its pixel data header (truncated); "
                                     "re-copy the file.", reason="corrupt")
            length, start = struct.unpack("<L", raw)[0], pos + 12
        if length != 0xFFFFFFFF:
            bits = int(ds.get("BitsAllocated", 8) or 8)
            spp = int(ds.get("SamplesPerPixel", 1) or 1)
            expected = (rows * cols * spp * n_frames * bits + 7) // 8
            have = min(length, size - start)
            if have < expected:
                raise DicomReadError(
                    f"{path}: pixel data holds {have} of the {expected} bytes that {n_frames} frames "
                    f"of {rows}x{cols} need (truncated or corrupt); re-copy or re-export the file.",
                    reason="corrupt")
            if length > expected + 1:  # one pad byte makes an odd length even
                raise DicomReadError(
                    f"{path}: pixel data holds {length} bytes but {n_frames} frames of {rows}x{cols} need "
                    f"{expected} (the header does not describe the pixels); re-export the file.",
                    reason="corrupt")
            return None
        _check_fragments(path, f, start, size, n_frames)
        return start


def _check_fragments(path: Path, f: Any, start: int, size: int, n_frames: int) -> None:
    from pydicom.encaps import parse_fragments

    f.seek(start)
    try:
        n_items, offsets = parse_fragments(f)
    except ValueError as err:
        raise DicomReadError(f"{path}: encapsulated pixel data is broken ({one_line(err, 120)}); "
                             "re-copy or re-export the file.", reason="corrupt") from None
    if offsets:
        f.seek(offsets[-1] + 4)
        last_len = struct.unpack("<L", f.read(4))[0]
        if offsets[-1] + 8 + last_len > size:
            raise DicomReadError(f"{path}: ends inside its compressed frame data (truncated); "
                                 "re-copy the file.", reason="corrupt")
    # The first item is the (possibly empty) basic offset table; each frame needs >= 1 fragment.
    if n_items - 1 < n_frames:
        raise DicomReadError(f"{path}: holds {max(n_items - 1, 0)} compressed fragments for "
                             f"{n_frames} frames (truncated or corrupt); re-copy the file.",
                             reason="corrupt")


def _side(path: Path, ds: Any, tag: str) -> int:
    """Rows or Columns as one whole number of at least _MIN_SIDE pixels; DicomReadError otherwise."""
    value = ds.get(tag)
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise DicomReadError(f"{path}: {tag} is {value!r}, not one number of pixels; the file is corrupt, "
                             "re-export it.", reason="corrupt") from None
    if n < _MIN_SIDE:
        raise DicomReadError(f"{path}: {tag} is {n}; an echo video needs at least {_MIN_SIDE} pixels per side "
                             "(the header is corrupt or this is not an image).", reason="corrupt")
    return n


def _n_frames(ds: Any) -> int:
    """NumberOfFrames; 1 when absent; DicomReadError-worthy values (2.5, abc) raise ValueError."""
    raw = ds.get("NumberOfFrames", 1)
    if raw in (None, ""):
        return 1
    value = float(str(raw).strip())
    if not value.is_integer() or value < 0:
        raise ValueError(f"NumberOfFrames {raw!r} is not a whole number of frames")
    return int(value)


def _date(value: Any) -> str:
    """A StudyDate as YYYYMMDD when it is a calendar date, else "" (e.g. the "00000000" some
    scanners write): a date the index cannot store is no date."""
    import datetime as dt

    s = str(value or "").strip()
    if not re.fullmatch(r"\d{8}", s):
        return ""
    try:
        dt.date(int(s[:4]), int(s[4:6]), int(s[6:]))
    except ValueError:
        return ""
    return s


def _frame_time_ms(ds: Any) -> tuple[Optional[float], tuple[str, ...]]:
    """Frame time in ms from the first timing tag that gives a rate in FPS_RANGE: FrameTime,
    CineRate, RecommendedDisplayFrameRate, then the median of FrameTimeVector's plausible
    intervals (one absurd interval must not set the rate). Returns (None, notes) when no tag is
    plausible; the notes name each tag that was there but ignored."""
    lo, hi = FPS_RANGE
    notes: list[str] = []

    def num(v: Any) -> Optional[float]:
        try:
            f = float(v)
        except (TypeError, ValueError, OverflowError):
            return None
        return f if math.isfinite(f) and f > 0 else None

    def plausible_ms(ms: Optional[float]) -> bool:
        return ms is not None and 1000.0 / hi <= ms <= 1000.0 / lo

    ft = num(ds.get("FrameTime"))
    if plausible_ms(ft):
        return ft, ()
    if ft is not None:
        notes.append(f"FrameTime {ft:g} ms ({1000.0 / ft:.3g} fps) is outside {lo:g}-{hi:g} fps; ignored")
    for rate_tag in ("CineRate", "RecommendedDisplayFrameRate"):
        rate = num(ds.get(rate_tag))
        if rate is not None and plausible_ms(1000.0 / rate):
            return 1000.0 / rate, _timing_notes(notes, f"{rate_tag} {rate:g} fps")
        if rate is not None:
            notes.append(f"{rate_tag} {rate:g} fps is outside {lo:g}-{hi:g} fps; ignored")
    vector = ds.get("FrameTimeVector")
    if vector is not None:
        try:
            deltas = [d for d in (num(v) for v in list(vector)[1:]) if d is not None]
        except (TypeError, ValueError, OverflowError):
            deltas = []
        usable = [d for d in deltas if plausible_ms(d)]
        if len(usable) < len(deltas):
            notes.append(f"{len(deltas) - len(usable)} of {len(deltas)} FrameTimeVector intervals are outside "
                         f"{lo:g}-{hi:g} fps; ignored")
        if usable:
            median = statistics.median(usable)
            return median, _timing_notes(notes, f"the median FrameTimeVector interval, {median:g} ms")
    if notes:
        notes.append("no plausible frame timing; frames are sampled by stride, not by time")
    return None, tuple(notes)


def _timing_notes(ignored: list[str], used: str) -> tuple[str, ...]:
    """The notes of a fallback: what was ignored, then what the frame time comes from (no notes
    when nothing before `used` was ignored)."""
    return (*ignored, f"frame time from {used}") if ignored else ()


def _region(ds: Any, rows: int, cols: int) -> Optional[tuple[int, int, int, int]]:
    """The largest 2D ultrasound region (inclusive corners), moved inside the image.

    Regions far outside the image in both directions are scaled down (see `_RESCALE_MARGIN`);
    others are clipped. A region left smaller than a few pixels is dropped (centre crop is used).
    """
    from pydicom.sequence import Sequence

    boxes = []
    regions = ds.get("SequenceOfUltrasoundRegions", None)
    if regions is not None and not isinstance(regions, Sequence):
        log.debug("SequenceOfUltrasoundRegions is not a sequence (%s); centre crop", type(regions).__name__)
        regions = None
    for item in regions or []:
        if not hasattr(item, "get"):
            continue
        try:
            box = tuple(int(item.get(t)) for t in ("RegionLocationMinX0", "RegionLocationMinY0",
                                                    "RegionLocationMaxX1", "RegionLocationMaxY1"))
        except (TypeError, ValueError):
            continue
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        spatial = item.get("RegionSpatialFormat", None)
        boxes.append((spatial == 1, (box[2] - box[0]) * (box[3] - box[1]), box))
    if not boxes:
        return None
    if any(is_2d for is_2d, _, _ in boxes):
        boxes = [b for b in boxes if b[0]]
    x0, y0, x1, y1 = max(boxes, key=lambda b: b[1])[2]
    if x1 > cols * _RESCALE_MARGIN and y1 > rows * _RESCALE_MARGIN:
        for k in (2, 3, 4, 8):
            if x1 // k < cols and y1 // k < rows:
                log.debug("ultrasound region %s scaled down %dx to fit %dx%d", (x0, y0, x1, y1), k, rows, cols)
                x0, y0, x1, y1 = x0 // k, y0 // k, x1 // k, y1 // k
                break
    x0, x1 = max(0, min(x0, cols - 1)), max(0, min(x1, cols - 1))
    y0, y1 = max(0, min(y0, rows - 1)), max(0, min(y1, rows - 1))
    if x1 - x0 + 1 < _MIN_REGION_SIDE or y1 - y0 + 1 < _MIN_REGION_SIDE:
        return None
    return (x0, y0, x1, y1)

