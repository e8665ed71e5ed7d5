"""Progress bars for long loops: live on a terminal; in logs (SLURM, CI) one line per update, every
``$BENCH_PROGRESS_INTERVAL`` seconds (default 30).

tqdm redraws its bar in place with carriage returns, which a log file keeps as one endless line;
off a terminal each redraw becomes a line of its own.
"""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


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


def progress(iterable, **kwargs) -> tqdm:
    if sys.stderr.isatty():
        return tqdm(iterable, dynamic_ncols=True, mininterval=0.1, **kwargs)
    interval = float(os.environ.get("BENCH_PROGRESS_INTERVAL", "30"))
    return tqdm(iterable, file=LineWriter(sys.stderr), ncols=100, mininterval=interval, **kwargs)
