"""ECG input: read a 12-lead record (WFDB or DICOM) and preprocess it to the model's input.

    read_ecg(path) -> ECGRecord                      e2r.ecg.reader (WFDB: e2r.ecg.wfdb, DICOM: e2r.ecg.dicom)
    preprocess_ecg(record, cfg) -> PreprocessedECG   e2r.ecg.preprocess
    read_for_model(path, cfg) -> (record, input)     both, as training, evaluation and search do
    list_ecg_records(path) -> [record path]          a record, a folder's records or a .txt list (search, embed)
    leads by name, aliases, derived limb leads      e2r.ecg.leads
"""

from e2r.ecg.leads import CANONICAL_LEADS
from e2r.ecg.preprocess import ECGPreprocessConfig, PreprocessedECG, preprocess_ecg
from e2r.ecg.reader import list_ecg_records, read_ecg
from e2r.ecg.record import ECGRecord, units_to_mv

__all__ = ["CANONICAL_LEADS", "ECGPreprocessConfig", "ECGRecord", "PreprocessedECG", "list_ecg_records",
           "preprocess_ecg", "read_ecg", "read_for_model", "units_to_mv"]


def read_for_model(path, cfg: ECGPreprocessConfig) -> tuple[ECGRecord, PreprocessedECG]:
    """Read one ECG and preprocess it to the model input `cfg` describes (a preset's
    ecg_preprocess): the one way training, evaluation and search turn a file into model input."""
    record = read_ecg(path)
    return record, preprocess_ecg(record, cfg)
