"""Opening the vector store from CLI options (the only place that turns flags into a store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from e2r.cli.common import default_home


def home_dir(data_dir: Optional[Path]) -> Path:
    """The e2r home: embedded store (`store/`), patient-ID salt, caches."""
    return Path(data_dir).expanduser() if data_dir else default_home()


def open_cli_store(data_dir: Optional[Path], url: Optional[str], api_key: Optional[str], **server_opts: Any) -> Any:
    """A Qdrant server when a URL is given, else the embedded store under the e2r home.

    server_opts (shard_number, replication_factor) apply to collections created on a server.
    """
    from e2r.store import open_store

    if url:
        return open_store(url=url, api_key=api_key, **{k: v for k, v in server_opts.items() if v is not None})
    return open_store(data_dir=home_dir(data_dir))
