"""Real jobs on the local SLURM cluster, through slurm.make_executor and the Hydra launcher."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import submitit

from slurm import make_executor

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm_cluster")]

# The jobs unpickle the functions below; pytest's module name is not importable in the job,
# so ship them by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

JOB_TIMEOUT_S = 90


def wait_result(job: submitit.Job, timeout_s: float = JOB_TIMEOUT_S):
    """job.result(), but fail (and cancel the job) instead of hanging forever."""
    deadline = time.monotonic() + timeout_s
    while not job.done():
        if time.monotonic() > deadline:
            job.cancel(check=False)
            pytest.fail(f"job {job.job_id} not done after {timeout_s} s (state {job.state})")
        time.sleep(0.5)
    return job.result()


def square(x: int) -> int:
    return x * x


def fail(x: int) -> int:
    raise ValueError(f"boom {x}")


class Accumulate(submitit.helpers.Checkpointable):
    """Sums i*i for i < n, one step per `step_s`; the state (i, total) survives a requeue."""

    def __init__(self) -> None:
        self.i = 0
        self.total = 0
        self.starts: list[int] = []  # the value of i each time the job (re)started

    def __call__(self, n: int, progress: str | None = None, step_s: float = 0.0):
        self.starts.append(self.i)
        while self.i < n:
            self.total += self.i * self.i
            self.i += 1
            if progress:
                Path(progress).write_text(str(self.i))
            time.sleep(step_s)
        return self.total, self.starts


@pytest.fixture
def executor(tmp_path):
    return make_executor("local", folder=tmp_path / "%j", cluster="slurm", timeout_min=5)


def test_map_array(executor):
    jobs = executor.map_array(square, [1, 2, 3, 4])
    assert len({j.job_id.split("_")[0] for j in jobs}) == 1, "one SLURM array for the 4 tasks"
    assert [wait_result(j) for j in jobs] == [1, 4, 9, 16]


def test_failing_task_raises_with_remote_error(executor):
    job = executor.submit(fail, 42)
    with pytest.raises(submitit.core.utils.FailedJobError) as err:
        wait_result(job)
    assert "ValueError" in str(err.value) and "boom 42" in str(err.value)


def test_checkpointable_resumes_after_preemption(executor, tmp_path):
    n, progress = 12, tmp_path / "progress"
    expected_total, _ = Accumulate()(n)  # uninterrupted, in-process

    job = executor.submit(Accumulate(), n, str(progress), 0.5)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while not (progress.exists() and progress.read_text() and int(progress.read_text()) >= 3):
        assert time.monotonic() < deadline, f"job never progressed (state {job.state})"
        assert not job.done(), f"job ended before it could be preempted: {job.state}"
        time.sleep(0.2)
    job._interrupt()  # preemption: SIGTERM then USR2 -> checkpoint -> requeue

    total, starts = wait_result(job)
    assert total == expected_total
    assert len(starts) == 2, f"expected one requeue, the job started at i={starts}"
    assert 3 <= starts[1] < n, f"the requeued job restarted from scratch: starts={starts}"


@pytest.mark.parametrize("launcher", ["submitit_slurm", "bench_slurm"])
def test_hydra_multirun_submits_one_array(run_hydra_app, launcher, tmp_path):
    if launcher == "submitit_slurm":  # the plugin's own config, with overrides
        args = [
            "hydra/launcher=submitit_slurm", "hydra.launcher.partition=debug",
            "hydra.launcher.timeout_min=5", "hydra.launcher.mem_gb=1",
            "hydra.launcher.cpus_per_task=1", "hydra.launcher.array_parallelism=2",
            f"hydra.launcher.submitit_folder={tmp_path / 'submitit' / '%j'}",
        ]  # fmt: skip
    else:  # the harness's bench/conf/hydra/launcher/slurm.yaml
        args = ["hydra/launcher=slurm"]
    results = run_hydra_app(args)
    array_ids = {job for _, job in results.values()}
    assert len(array_ids) == 1 and "none" not in array_ids, f"not one SLURM array: {array_ids}"


def test_cancelled_job_is_detected(executor):
    """Needs accounting (slurmdbd): without sacct, result() on a cancelled job waits forever."""
    sacct = subprocess.run(["sacct", "-n", "-X"], capture_output=True, text=True, timeout=15)
    if sacct.returncode != 0:
        pytest.skip(f"no SLURM accounting (sacct: {sacct.stderr.strip()}); cancelled jobs are undetectable")
    job = executor.submit(time.sleep, 120)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while job.state != "RUNNING":
        assert time.monotonic() < deadline, f"job never started (state {job.state})"
        time.sleep(0.5)
    job.cancel()
    with pytest.raises(submitit.core.utils.UncompletedJobError):
        wait_result(job, timeout_s=60)
