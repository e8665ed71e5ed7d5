"""`python -m bench.run -m ... hydra/launcher=slurm` on the real local cluster: one array, a record per
task, a leaderboard with every row, `python -m slurm.status`, and a task stopped by SIGTERM that is
requeued and writes the record of its uninterrupted twin (same array, same environment: exactly)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TINY

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]
REPO = Path(__file__).resolve().parents[2]


def sweep(tmp_path: Path, *overrides: str) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "bench.run", "-m", *TINY, f"leaderboard_dir={tmp_path / 'lb'}",
        "hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path / 'sweep'}", *overrides,
    ]  # fmt: skip
    # tasks print every training step to their log (the stop test watches it); sbatch passes the environment on
    env = {**os.environ, "BENCH_PROGRESS_INTERVAL": "0"}
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def finish(process: subprocess.Popen, timeout_s: float = 240) -> str:
    out, _ = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, out
    return out


def status(tmp_path: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "slurm.status", str(tmp_path / "sweep")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_sweep_is_one_array_with_a_leaderboard_row_per_task(tmp_path):
    tokenizers = ["vqvae_tiny_vq_d4", "vqvae_tiny_ema_d64"]
    finish(sweep(tmp_path, f"tokenizer={','.join(tokenizers)}", f"output_dir={tmp_path / 'results'}"))
    records = sorted((tmp_path / "results" / "builtin" / "records").glob("*.json"))
    assert sorted(json.loads(p.read_text())["tokenizer"] for p in records) == sorted(tokenizers)
    board = (tmp_path / "lb" / "builtin.md").read_text()  # shrunk runs: listed as deviating from the suite's protocol
    assert all(f"- {name} (seeds 0): dataset.max_items 16 vs None" in board for name in tokenizers), board

    table = status(tmp_path)
    jobs = re.findall(r"^\s*(\d+)_(\d+)\s", table, flags=re.M)
    assert len(jobs) == 2 and len({array for array, _ in jobs}) == 1, f"not one array:\n{table}"
    assert table.count("COMPLETED") == 2 and all(str(p) in table for p in records), table


def train_progress(log: Path) -> int:
    """The last training step tqdm printed in a task's stderr (0 before any)."""
    steps = re.findall(r"train:.*?\| *(\d+)/\d+", log.read_text(errors="replace")) if log.exists() else []
    return int(steps[-1]) if steps else 0


def test_task_stopped_by_sigterm_is_requeued_and_writes_the_same_record(tmp_path):
    steps = 8
    process = sweep(tmp_path, "tokenizer=vqvae_tiny_vq_d4", f"suite.train.steps={steps}", "suite.train.checkpoint_every=100",
                    f"output_dir={tmp_path / 'plain'},{tmp_path / 'stopped'}")  # fmt: skip
    deadline = time.monotonic() + 180
    while not (pickles := list((tmp_path / "sweep" / ".submitit").glob("*_1/*_1_submitted.pkl"))):
        assert time.monotonic() < deadline and process.poll() is None, "the array was never submitted"
        time.sleep(0.5)
    job = pickles[0].name[: -len("_submitted.pkl")]
    log = pickles[0].parent / f"{job}_0_log.err"
    while train_progress(log) < 2:
        assert time.monotonic() < deadline and process.poll() is None, f"task {job} never trained 2 steps"
        time.sleep(0.3)
    stopped_at = time.monotonic()
    subprocess.run(["scancel", "--signal=TERM", job], check=True)
    finish(process)
    print(f"requeue and finish after SIGTERM: {time.monotonic() - stopped_at:.1f} s")

    text = log.read_text(errors="replace") + log.with_name(f"{job}_0_log.out").read_text(errors="replace")
    assert "requeueing SLURM job" in text, text[-3000:]
    resumed = re.search(r"train step (\d+)/", text)
    (plain,), (stopped,) = (list((tmp_path / d / "builtin" / "records").glob("*.json")) for d in ("plain", "stopped"))
    plain, stopped = json.loads(plain.read_text()), json.loads(stopped.read_text())
    assert 2 <= int(resumed.group(1)) < steps and stopped["train"]["steps"] == steps
    assert stopped["metrics"] == plain["metrics"]
    assert stopped["train"]["final_reconstruction_loss"] == plain["train"]["final_reconstruction_loss"]
