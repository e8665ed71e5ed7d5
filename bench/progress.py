"""Progress bars for long loops: live on a terminal, a line every 30 s in logs (SLURM, CI)."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress(iterable, **kwargs) -> tqdm:
    interactive = sys.stderr.isatty()
    return tqdm(iterable, dynamic_ncols=True, mininterval=0.1 if interactive else 30.0, **kwargs)
