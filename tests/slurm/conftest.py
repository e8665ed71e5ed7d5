"""Fixtures for tests that submit real jobs to a (local) SLURM cluster.

Start one with ``sudo slurm/local_cluster.sh install && sudo slurm/local_cluster.sh start``; without
``sbatch`` or an idle node every test here is skipped, with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
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


HYDRA_APP = """
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    job = os.environ.get("SLURM_ARRAY_JOB_ID", "none")
    Path(cfg.out_dir, f"a{cfg.a}.txt").write_text(f"{cfg.a * 10} {job}")


if __name__ == "__main__":
    main()
"""


@pytest.fixture
def run_hydra_app(tmp_path):
    """Run a tiny standalone Hydra app as ``-m a=1,2 <launcher args>`` (with bench/conf on the
    search path, so ``hydra/launcher=slurm|local`` are the harness's configs); check both
    outputs and return {file name: [value, SLURM_ARRAY_JOB_ID or "none"]}."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text("a: 0\nout_dir: ???\n")
    (tmp_path / "app.py").write_text(textwrap.dedent(HYDRA_APP))
    out = tmp_path / "out"
    out.mkdir()

    def run(launcher_args: list[str], timeout_s: float = 90) -> dict[str, list[str]]:
        cmd = [
            sys.executable, "app.py", "-m", "a=1,2", f"out_dir={out}",
            f"hydra.searchpath=[file://{REPO / 'bench' / 'conf'}]",
            f"hydra.sweep.dir={tmp_path / 'multirun'}", *launcher_args,
        ]  # fmt: skip
        proc = subprocess.run(
            cmd, cwd=tmp_path, capture_output=True, text=True, timeout=timeout_s,
            env={**os.environ, "HYDRA_FULL_ERROR": "1"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        results = {p.name: p.read_text().split() for p in out.iterdir()}
        assert sorted(results) == ["a1.txt", "a2.txt"], proc.stdout + proc.stderr
        assert results["a1.txt"][0] == "10" and results["a2.txt"][0] == "20"
        return results

    return run
