"""`e2r index`: embed every study of an echo archive into the vector store."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from e2r.cli.common import (
    ApiKeyOpt, CollectionOpt, DataDirOpt, GroupByOpt, JsonOpt, QdrantUrlOpt, handle_errors, print_json, print_table,
)
from e2r.cli.store_opts import home_dir, open_cli_store


def register(app: typer.Typer) -> None:
    app.command("index")(handle_errors(index))


def index(
    archive: Optional[Path] = typer.Argument(None, help="Root folder of the DICOM echo archive (any layout)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Trained model bundle folder (from `e2r train`)."),
    phenotypes: Optional[Path] = typer.Option(
        None, "--phenotypes",
        help="Phenotype CSV keyed by study UID (schema in the README). Default: phenotypes.csv beside or in ARCHIVE, if any.",
    ),
    collection: str = CollectionOpt,
    data_dir: Optional[Path] = DataDirOpt,
    qdrant_url: Optional[str] = QdrantUrlOpt,
    api_key: Optional[str] = ApiKeyOpt,
    shard: Optional[str] = typer.Option(None, "--shard", help="Index only slice i of n (0-based `i/n`), for n parallel workers."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Decoding processes beside the model (default: one per core; 0 = decode in the main process)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Studies per embedding/upsert batch."),
    shards: Optional[int] = typer.Option(None, "--shards", help="Qdrant server/cluster: shard number of a new collection."),
    replicas: Optional[int] = typer.Option(None, "--replicas", help="Qdrant server/cluster: replication factor of a new collection."),
    store_paths: bool = typer.Option(True, "--paths/--no-paths", help="Keep source file paths (relative to ARCHIVE) in the index; --no-paths when folder names carry patient IDs."),
    group_by: str = GroupByOpt,
    stats: bool = typer.Option(False, "--stats", help="Show what is in the store (collections, counts, model, its ECG preprocessing, phenotype coverage) and exit."),
    as_json: bool = JsonOpt,
) -> None:
    """Embed every echo study of ARCHIVE with a model bundle and upsert it into Qdrant.

    Re-running adds only new or changed studies; an interrupted run picks up where it stopped.
    """
    from e2r.errors import ConfigError

    if stats:
        from indexer.stats import store_stats

        with open_cli_store(data_dir, qdrant_url, api_key) as store:
            report = store_stats(store)
        if as_json:
            print_json(report)
        else:
            print_table(report["collections"], ["name", "points", "with_phenotypes", "model_hash", "preset",
                                                "ecg_preprocess", "e2r_version"])
        return
    if archive is None or model is None:
        raise ConfigError("give ARCHIVE and --model MODEL_DIR (or --stats to see what is indexed)")
    from e2r.bundle import load_model
    from indexer.config import IndexConfig, Shard
    from indexer.pipeline import index_archive

    if phenotypes is None:
        phenotypes = next((p for p in (archive / "phenotypes.csv", archive.parent / "phenotypes.csv") if p.is_file()), None)
    cfg = IndexConfig(
        archive=archive, model_dir=model, phenotypes=phenotypes, collection=collection,
        salt_path=home_dir(data_dir) / "patient_salt", shard=Shard.parse(shard),
        batch_size=batch_size, progress=not as_json, store_paths=store_paths, group_by=group_by,
        **({} if workers is None else {"workers": workers}),
    )
    cfg.validate()
    loaded = load_model(model)
    if phenotypes is not None and not as_json:
        typer.echo(f"using phenotypes from {phenotypes}", err=True)
    with open_cli_store(data_dir, qdrant_url, api_key, shard_number=shards, replication_factor=replicas) as store:
        summary = index_archive(cfg, store, loaded)
    if as_json:
        print_json(summary.to_dict())
        return
    s = summary
    typer.echo(
        f"{s.collection}: {s.indexed} indexed, {s.replaced} replaced, {s.unchanged} unchanged, {s.failed} failed "
        f"({s.videos_indexed} videos; {s.with_phenotypes} with phenotypes); {s.total_in_collection} studies in the collection"
    )
    if s.skipped_files:
        typer.echo("skipped files: " + ", ".join(f"{r}={n}" for r, n in sorted(s.skipped_files.items())))
    for uid, reason in s.failed_studies[:10]:
        typer.echo(f"failed: {uid}: {reason}")
    for message in s.phenotype_errors[:10]:
        typer.echo(f"phenotype row skipped: {message}")
    secs = s.seconds
    if secs.get("total"):
        n = s.indexed + s.replaced
        typer.echo(
            f"time {secs['total']:.1f} s (scan {secs.get('scan', 0):.1f}, decode cpu {secs.get('decode_cpu', 0):.1f}, "
            f"model {secs.get('model', 0):.1f}, store {secs.get('store', 0):.1f}); "
            f"{n / max(secs.get('embed_loop_wall', 1e-9), 1e-9):.2f} studies/s"
        )
