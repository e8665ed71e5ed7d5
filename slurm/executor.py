"""Build a submitit executor from a cluster profile.

A cluster profile is a small flat mapping (a YAML file in ``slurm/profiles/`` or a dict)::

    cluster: slurm          # slurm | local | debug (optional; default: slurm if sbatch exists)
    partition: gpu
    gpus_per_node: 8
    cpus_per_task: 10
    mem_gb: 480
    timeout_min: 720
    account: my-project
    qos: normal
    constraint: a100
    array_parallelism: 64   # how many array tasks run at once
    max_num_timeout: 3      # how many times a timed-out Checkpointable job is requeued

Keys are submitit's generic parameters (``timeout_min``, ``mem_gb``, ``gpus_per_node``, ...) and,
without their ``slurm_`` prefix, any SLURM executor parameter (``partition``, ``account``,
``additional_parameters``, ``setup``, ...). Unknown keys raise, so a typo never silently drops a
resource request. SLURM-only keys are ignored by the ``local`` and ``debug`` clusters, so one
profile serves all three and local runs take the same code path as cluster runs.

Example::

    from slurm import make_executor
    ex = make_executor("local", folder="logs/%j")            # bundled profile by name
    jobs = ex.map_array(evaluate, shard_ids)                 # one SLURM array
    results = [j.result() for j in jobs]
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import submitit
import yaml

PROFILES_DIR = Path(__file__).parent / "profiles"
CLUSTERS = ("slurm", "local", "debug")

# submitit's cluster-independent parameters (AutoExecutor translates them per cluster)
_GENERIC = {
    "name",
    "timeout_min",
    "mem_gb",
    "nodes",
    "cpus_per_task",
    "gpus_per_node",
    "tasks_per_node",
    "stderr_to_stdout",
}
# only accepted by the AutoExecutor constructor, not by update_parameters
_CONSTRUCTOR = {"max_num_timeout"}


def _slurm_keys() -> set[str]:
    return set(submitit.SlurmExecutor._valid_parameters())


def load_profile(profile: Mapping[str, Any] | str | os.PathLike) -> dict[str, Any]:
    """Return a profile as a dict: from a mapping, a YAML path, or a bundled profile's name."""
    if isinstance(profile, Mapping):
        return dict(profile)
    path = Path(profile)
    if not path.exists() and path.suffix == "" and (PROFILES_DIR / f"{path}.yaml").exists():
        path = PROFILES_DIR / f"{path}.yaml"
    if not path.exists():
        bundled = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"cluster profile {str(profile)!r} not found (bundled profiles: {bundled})")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"cluster profile {path} must be a mapping, got {type(data).__name__}")
    return data


def make_executor(
    profile: Mapping[str, Any] | str | os.PathLike,
    folder: str | os.PathLike,
    cluster: str | None = None,
    **overrides: Any,
) -> submitit.AutoExecutor:
    """A ``submitit.AutoExecutor`` writing its logs and pickles under ``folder`` (``%j`` allowed).

    ``cluster`` (or the profile's ``cluster`` key) picks ``"slurm"``, ``"local"`` (subprocesses
    on this machine) or ``"debug"`` (in-process; opens pdb on failure, so not for tests). With
    neither, submitit picks ``slurm`` when ``sbatch`` is on the PATH and ``local`` otherwise.
    ``overrides`` take precedence over the profile (same keys).
    """
    params = {**load_profile(profile), **overrides}
    cluster = cluster or params.pop("cluster", None) or submitit.AutoExecutor.which()
    params.pop("cluster", None)
    if cluster not in CLUSTERS:
        raise ValueError(f"cluster must be one of {CLUSTERS}, got {cluster!r}")

    slurm_keys = _slurm_keys()
    unknown = sorted(k for k in params if k not in _GENERIC | _CONSTRUCTOR | slurm_keys)
    if unknown:
        raise ValueError(
            f"unknown cluster profile key(s) {unknown}; allowed: generic {sorted(_GENERIC)}, "
            f"{sorted(_CONSTRUCTOR)}, or SLURM parameters {sorted(slurm_keys)}"
        )
    params = {k: v for k, v in params.items() if v is not None}

    ctor = {f"slurm_{k}": params.pop(k) for k in _CONSTRUCTOR if k in params}
    if cluster == "local":  # the local executor also requeues timed-out Checkpointable jobs
        ctor.update({f"local_{k[len('slurm_'):]}": v for k, v in ctor.items()})
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster, **ctor)
    executor.update_parameters(**{k if k in _GENERIC else f"slurm_{k}": v for k, v in params.items()})
    return executor
