"""Scale the benchmark out on SLURM through submitit; local runs take the same code path.

- :func:`slurm.executor.make_executor` builds a ``submitit.AutoExecutor`` from a *cluster profile*
  (``slurm/profiles/*.yaml``: partition, GPUs, CPUs, memory, time limit, account, qos, ...), for a
  real SLURM cluster (``cluster="slurm"``), local subprocesses (``"local"``) or in-process
  debugging (``"debug"``).
- ``slurm/local_cluster.sh`` installs and starts a real single-node SLURM cluster (Debian
  packages, no systemd needed) to try the harness on a laptop or VM and to run the SLURM tests
  in CI: ``sudo slurm/local_cluster.sh install && sudo slurm/local_cluster.sh start``.
- Hydra sweeps use the same profiles through ``hydra-submitit-launcher``
  (``bench/conf/hydra/launcher/{slurm,local}.yaml``).
"""

from slurm.executor import CLUSTERS, PROFILES_DIR, load_profile, make_executor

__all__ = ["CLUSTERS", "PROFILES_DIR", "load_profile", "make_executor"]
