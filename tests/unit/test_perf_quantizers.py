"""Smoke test of ``python -m bench.perf quantizers`` on its cheapest row."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("vector_quantize_pytorch")
pytest.importorskip("tabulate")


def test_quantizer_benchmark_rows(capsys):
    from bench.perf.__main__ import main

    assert main(["quantizers", "--quick", "--json", "--threads", "1", "--only", "FSQ"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == ["FSQ [8,8,8,5,5,5]"]
    row = rows[0]
    assert row["codes_match"] is True
    assert row["ours_ms"] > 0 and row["peer_ms"] > 0 and row["ratio"] == pytest.approx(row["peer_ms"] / row["ours_ms"], rel=0.01)
    assert row["warmup"] == {"ours": 2, "peer": 2}  # both sides warmed up and timed alike
    assert row["repeats"]["ours"] == row["repeats"]["peer"] >= 5
    for key in ("ours_min_ms", "peak_mem_mb", "gflop", "pct_peak", "first_ms", "peer_first_ms", "note"):
        assert key in row
