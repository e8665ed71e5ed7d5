"""Progress bars in logs: a line per count (none twice), the end reached, a bar as wide whatever follows it."""

from __future__ import annotations

import io
import re

from bench.progress import progress


def test_log_lines_are_one_per_count_with_a_fixed_bar(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setenv("BENCH_PROGRESS_INTERVAL", "0")
    bar = progress(range(5), desc="train", unit="step")
    for _ in bar:
        bar.set_postfix({f"term_{k}": 0.123 for k in range(12)}, refresh=False)  # an audio recipe's many terms
    lines = stream.getvalue().splitlines()
    counts = [re.search(r"\| *(\d+)/5", line).group(1) for line in lines]
    assert counts == ["0", "1", "2", "3", "4", "5"]
    assert all(len(line.split("|")[1]) == 20 for line in lines)
