"""One process at a time per embedded store folder: an OS file lock held while the store is open.

The lock (flock/LockFileEx via portalocker) dies with its process, so a store whose indexer was
SIGKILLed opens again at once. The holder's pid and command line sit in a separate owner file
(readable while locked on every OS) so a second opener can say who holds the store.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import IO, Optional

import portalocker

from e2r.errors import StoreError
from e2r.util import atomic_write

LOCK_NAME = "store.lock"
OWNER_NAME = "store.lock.owner"


class StoreLock:
    """An exclusive lock on a store folder; `acquire` raises StoreError naming the holder."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._fh: Optional[IO[str]] = None

    def acquire(self, wait_s: float = 0.0) -> None:
        """Take the lock, retrying for up to `wait_s` seconds while another process holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fh = open(self.folder / LOCK_NAME, "a+")
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            try:
                portalocker.lock(fh, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
                break
            except portalocker.exceptions.LockException:
                if time.monotonic() >= deadline:
                    fh.close()
                    raise StoreError(self._held_message()) from None
                time.sleep(0.1)
        self._fh = fh
        owner = {"pid": os.getpid(), "cmd": " ".join(sys.argv)[:200], "since": time.time()}
        atomic_write(self.folder / OWNER_NAME, lambda f: f.write(json.dumps(owner).encode()))

    def release(self) -> None:
        """Give the lock back (idempotent)."""
        if self._fh is None:
            return
        try:
            (self.folder / OWNER_NAME).unlink(missing_ok=True)
            portalocker.unlock(self._fh)
        finally:
            self._fh.close()
            self._fh = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fh is not None

    def _held_message(self) -> str:
        try:
            owner = json.loads((self.folder / OWNER_NAME).read_text())
            who = f"pid {owner.get('pid')}: {owner.get('cmd') or '?'}"
        except (OSError, ValueError):
            who = "pid unknown"
        return (
            f"store folder {self.folder} is locked by a running process ({who}); the embedded store "
            "serves one process at a time: wait for it to finish, or run a Qdrant server "
            "(docker compose up -d) and pass --qdrant-url to index and search at the same time"
        )
