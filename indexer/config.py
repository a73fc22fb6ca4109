"""The typed configuration of one `e2r index` run, validated with messages that name the flag."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from e2r.errors import ConfigError


@dataclass(frozen=True)
class Shard:
    """Index only studies whose stable hash falls in slice `index` of `count` (0 <= index < count)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: Optional[str]) -> "Shard":
        """Parse `i/n` (0-based i) as given to `--shard`."""
        if not text:
            return cls()
        try:
            i, n = (int(part) for part in text.split("/"))
        except ValueError:
            raise ConfigError(f"--shard {text!r}: expected i/n with integers, e.g. 0/4") from None
        if n < 1 or not 0 <= i < n:
            raise ConfigError(f"--shard {text!r}: need 0 <= i < n, e.g. 0/4 ... 3/4")
        return cls(i, n)


@dataclass(frozen=True)
class IndexConfig:
    archive: Path                      # folder tree of DICOM files
    model_dir: Path                    # trained model bundle
    phenotypes: Optional[Path] = None  # phenotype CSV keyed by study UID
    collection: str = "echo_studies"
    salt_path: Optional[Path] = None   # salt for patient-ID hashes, kept outside the index (None: $E2R_HOME's)
    shard: Shard = Shard()
    # Decode processes beside the model. Decoding is the bottleneck (bench/bench_index.py, figures
    # in docs/benchmarks.md), so one per core by default.
    workers: int = os.cpu_count() or 2
    batch_size: int = 32               # studies per encode + upsert batch
    group_by: str = "uid"              # studies by StudyInstanceUID, or "folder" (e2r.echo.archive.GROUP_BY)
    store_paths: bool = True           # keep source paths in the payload (layouts like MIMIC's put patient IDs in folder names)
    progress: bool = True

    def validate(self) -> None:
        """Raise ConfigError naming the flag for values that cannot work."""
        if not self.archive.is_dir():
            raise ConfigError(f"ARCHIVE {self.archive}: not a folder; give the root of the DICOM echo archive")
        if self.workers < 0:
            raise ConfigError(f"--workers {self.workers}: must be >= 0 (0 decodes in the main process)")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size {self.batch_size}: must be >= 1")
        if self.group_by not in ("uid", "folder"):
            raise ConfigError(f"--group-by {self.group_by!r}: must be uid or folder")
