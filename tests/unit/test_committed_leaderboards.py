"""The committed leaderboards are what the records give (python -m bench.leaderboard --check):
the published records under leaderboards/records/, plus any local ones under results/."""

from __future__ import annotations

from pathlib import Path

from bench.leaderboard import check

REPO = Path(__file__).resolve().parents[2]


def test_committed_leaderboards_are_fresh():
    assert check(REPO / "results", REPO / "leaderboards") == []
