"""Uploaded ECG files: safe names in a private temporary folder, and which file is the record.

A WFDB header names its signal file, so uploads keep their own base names; anything that is not
a plain base name (folders, `..`, hidden files, odd characters) is refused, so no name from the
request can point outside the temporary folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from e2r.errors import ECGReadError

#: Most files one search may upload (a .hea with its .dat/.mat, or one DICOM).
MAX_FILES = 4
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")


def safe_name(name: str | None) -> str:
    """The uploaded file's base name when it is a plain, safe one; ECGReadError otherwise."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    if not _SAFE_NAME.match(base) or ".." in base:
        raise ECGReadError(
            f"upload {name!r}: file names must be plain names of letters, digits and '._+-' "
            "(e.g. rec.hea + rec.dat, or ecg.dcm); rename the file and upload it again"
        )
    return base


def save_upload(files: list[tuple[str | None, bytes]], folder: Path) -> Path:
    """Write uploaded (name, content) pairs into `folder` and return the path of the ECG record."""
    if not files:
        raise ECGReadError("no file uploaded: send the ECG in the form field `files` "
                           "(a WFDB .hea with its .dat or .mat, or one DICOM ECG)")
    if len(files) > MAX_FILES:
        raise ECGReadError(f"{len(files)} files uploaded; one ECG is at most {MAX_FILES} files "
                           "(a WFDB .hea with its .dat or .mat, or one DICOM ECG)")
    names: list[str] = []
    for name, content in files:
        base = safe_name(name)
        if base in names:
            raise ECGReadError(f"upload {base!r}: the same file name was sent twice")
        (folder / base).write_bytes(content)
        names.append(base)
    return find_record(folder, names)


def find_record(folder: Path, names: list[str]) -> Path:
    """The record among the uploaded names: the one .hea header, else the one DICOM file."""
    headers = [n for n in names if n.lower().endswith(".hea")]
    if len(headers) > 1:
        raise ECGReadError(f"uploads {', '.join(headers)}: several WFDB headers; search one ECG per request")
    if headers:
        return folder / headers[0]
    if len(names) == 1:
        return folder / names[0]  # a DICOM ECG (read_ecg sniffs the content, whatever the suffix)
    raise ECGReadError(f"uploads {', '.join(names)}: no WFDB header (.hea) among them; upload the record's "
                       ".hea with its .dat or .mat, or one DICOM ECG")


def public_message(message: str, folder: Path) -> str:
    """An error message with the server's temporary folder taken out (the user sees their file name)."""
    for prefix in {str(folder), str(folder.resolve())}:
        message = message.replace(prefix + "/", "").replace(prefix, "")
    return message
