"""Progress bars for long loops: live on a terminal; in logs (SLURM, CI) a line every
``$BENCH_PROGRESS_INTERVAL`` seconds (default 30)."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress(iterable, **kwargs) -> tqdm:
    interval = 0.1 if sys.stderr.isatty() else float(os.environ.get("BENCH_PROGRESS_INTERVAL", "30"))
    return tqdm(iterable, dynamic_ncols=True, mininterval=interval, **kwargs)
