"""Reading a dataset's CSV (plain or gzip) as a stream of rows, with the messages every importer
shares: a missing column is one line naming the file, the column and the columns found; a row
that does not parse is counted and kept by line number, never raised.
"""

from __future__ import annotations

import csv
import gzip
import io
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from e2r.errors import DataError

# How many bad rows are kept as examples (all of them are counted).
MAX_EXAMPLES = 20


@dataclass
class RowErrors:
    """Rows that did not parse: a count per reason and the first few, by file and line."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def add(self, path: str | Path, line: int, reason: str, message: str) -> None:
        """Count one bad row (`reason` a short key) and keep its message if among the first few."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{Path(path).name}:{line}: {message}")

    @property
    def total(self) -> int:
        """Number of bad rows."""
        return sum(self.counts.values())


@contextmanager
def open_text(path: str | Path) -> Iterator[io.TextIOBase]:
    """Open a CSV as text, transparently gunzipping `.gz` (by content, not name); UTF-8 with BOM."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path (the dataset's CSVs are named in the README)")
    try:
        with open(path, "rb") as probe:
            gz = probe.read(2) == b"\x1f\x8b"
        raw = gzip.open(path, "rb") if gz else open(path, "rb")
    except OSError as err:
        raise DataError(f"{path}: cannot be opened ({err.strerror or err})") from None
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    try:
        yield text
    finally:
        text.close()


def read_rows(path: str | Path, required: Sequence[str],
              expected: Optional[str] = None) -> Iterator[tuple[int, dict[str, str]]]:
    """Stream (line number, row) from a CSV, after checking that every `required` column exists
    (the missing-column line ends with "expected `expected`" when given).

    Column names are matched after stripping spaces. Reading stops with one DataError line when the
    file is unreadable (not UTF-8, not gzip, truncated). Memory stays bounded: one row at a time.
    """
    path = Path(path)
    with open_text(path) as fh:
        try:
            reader = csv.reader(fh)
            header = [c.strip() for c in next(reader, [])]
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)}; columns found: "
                                f"{', '.join(header) or '(none)'}; "
                                + (f"expected {expected}" if expected else "rename the column or give the right file"))
            for row in reader:
                # csv.reader counts physical lines; a quoted newline makes the row span several.
                line = reader.line_num
                if not row:
                    continue
                yield line, dict(zip(header, row))
        except (UnicodeDecodeError, csv.Error, OSError, EOFError, gzip.BadGzipFile) as err:
            raise DataError(f"{path}: cannot be read past line {getattr(reader, 'line_num', 0)} "
                            f"({type(err).__name__}: {err}); re-download or re-export the file") from None


def find_file(folder: str | Path, *names: str) -> Path:
    """The first of `names` that exists in folder; DataError naming all of them when none does."""
    folder = Path(folder)
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: none of {', '.join(names)} found; give the dataset's root folder")


def write_atomically(target: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(temporary path)` in target's folder, fsync, then move it onto `target`: a failed
    or interrupted run leaves the old file or none, never a partial CSV (e2r.util.atomic_write's
    contract, for writers such as e2r.pairs.write_pairs that take a path)."""
    import os
    import tempfile

    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as err:
        raise DataError(f"{target}: cannot be written ({err.strerror or err}); choose a writable folder") from None
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise DataError(f"{target}: cannot be written ({err.strerror or err}); check the disk and the folder") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
