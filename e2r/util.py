"""Small helpers every part of e2r shares: one-line error text, atomic writes, JSON-ready values,
and the cheap DICOM content check."""

from __future__ import annotations

import math
import os
import struct
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping


# e2r's home when --data-dir / E2R_HOME are not given: embedded store, patient-ID salt, caches.
DEFAULT_HOME = Path.home() / ".e2r"


def one_line(exc: BaseException | str, limit: int = 160) -> str:
    """An exception (or text) as one short line for an error message: whitespace folded, at most
    `limit` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# The end of the line a reader failure e2r did not name gets (every bad input should be an E2RError).
UNEXPECTED_READ_NOTE = "this is an e2r bug, please report it with the file"


def unexpected_read_error(path: str | Path, err: BaseException) -> str:
    """The one-line error for a reader failure e2r did not name (the caller logs the traceback)."""
    return f"{path}: unexpected {type(err).__name__} while reading ({one_line(err)}); {UNEXPECTED_READ_NOTE}"


def atomic_write(target: str | Path, write: Callable[[Any], Any]) -> None:
    """Write a file through `write(binary file object)` to a temporary name in the same folder,
    fsync it and move it into place: a crash leaves the old file or the new one, never half."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def jsonable(obj: Any) -> Any:
    """Plain JSON values: dataclasses and mappings -> dicts, tuples -> lists, numpy -> Python,
    NaN/inf -> None, paths and other objects -> str."""
    if hasattr(obj, "__dataclass_fields__") and not isinstance(obj, type):
        obj = asdict(obj)
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return jsonable(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return str(obj)


def sniff_dicom(path: Path) -> tuple[bool, str]:
    """Cheap content check: (looks like DICOM, why not). Reads at most 132 bytes.

    Files with the `DICM` preamble pass; so do preamble-less datasets whose first tag is in group
    0x0002 or 0x0008 (some old archives write those).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError as err:
        return False, f"cannot be opened ({err.strerror or err})"
    if not head:
        return False, "is empty (0 bytes)"
    if len(head) == 132 and head[128:132] == b"DICM":
        return True, ""
    if len(head) >= 8:
        group = struct.unpack("<H", head[:2])[0]
        if group in (0x0002, 0x0008):
            return True, ""
    return False, "is not a DICOM file (no DICM marker)"
