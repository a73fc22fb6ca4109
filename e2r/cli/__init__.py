"""The `e2r` command line: a thin layer over the library.

Each command lives in its own module (`*_cmd.py`) with a `register(app)` function; heavy imports
(torch, qdrant, pydicom) happen inside the command functions so `e2r --help` stays instant.
"""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="e2r",
    help="Find echo studies that look like the heart behind an ECG (Echo2ECG + Qdrant).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help is Markdown: lines of one paragraph join, a blank line starts the next paragraph, "- " starts a
    # list item, `code` is literal. So docstrings and help= strings wrap freely in the source.
    rich_markup_mode="markdown",
)

# Command modules, in the order `e2r --help` lists them.
_COMMAND_MODULES = (
    "demo_cmd",
    "synth_cmd",
    "pair_cmd",
    "phenotypes_cmd",
    "train_echo_cmd",
    "train_cmd",
    "export_cmd",
    "index_cmd",
    "search_cmd",
    "embed_cmd",
    "serve_cmd",
    "eval_cmd",
    "inspect_cmd",
)

for _name in _COMMAND_MODULES:
    importlib.import_module(f"e2r.cli.{_name}").register(app)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the e2r version and exit."),
) -> None:
    """Find echo studies that look like the heart behind an ECG (Echo2ECG + Qdrant)."""
    if version:
        from e2r import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
        code = 0
    except SystemExit as exc:  # Typer ends every command with sys.exit
        if exc.code is not None and not isinstance(exc.code, int):
            raise
        code = exc.code or 0
    _exit(code)


def _exit(code: int) -> None:
    """End the process once the command is done. With torch loaded, the interpreter's own teardown
    (freeing every module and object) costs ~0.65 s on 2 cores, a fifth of a one-off `e2r search`
    (bench/bench_search.py): run the exit handlers (logging, worker pools, temporary files), flush
    the standard streams and leave without it. Every file e2r writes is closed (or atomically
    renamed) before its command returns, so nothing is lost."""
    if "torch" not in sys.modules:
        sys.exit(code)
    import atexit
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing more can be written anyway
            pass
    os._exit(code)
