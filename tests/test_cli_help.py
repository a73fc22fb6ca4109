"""Every command explains itself, and `e2r --help` does not import heavy libraries."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from e2r.cli import app

runner = CliRunner()


def _command_names() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)


def test_every_command_has_help_text():
    names = _command_names()
    assert "inspect" in names
    for name in names:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        cmd = __import__("typer.main", fromlist=["get_command"]).get_command(app).commands[name]
        assert (cmd.help or "").strip(), f"command {name} has no help text"


def test_root_help_is_light():
    code = (
        "import sys; from e2r.cli import app; "
        "heavy = [m for m in ('torch', 'pydicom', 'qdrant_client', 'qdrant_edge', 'wfdb', 'sklearn', 'scipy') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported by the CLI at start-up: {out.stdout}"


def test_unknown_command_fails():
    result = runner.invoke(app, ["no-such-command"])
    assert result.exit_code != 0
