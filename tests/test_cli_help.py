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


EXPECTED = {"demo", "synth", "synth-report", "pair", "phenotypes", "train-echo", "train", "index", "search", "serve", "eval", "inspect"}


def test_every_command_has_help_text_and_options_help():
    import typer.main

    names = _command_names()
    assert set(names) == EXPECTED, f"commands changed: {sorted(set(names) ^ EXPECTED)}; update EXPECTED and the README"
    group = typer.main.get_command(app)
    for name in names:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        cmd = group.commands[name]
        assert (cmd.help or "").strip(), f"command {name} has no help text"
        for param in cmd.params:
            if param.param_type_name == "option":
                assert (param.help or "").strip(), f"{name} {param.opts[0]} has no help text"


def test_every_command_is_in_the_readme():
    """As sqlite-utils' test_docs: a command nobody can find in the README does not exist."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [n for n in _command_names() if f"e2r {n}" not in readme]
    assert not missing, f"commands missing from README.md: {missing}"


def test_json_flag_is_bound_the_same_way_everywhere():
    import typer.main

    group = typer.main.get_command(app)
    for name, cmd in group.commands.items():
        for param in cmd.params:
            if "--json" in param.opts:
                assert param.name == "as_json", f"{name}: --json is bound as {param.name!r}, not as_json"


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
