"""Every command explains itself, and `e2r --help` does not import heavy libraries."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

from typer.testing import CliRunner

from e2r.cli import app

runner = CliRunner()


def _command_names() -> list[str]:
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)


EXPECTED = {"demo", "synth", "synth-report", "pair", "phenotypes", "train-echo", "train", "export-onnx", "index", "search",
            "embed", "serve", "eval", "inspect"}


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


# --- help renders as paragraphs -------------------------------------------------------------------
# The app uses rich_markup_mode="markdown": a docstring or option help is Markdown, so lines of one
# paragraph join and blank lines separate paragraphs. Rendered at a width where no paragraph needs
# wrapping, each source paragraph (or list item) must then sit on one rendered line; a hard wrap
# that survived would split it.

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")  # colours, links (FORCE_COLOR in CI)
_LIST_ITEM = re.compile(r"^(?:[-*+]|\d+[.)])\s+")


def _walk(command, path=()):
    """Every command and sub-command of the app, with the argv that reaches it."""
    yield list(path), command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


def _source_paragraphs(text: str) -> list[str]:
    """The paragraphs and list items of a help text as one line each, as a reader should see them."""
    text = inspect.cleandoc(text).partition("\f")[0]
    out = []
    for block in re.split(r"\n\s*\n", text):
        items: list[list[str]] = []
        for line in block.splitlines():
            if _LIST_ITEM.match(line) or not items:
                items.append([_LIST_ITEM.sub("", line)])
            else:
                items[-1].append(line)
        out += [" ".join(x.strip() for x in item).replace("`", "") for item in items]
    return [p for p in out if p]


def _rendered_lines(argv: list[str]) -> list[str]:
    result = runner.invoke(app, [*argv, "--help"], env={"COLUMNS": "2000", "TERMINAL_WIDTH": "2000"})
    assert result.exit_code == 0, (argv, result.output)
    return [" ".join(line.replace("`", "").split()) for line in _ANSI.sub("", result.output).splitlines()]


def test_help_paragraphs_are_not_broken_at_source_line_wraps():
    import typer.main

    broken = []
    for argv, command in _walk(typer.main.get_command(app)):
        lines = _rendered_lines(argv)
        texts = [command.help or ""] + [p.help or "" for p in command.params if getattr(p, "help", None)]
        for text in texts:
            for paragraph in _source_paragraphs(text):
                if not any(paragraph in line for line in lines):
                    broken.append(f"e2r {' '.join(argv)} --help: {paragraph[:70]!r}...")
    assert not broken, "help text split or lost at a source line wrap:\n" + "\n".join(broken)


def test_help_keeps_markdown_lists_as_lists():
    """`e2r eval` lists its three modes; each renders as its own bullet."""
    lines = _rendered_lines(["eval"])
    bullets = [line for line in lines if line.startswith("• ")]
    assert [b.split()[1] for b in bullets[:3]] == ["--benchmark", "--model", "--ecg-labels"], bullets
