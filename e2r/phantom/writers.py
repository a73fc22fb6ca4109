"""File writers: echo cine loops as DICOM Ultrasound Multi-frame Image Storage, ECGs as WFDB.

Both write only what real archives carry (no patient names); every value is a function of the
inputs, so the same cohort seed gives the same file content.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from e2r.ecg.leads import CANONICAL_LEADS

US_MULTIFRAME_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.3.1"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"

# Lead-name conventions seen in real archives (MIMIC-IV-ECG stores aVF before aVL; PTB-XL and
# CinC use lower or upper case). Each record uses one, chosen by the cohort generator.
LEAD_LAYOUTS = {
    "standard": CANONICAL_LEADS,
    "mimic": ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6"),
    "lower": ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6"),
    "upper": ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"),
    "chest_first": ("V1", "V2", "V3", "V4", "V5", "V6", "I", "II", "III", "aVR", "aVL", "aVF"),
}
_CANONICAL_KEYS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")


@dataclass(frozen=True)
class EchoSeriesMeta:
    """DICOM identity and acquisition facts of one cine loop."""

    patient_id: str
    patient_sex: str
    patient_age: int
    study_uid: str
    series_uid: str
    sop_uid: str
    study_id: str
    study_date: str        # YYYYMMDD
    series_number: int
    view: str              # SeriesDescription
    fps: float
    pixel_spacing_cm: float
    region: tuple[int, int, int, int]
    apex: tuple[int, int]


def write_echo_dicom(path: Path, frames: np.ndarray, meta: EchoSeriesMeta, compressed: bool = True,
                     jpeg_quality: int = 88) -> int:
    """Write uint8 (F, H, W) frames as an Ultrasound Multi-frame DICOM file; returns its size."""
    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.sequence import Sequence
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

    n, rows, cols = frames.shape
    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = UID(US_MULTIFRAME_SOP_CLASS)
    fm.MediaStorageSOPInstanceUID = UID(meta.sop_uid)
    fm.TransferSyntaxUID = UID(JPEG_BASELINE if compressed else EXPLICIT_VR_LE)
    fm.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = fm
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "", "0001"]
    ds.SOPClassUID = US_MULTIFRAME_SOP_CLASS
    ds.SOPInstanceUID = meta.sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = meta.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = ""
    ds.Modality = "US"
    ds.Manufacturer = "e2r phantom (synthetic)"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "SYNTHETIC TTE"
    ds.SeriesDescription = meta.view
    ds.PatientName = ""
    ds.PatientID = meta.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = meta.patient_sex
    ds.PatientAge = f"{min(meta.patient_age, 999):03d}Y"
    ds.StudyInstanceUID = meta.study_uid
    ds.SeriesInstanceUID = meta.series_uid
    ds.StudyID = meta.study_id
    ds.SeriesNumber = meta.series_number
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = n
    ds.FrameIncrementPointer = 0x00181063  # FrameTime
    ds.FrameTime = f"{1000.0 / meta.fps:.4f}"
    ds.CineRate = int(round(meta.fps))
    ds.RecommendedDisplayFrameRate = int(round(meta.fps))
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0

    region = Dataset()
    region.RegionSpatialFormat = 1          # 2D
    region.RegionDataType = 1               # tissue
    region.RegionFlags = 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = meta.region[0], meta.region[1]
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = meta.region[2], meta.region[3]
    region.ReferencePixelX0, region.ReferencePixelY0 = meta.apex
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # cm
    region.PhysicalDeltaX = region.PhysicalDeltaY = round(meta.pixel_spacing_cm, 6)
    ds.SequenceOfUltrasoundRegions = Sequence([region])

    if compressed:
        encoded = []
        for frame in frames:
            buf = io.BytesIO()
            Image.fromarray(frame, mode="L").save(buf, format="JPEG", quality=jpeg_quality)
            encoded.append(buf.getvalue())
        ds.PixelData = encapsulate(encoded, has_bot=True)
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        ratio = frames.nbytes / max(1, sum(len(e) for e in encoded))
        ds.LossyImageCompressionRatio = f"{ratio:.2f}"
    else:
        ds.PixelData = np.ascontiguousarray(frames, dtype=np.uint8).tobytes()
        ds["PixelData"].VR = "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path.stat().st_size


def write_ecg_wfdb(directory: Path, record_name: str, signal: np.ndarray, fs: float, layout: str,
                   base_date: str | None = None, gain: float = 1000.0) -> None:
    """Write a (12, T) mV canonical-order ECG as WFDB format 16 with the leads in `layout` order.

    base_date is YYYYMMDD (written as the header's base date); gain is ADC units per mV (MIMIC-IV-ECG
    writes 200). The header and the interleaved
    little-endian int16 samples are written here directly: wfdb.wrsamp produces the same files
    but spends ~0.15 s per record in header bookkeeping, which dominated cohort writing. Tests read
    every record back with wfdb.rdrecord.
    """
    names = LEAD_LAYOUTS[layout]
    order = [_CANONICAL_KEYS.index(name.lower()) for name in names]
    # 1000 ADC units per mV (1 uV resolution, the default) covers +-32 mV, far beyond any surface ECG.
    digital = np.clip(np.round(signal[order] * gain), -32767, 32767).astype("<i2")  # (12, T)
    n = digital.shape[1]
    directory.mkdir(parents=True, exist_ok=True)
    dat = f"{record_name}.dat"
    head = f"{record_name} 12 {fs:g} {n}"
    if base_date:
        head += f" 12:00:00 {base_date[6:8]}/{base_date[4:6]}/{base_date[:4]}"
    lines = [head]
    for ch, name in enumerate(names):
        checksum = int(digital[ch].astype(np.int64).sum() % 65536)
        lines.append(f"{dat} 16 {gain:g}(0)/mV 16 0 {int(digital[ch, 0])} {checksum} 0 {name}")
    (directory / f"{record_name}.hea").write_text("\n".join(lines) + "\n")
    (directory / dat).write_bytes(np.ascontiguousarray(digital.T).tobytes())
