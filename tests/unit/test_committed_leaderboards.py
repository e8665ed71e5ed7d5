"""The committed leaderboards are what the published records give (python -m bench.leaderboard --check):
the records under leaderboards/records/ alone, whatever a local run left under results/."""

from __future__ import annotations

from pathlib import Path

from bench.leaderboard import check

REPO = Path(__file__).resolve().parents[2]


def test_committed_leaderboards_are_fresh():
    assert check(REPO / "leaderboards") == []
