"""What the index stores about a study: the payload, with PHI kept out.

Patient IDs enter the index only as a salted SHA-256 (the salt lives outside the index, in the
e2r home folder, so the index alone cannot be joined back to a patient list). Patient names,
birth dates and other identifying tags are never read into the payload.
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Any, Optional

from e2r.echo import StudyInfo
from e2r.phenotypes import LABEL_FIELDS, NUMERIC_FIELDS, OPTIONAL_COLUMNS
from e2r.store.schema import study_date_int

SALT_BYTES = 32


def load_or_create_salt(path: Path) -> bytes:
    """The per-installation salt for patient-ID hashes; created (mode 600) on first use."""
    if path.is_file():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    salt = secrets.token_bytes(SALT_BYTES)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(salt)
    tmp.chmod(0o600)
    tmp.replace(path)
    return salt


def hash_patient_id(patient_id: Optional[str], salt: bytes) -> Optional[str]:
    """Salted SHA-256 of a patient ID (hex, 24 chars), or None when the file has no ID."""
    if not patient_id:
        return None
    if not salt:
        raise ValueError("hash_patient_id needs a salt; patient IDs are never hashed unsalted")
    return hashlib.sha256(salt + patient_id.encode("utf-8", "surrogateescape")).hexdigest()[:24]


def study_fingerprint(study: StudyInfo) -> str:
    """Changes when a study's set of videos or their files change (used to detect re-indexing)."""
    h = hashlib.sha256()
    for video in sorted(study.videos, key=lambda v: v.sop_uid):
        try:
            size = Path(video.path).stat().st_size
        except OSError:
            size = -1
        h.update(f"{video.sop_uid}|{size}|{video.n_frames}\n".encode())
    return h.hexdigest()[:16]


def build_payload(
    study: StudyInfo,
    used_videos: list[int],
    phenotypes: Optional[dict[str, Any]],
    model_hash: str,
    salt: bytes,
    archive_root: Path,
    store_paths: bool = True,
) -> dict[str, Any]:
    """The payload of one study's point: identifiers, views, phenotypes and provenance.

    `store_paths=False` leaves the source paths out (for archives whose folder names carry patient IDs).
    """
    videos = [study.videos[i] for i in used_videos]
    payload: dict[str, Any] = {
        "study_uid": utf8(study.study_uid),
        "patient_hash": hash_patient_id(study.patient_id, salt),
        "study_date": _date_or_none(study.study_date),
        "views": sorted({v.view or "unknown" for v in videos}),
        "n_videos": len(videos),
        "source_paths": [utf8(_relative(Path(v.path), archive_root)) for v in videos] if store_paths else None,
        "fingerprint": study_fingerprint(study),
        "model_hash": model_hash,
        "has_phenotypes": phenotypes is not None,
    }
    for name in (*NUMERIC_FIELDS, "rhythm", *LABEL_FIELDS, *OPTIONAL_COLUMNS):
        payload[name] = None if phenotypes is None else phenotypes.get(name)
    # The schema leaves unknown values out rather than storing nulls.
    return {k: v for k, v in payload.items() if v is not None}


def utf8(text: str) -> str:
    """Text the store can hold: file names with bytes that are not UTF-8 (a Latin-1 é) come from the
    OS as surrogate escapes; they are kept as \\xNN escapes instead of failing the whole batch."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _date_or_none(value: str) -> Optional[int]:
    """The YYYYMMDD integer of a header date, or None when it is empty or not a calendar date."""
    from e2r.errors import ConfigError

    try:
        return study_date_int(value) if value else None
    except ConfigError:
        return None


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
