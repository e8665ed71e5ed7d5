"""torch.distributed inside one job: initialised from SLURM (submitit's helper) or torchrun's variables.

One process per GPU (or per CPU slot, backend gloo). The global batch order stays a function of
(seed, step): rank ``r`` of ``W`` trains on the ``r``-th contiguous slice of each global batch
(`local_slice`), DDP averages the gradients, and only rank 0 writes checkpoints, records and
leaderboards (`is_writer`).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from .errors import BenchError


def is_active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def is_writer() -> bool:
    """Only rank 0 writes files."""
    return rank() == 0


def setup(device: torch.device) -> None:
    """Initialise the process group when the job has several tasks, else do nothing.

    In a submitit job of several tasks (``tasks_per_node``/``nodes``, SLURM or local) the rank, world
    size and master address come from ``submitit.helpers.TorchDistributedEnvironment``; under
    torchrun (or any launcher that sets ``WORLD_SIZE``) from the ``env://`` variables.
    """
    if is_active():
        return
    if "WORLD_SIZE" not in os.environ and os.environ.get("SUBMITIT_EXECUTOR") in ("slurm", "local"):
        import submitit

        if submitit.JobEnvironment().num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, init_method="env://")


def local_slice(indices: list[int]) -> list[int]:
    """This rank's contiguous share of a global batch; the batch size must divide by the world size."""
    size = world_size()
    if len(indices) % size:
        raise BenchError(f"batch of {len(indices)} does not split over {size} processes: make it a multiple")
    per_rank = len(indices) // size
    return indices[rank() * per_rank : (rank() + 1) * per_rank]


def barrier() -> None:
    """Wait for every rank (nothing to wait for in a single process)."""
    if is_active():
        dist.barrier()


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank."""
    if not is_active():
        return flag
    value = torch.tensor([int(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over ranks (itself without torch.distributed)."""
    if not is_active():
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / world_size()
