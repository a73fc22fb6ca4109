"""ECG input: read a 12-lead record (WFDB or DICOM) and preprocess it to the model's input.

    read_ecg(path) -> ECGRecord                      e2r.ecg.reader (WFDB: e2r.ecg.wfdb, DICOM: e2r.ecg.dicom)
    preprocess_ecg(record, cfg) -> PreprocessedECG   e2r.ecg.preprocess
    leads by name, aliases, derived limb leads      e2r.ecg.leads
"""

from e2r.ecg.leads import CANONICAL_LEADS
from e2r.ecg.preprocess import ECGPreprocessConfig, PreprocessedECG, preprocess_ecg
from e2r.ecg.reader import read_ecg
from e2r.ecg.record import ECGRecord, units_to_mv

__all__ = ["CANONICAL_LEADS", "ECGPreprocessConfig", "ECGRecord", "PreprocessedECG", "preprocess_ecg", "read_ecg",
           "units_to_mv"]
