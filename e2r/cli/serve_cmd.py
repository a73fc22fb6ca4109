"""`e2r serve`: the search service (HTTP API + browser viewer) over one open store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from e2r.cli.common import CollectionOpt, DataDirOpt, QdrantUrlOpt, handle_errors
from e2r.cli.store_opts import home_dir, open_cli_store

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def register(app: typer.Typer) -> None:
    app.command("serve")(handle_errors(serve))


def serve(
    data_dir: Optional[Path] = DataDirOpt,
    qdrant_url: Optional[str] = QdrantUrlOpt,
    qdrant_api_key: Optional[str] = typer.Option(
        None, "--qdrant-api-key", envvar="E2R_QDRANT_API_KEY", help="API key for the Qdrant server (env E2R_QDRANT_API_KEY)."),
    collection: str = CollectionOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; any other than loopback needs --api-key."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    api_key: Optional[str] = typer.Option(
        None, "--api-key", envvar="E2R_API_KEY",
        help="Key every request must carry (X-API-Key header; the viewer: open /?key=KEY once) (env E2R_API_KEY)."),
    archive: Optional[Path] = typer.Option(
        None, "--archive", help="Root of the indexed echo archive (the folder given to `e2r index`); previews need it."),
    examples: Optional[Path] = typer.Option(None, "--examples", help="Folder of ECG records the viewer offers as examples."),
    max_upload_mb: float = typer.Option(16.0, "--max-upload-mb", help="Largest request body accepted (413 beyond)."),
    preview_cache: Optional[Path] = typer.Option(
        None, "--preview-cache", help="Folder for cached previews (default `$E2R_HOME/previews/COLLECTION`)."),
) -> None:
    """Serve search over HTTP (POST /v1/search, the JSON of `e2r search --json`) and the viewer at /."""
    from e2r.errors import ConfigError

    if host not in LOOPBACK and not api_key:
        raise ConfigError(f"--host {host}: binding an address other than 127.0.0.1 needs --api-key KEY "
                          "(or E2R_API_KEY) so that only holders of the key can search")
    if api_key is not None and len(api_key) < 8:
        raise ConfigError("--api-key: use at least 8 characters")
    if not 0 < max_upload_mb <= 1024:
        raise ConfigError(f"--max-upload-mb {max_upload_mb}: give a size in MiB between 0 and 1024")
    if archive is not None and not archive.is_dir():
        raise ConfigError(f"--archive {archive}: not a folder; give the archive root that was indexed")

    import uvicorn

    from queries.search import Searcher
    from queries.serve import ServeConfig, create_app

    cache = preview_cache or home_dir(data_dir) / "previews" / collection
    with open_cli_store(data_dir, qdrant_url, qdrant_api_key) as store:
        searcher = Searcher(store, collection)
        config = ServeConfig(collection=collection, cache_dir=cache, archive_root=archive, examples_dir=examples,
                             api_key=api_key, max_upload_bytes=int(max_upload_mb * 2**20))
        app = create_app(config, searcher)
        typer.echo(f"e2r serve: collection {collection!r} ({store.backend}), viewer at http://{host}:{port}/"
                   f"{'?key=...' if api_key else ''}; Ctrl-C stops", err=True)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
