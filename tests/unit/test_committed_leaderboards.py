"""The committed leaderboards are what the committed records give (python -m bench.leaderboard --check)."""

from __future__ import annotations

from pathlib import Path

from bench.leaderboard import check

REPO = Path(__file__).resolve().parents[2]


def test_committed_leaderboards_are_fresh():
    assert check(REPO / "results", REPO / "leaderboards") == []
