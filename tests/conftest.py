"""Shared test helpers: composing shrunk run configs."""

from __future__ import annotations

import pytest

from bench.config import compose


@pytest.fixture
def compose_run(tmp_path):
    """Compose ``bench.run``'s config with overrides, writing results under ``tmp_path``."""

    def _compose(*overrides: str):
        return compose([f"output_dir={tmp_path / 'results'}", f"leaderboard_dir={tmp_path / 'leaderboards'}", *overrides])

    return _compose


# The smallest real run of the built-in suite: a few steps on a few crops.
TINY = ("seed=0", "suite.train.steps=4", "suite.train.batch_size=8", "suite.dataset.max_items=16", "suite.eval.batch_size=8", "suite.train.checkpoint_every=2")
