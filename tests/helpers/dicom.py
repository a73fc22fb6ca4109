"""Tiny DICOM files written by tests: multi-frame ultrasound videos and non-video objects."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
US_SINGLE = "1.2.840.10008.5.1.4.1.1.6.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"


def _new_dataset(sop_class: str, transfer_syntax: Optional[str] = None):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "P001"
    ds.StudyDate = "20240102"
    return ds


def write_us_dicom(
    path: Path,
    frames: np.ndarray,
    *,
    photometric: Optional[str] = None,
    jpeg: bool = False,
    frame_time_ms: Optional[float] = 40.0,
    region: Optional[Sequence[int]] = None,
    series_description: Optional[str] = "Apical 4 chamber",
    view_code_meaning: Optional[str] = None,
    study_uid: Optional[str] = None,
    sop_uid: Optional[str] = None,
    patient_id: str = "P001",
    modality: str = "US",
    sop_class: str = US_MULTIFRAME,
) -> Path:
    """Write a multi-frame ultrasound DICOM from uint8 frames (F, H, W) or (F, H, W, 3).

    photometric: MONOCHROME2 (default for grey), RGB (default for colour) or YBR_FULL (colour,
    converted here). jpeg=True encapsulates one JPEG baseline image per frame (encoded with PIL;
    colour frames become YBR_FULL_422). region: (x0, y0, x1, y1) of a 2D ultrasound region.
    """
    from PIL import Image
    from pydicom.dataset import Dataset
    from pydicom.encaps import encapsulate
    from pydicom.pixels import convert_color_space
    from pydicom.uid import JPEGBaseline8Bit

    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    colour = frames.ndim == 4
    ds = _new_dataset(sop_class, JPEGBaseline8Bit if jpeg else None)
    if study_uid:
        ds.StudyInstanceUID = study_uid
    if sop_uid:
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.PatientID = patient_id
    ds.Modality = modality
    if series_description is not None:
        ds.SeriesDescription = series_description
    if view_code_meaning is not None:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "X", "99TEST", view_code_meaning
        ds.ViewCodeSequence = [code]
    if frame_time_ms is not None:
        ds.FrameTime = frame_time_ms
    ds.NumberOfFrames = frames.shape[0]
    ds.Rows, ds.Columns = frames.shape[1], frames.shape[2]
    ds.SamplesPerPixel = 3 if colour else 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if colour:
        ds.PlanarConfiguration = 0
    if region is not None:
        item = Dataset()
        item.RegionSpatialFormat, item.RegionDataType, item.RegionFlags = 1, 1, 0
        (item.RegionLocationMinX0, item.RegionLocationMinY0,
         item.RegionLocationMaxX1, item.RegionLocationMaxY1) = [int(v) for v in region]
        ds.SequenceOfUltrasoundRegions = [item]
    if jpeg:
        encoded = []
        for f in frames:
            buf = io.BytesIO()
            Image.fromarray(f).save(buf, format="JPEG", quality=95)
            encoded.append(buf.getvalue())
        ds.PhotometricInterpretation = "YBR_FULL_422" if colour else "MONOCHROME2"
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    else:
        photometric = photometric or ("RGB" if colour else "MONOCHROME2")
        data = convert_color_space(frames, "RGB", "YBR_FULL") if photometric == "YBR_FULL" else frames
        ds.PhotometricInterpretation = photometric
        ds.PixelData = np.ascontiguousarray(data).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_other_dicom(path: Path, kind: str) -> Path:
    """Write a non-video DICOM: kind in {"ct", "single_frame_us", "sr"}."""
    sop = {"ct": CT_IMAGE, "single_frame_us": US_SINGLE, "sr": COMPREHENSIVE_SR}[kind]
    ds = _new_dataset(sop)
    ds.Modality = {"ct": "CT", "single_frame_us": "US", "sr": "SR"}[kind]
    if kind != "sr":
        ds.Rows = ds.Columns = 16
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = np.full((16, 16), 80, np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
