"""`e2r export-onnx`: add the ECG encoder's ONNX graph to an existing model bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from e2r.cli.common import JsonOpt, handle_errors, print_json


def register(app: typer.Typer) -> None:
    app.command("export-onnx")(handle_errors(export_onnx))


def export_onnx(
    bundle: Path = typer.Argument(..., help="Model bundle folder (the --out of `e2r train`)."),
    probe_ecgs: Optional[list[Path]] = typer.Option(
        None, "--probe-ecgs", help="ECG records, folders or .txt lists added to the export check's probe set "
                                   "(repeatable); the phantom probe ECGs are always checked."),
    as_json: bool = JsonOpt,
) -> None:
    """Write the ECG encoder's ONNX graph into a model bundle, so that `e2r search`, `e2r serve`, `e2r embed`
    and `e2r eval --ecg-labels` encode ECGs with ONNX Runtime and never import torch.

    `e2r train` writes the graph into every new bundle; this adds it to one written before (or
    writes it again). It needs torch, onnx and onnxruntime. Before the graph is kept, ONNX Runtime
    runs it on a fixed set of phantom ECGs (and the --probe-ecgs records) and its outputs must equal
    the torch model's within 1e-4; otherwise it is refused and the bundle is left as it was. The
    bundle's hash does not change, so indexes built with it keep working.
    """
    from e2r.bundle import add_ecg_graph

    record = add_ecg_graph(bundle, probe_ecgs or ())
    graph = bundle / record["file"]
    if as_json:
        print_json({"bundle": str(bundle), "graph": str(graph), "bytes": graph.stat().st_size, **record})
        return
    probe = record["probe"]
    real = f" + {probe['real']} real" if probe["real"] else ""
    typer.echo(f"ECG graph written: {graph} ({graph.stat().st_size / 2**20:.1f} MiB, ONNX opset {record['opset']}); "
               f"max abs diff to torch {record['max_abs_diff']:.1e} on {probe['phantom']} phantom{real} probe ECGs")
