"""Progress bars draw on a terminal and leave one summary line in a log (e2r/progress.py)."""

from __future__ import annotations

import io
import logging

from typer.testing import CliRunner

from e2r.cli import app
from e2r.progress import progress_bar


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True


def _summaries(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "e2r.progress"]


def test_a_bar_into_a_file_draws_nothing_and_logs_one_line(caplog):
    stream = io.StringIO()
    with caplog.at_level(logging.INFO, logger="e2r.progress"):
        for _ in progress_bar(range(20_000), desc="indexing", unit="study", file=stream, mininterval=0):
            pass
    assert stream.getvalue() == ""  # tqdm would write ~20,000 '\r' redraws here
    [line] = _summaries(caplog)
    assert line.startswith("indexing: 20000/20000 in ") and "study/s" in line


def test_a_bar_on_a_terminal_is_drawn(caplog):
    stream = _Terminal()
    with caplog.at_level(logging.INFO, logger="e2r.progress"):
        for _ in progress_bar(range(50), desc="scanning", file=stream, mininterval=0):
            pass
    out = stream.getvalue()
    assert out.count("\r") >= 50 and "scanning: 100%" in out and "50/50" in out
    assert _summaries(caplog) == []  # the bar itself is the record


def test_a_disabled_bar_stays_off_everywhere(caplog):
    for stream in (io.StringIO(), _Terminal()):
        with caplog.at_level(logging.INFO, logger="e2r.progress"):
            with progress_bar(total=10, desc="synth", file=stream, disable=True) as bar:
                bar.update(10)
        assert stream.getvalue() == ""
    assert _summaries(caplog) == []


def test_transient_bars_leave_no_line_and_closing_twice_logs_once(caplog):
    with caplog.at_level(logging.INFO, logger="e2r.progress"):
        with progress_bar(total=4, desc="epoch 1/2", file=io.StringIO(), leave=False) as bar:
            bar.update(4)
        assert _summaries(caplog) == []
        bar = progress_bar(desc="measurements", unit=" rows", unit_scale=True, file=io.StringIO())
        bar.update(300_000)
        bar.close()
        bar.close()
    [line] = _summaries(caplog)
    assert line.startswith("measurements: 300k in ") and "rows/s" in line


def test_cli_output_captured_to_a_file_has_no_bar_redraws(tmp_path):
    """`e2r synth` draws three bars (synth, check ECGs, check videos); a captured run shows none."""
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "c"), "--patients", "2", "--seed", "1", "--size", "48",
                                      "--frames", "8", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output and "it/s" not in result.output
