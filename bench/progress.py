"""Progress bars for long loops: live on a terminal; in logs (SLURM, CI) one line per update, every
``$BENCH_PROGRESS_INTERVAL`` seconds (default 30).

tqdm redraws its bar in place with carriage returns, which a log file keeps as one endless line;
off a terminal each redraw becomes a line of its own, never two for the same count (tqdm redraws
the last one when it closes), with a bar of fixed width whatever the postfix (an audio recipe's
many loss terms) takes.
"""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm
from tqdm.std import tqdm as plain_tqdm

LOG_BAR = "{l_bar}{bar:20}{r_bar}"


class LineWriter:
    """A stream for tqdm that writes each redraw as one line (no carriage returns)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


class LogBar(plain_tqdm):
    """A bar for logs: a redraw at the count last shown is skipped."""

    def display(self, msg=None, pos=None):
        if msg is None and self.n == getattr(self, "shown_n", None):
            return True
        self.shown_n = self.n
        return super().display(msg, pos)


def progress(iterable, **kwargs) -> tqdm:
    if sys.stderr.isatty():
        return tqdm(iterable, dynamic_ncols=True, mininterval=0.1, **kwargs)
    interval = float(os.environ.get("BENCH_PROGRESS_INTERVAL", "30"))
    return LogBar(iterable, file=LineWriter(sys.stderr), bar_format=LOG_BAR, mininterval=interval, **kwargs)
