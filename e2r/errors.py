"""Named errors. Every user-facing failure is an `E2RError` whose message is one line:
which file or flag, what is wrong, what to do. The CLI prints it as `Error: ...` and exits 1."""

from __future__ import annotations


class E2RError(Exception):
    """Base class of every error a user can cause and fix."""


class ConfigError(E2RError):
    """A setting or flag has an invalid value."""


class PresetError(ConfigError):
    """An unknown preset name."""


class ECGReadError(E2RError):
    """An ECG record cannot be read or does not hold usable 12-lead data."""


class ECGAmplitudeError(ECGReadError):
    """An ECG's voltage cannot be real (a wrong gain or unit); refused, never rescaled."""


class DicomReadError(E2RError):
    """A DICOM file cannot be read, or is not what was expected.

    `reason` is a short key used to count skipped files in archive scans
    (`not_dicom`, `empty_file`, `corrupt`, `not_video`, `single_frame`, `structured_report`,
    `other_modality`, `decode_failed`, `unreadable`).
    """

    def __init__(self, message: str, reason: str = "unreadable"):
        super().__init__(message)
        self.reason = reason


class DataError(E2RError):
    """A data set (pairs CSV, phenotype CSV, cohort folder) is missing or inconsistent."""


class BundleError(E2RError):
    """A model bundle is missing, corrupt, or does not match what it is used with."""


class StoreError(E2RError):
    """The vector store cannot be reached, or a collection is missing or mismatched."""


class ECGGraphError(BundleError):
    """A bundle's ONNX graph of its ECG encoder is missing, damaged, from another model, cannot run
    on the installed onnxruntime, or was refused at export (e2r.ecg_graph)."""
