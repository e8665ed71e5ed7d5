"""bench/conf/hydra/launcher/local.yaml: the same sweep through submitit, as local subprocesses
(no SLURM needed, so this runs everywhere)."""

import pytest

from slurm import make_executor


def test_hydra_local_launcher(run_hydra_app):
    results = run_hydra_app(["hydra/launcher=local"])
    assert {job for _, job in results.values()} == {"none"}


def test_make_executor_local_cluster_same_path(tmp_path):
    ex = make_executor("local", folder=tmp_path / "%j", cluster="local")
    jobs = ex.map_array(abs, [-1, -2])
    assert [j.result() for j in jobs] == [1, 2]


def test_make_executor_rejects_unknown_keys(tmp_path):
    with pytest.raises(ValueError, match="partitio"):
        make_executor({"partitio": "gpu"}, folder=tmp_path)
    with pytest.raises(FileNotFoundError, match="bundled profiles"):
        make_executor("no-such-profile", folder=tmp_path)
