"""Progress bars: a tqdm bar on a terminal, one summary line in a log.

A bar redraws itself with carriage returns; on a terminal that is one line, in a file or a pipe it
is thousands. tqdm's own convention (`disable=None`) is to draw nothing when the stream is not a
terminal, and e2r follows it: there the bar keeps counting but draws nothing, and when it closes
it logs (INFO) the line a finished bar leaves on a terminal: what it counted, the time and the rate.
A transient bar (`leave=False`: a training epoch, whose own log line carries the rate) leaves
nothing on a terminal, so it logs nothing either. A bar turned off by its caller
(`disable=not progress`) stays off and silent.

Every bar in e2r, trainer, indexer and queries comes from `progress_bar`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Iterable, Optional, TextIO

from tqdm import tqdm

log = logging.getLogger(__name__)

SUMMARY_FORMAT = "{n_fmt}/{total_fmt} in {elapsed} at {rate_fmt}{postfix}"
SUMMARY_FORMAT_NO_TOTAL = "{n_fmt} in {elapsed} at {rate_fmt}{postfix}"


def is_terminal(stream: Any) -> bool:
    """Whether a bar drawn on `stream` is seen as one line: tqdm's test for `disable=None`."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class _Discard:
    """Where the redraws of a bar that nobody watches go."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class ProgressBar(tqdm):
    """tqdm that draws on a terminal and, elsewhere, logs one summary line when it closes."""

    def __init__(self, iterable: Optional[Iterable] = None, *args: Any, file: Optional[TextIO] = None,
                 disable: Optional[bool] = False, **kwargs: Any) -> None:
        stream = sys.stderr if file is None else file
        self._summarise = not disable and not is_terminal(stream)
        super().__init__(iterable, *args, file=_Discard() if self._summarise else stream, disable=disable, **kwargs)

    def close(self) -> None:
        # tqdm.close sets disable, so a second close (context manager, then __del__) logs nothing.
        if getattr(self, "_summarise", False) and not getattr(self, "disable", True) and self.leave:
            log.info("%s", self.summary())
        super().close()

    def summary(self) -> str:
        """The line a finished bar leaves, e.g. 'indexing: 313/313 in 00:14 at 22.04study/s'."""
        fields = self.format_dict
        fields["bar_format"] = SUMMARY_FORMAT if fields.get("total") else SUMMARY_FORMAT_NO_TOTAL
        line = " ".join(self.format_meter(**{**fields, "prefix": ""}).split())  # tqdm pads the rate
        return f"{self.desc}: {line}" if self.desc else line


def progress_bar(iterable: Optional[Iterable] = None, **kwargs: Any) -> ProgressBar:
    """A progress bar with tqdm's arguments (`total`, `desc`, `unit`, `disable`, `leave`, ...):
    drawn on a terminal, one logged summary line elsewhere (see the module docstring)."""
    return ProgressBar(iterable, **kwargs)
