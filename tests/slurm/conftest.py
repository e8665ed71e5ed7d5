"""Fixtures for tests that submit real jobs to a (local) SLURM cluster.

Start one with ``sudo slurm/local_cluster.sh install && sudo slurm/local_cluster.sh start``; without
``sbatch`` or an idle node every test here is skipped, with the reason.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

HOW = "start one with: sudo slurm/local_cluster.sh install && sudo slurm/local_cluster.sh start"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slurm: submits real jobs to a local SLURM cluster")


def _idle_node_reason() -> str | None:
    """None when sbatch exists and sinfo reports an idle (or partly used) node, else why not."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return f"SLURM not installed (no sbatch/sinfo on PATH); {HOW}"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=15, check=False
        )
    except subprocess.TimeoutExpired:
        return f"sinfo timed out: is slurmctld running? {HOW}"
    states = out.stdout.split()
    if out.returncode != 0:
        return f"sinfo failed ({out.stderr.strip() or out.returncode}); {HOW}"
    if not any(s.rstrip("*~#!%$@^-") in {"idle", "mix"} for s in states):
        return f"no idle SLURM node (sinfo node states: {states or 'none'}); {HOW}"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """Skip unless a SLURM cluster with an idle node answers."""
    reason = _idle_node_reason()
    if reason:
        pytest.skip(reason)
