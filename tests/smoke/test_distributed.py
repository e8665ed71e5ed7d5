"""DDP on CPU: 2 gloo processes train and evaluate the built-in suite's tiny tokenizer with the same
global batches as 1 process and write the same record (rank 0 only).

Tolerance: weights and PSNR/SSIM to 1e-5 relative (gradients are averaged over ranks instead of
computed on the whole batch: float32 rounding); usage counts exactly.

The codebook's k-means initialisation and dead-code restarts are off here: under DDP they use rank
0's slice of the batch (broadcast to the others), so a DDP run with them is consistent across ranks
but not equal to one process on the whole batch.
"""

from __future__ import annotations

import json
import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from hydra import compose, initialize_config_module

from bench import checkpoints
from bench.config import register_configs
from bench.run import run_one
from tests.conftest import TINY

RUN = ("tokenizer=vqvae_tiny_vq_d4", "tokenizer.kwargs.kmeans_init=false", "tokenizer.kwargs.dead_code_threshold=0", *TINY, "suite.train.steps=3", "suite.train.checkpoint_every=100", "device=cpu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_rank(rank: int, world_size: int, port: int, output_dir: str, overrides: tuple[str, ...] = RUN) -> None:
    """One process of the group: torchrun's variables, then the ordinary `run_one`."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    register_configs()
    with initialize_config_module(config_module="bench.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"output_dir={output_dir}", f"leaderboard_dir={output_dir}/lb", *overrides])
    try:
        run_one(cfg)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def outcome(output_dir) -> tuple[dict, dict]:
    (record,) = (output_dir / "builtin" / "records").glob("*.json")
    (weights,) = (output_dir / "builtin" / "checkpoints").glob("*[0-9a-f].pt")
    return json.loads(record.read_text()), checkpoints.load(weights)["model"]


@pytest.mark.slow
def test_two_gloo_processes_match_one(compose_run, tmp_path):
    torch.set_num_threads(1)
    one = tmp_path / "one"
    run_one(compose_run(*RUN, f"output_dir={one}"))
    two = tmp_path / "two"
    mp.spawn(run_rank, args=(2, free_port(), str(two)), nprocs=2, join=True)

    (record1, weights1), (record2, weights2) = outcome(one), outcome(two)
    assert record1["config_hash"] == record2["config_hash"]
    for name, tensor in weights1.items():
        if tensor.is_floating_point():
            torch.testing.assert_close(weights2[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    for key in ("psnr", "ssim"):
        assert math.isclose(record2["metrics"][key], record1["metrics"][key], rel_tol=1e-5), key
    assert record2["metrics"]["usage"] == record1["metrics"]["usage"]
    assert math.isclose(record2["train"]["final_reconstruction_loss"], record1["train"]["final_reconstruction_loss"], rel_tol=1e-5)


@pytest.mark.slow
def test_a_gan_recipe_trains_under_ddp(tmp_path, gan_overrides):
    """Generator and discriminator (LeCAM and R1 included) both under DDP (the discriminator's BatchNorm sees each rank's half
    of the batch, so no equality with one process): it trains past the GAN start and rank 0 writes."""
    overrides = (*RUN, *gan_overrides, "suite.train.log_every=1")
    mp.spawn(run_rank, args=(2, free_port(), str(tmp_path), overrides), nprocs=2, join=True)
    record, _ = outcome(tmp_path)
    assert record["train"]["steps"] == 3
    (log,) = (tmp_path / "builtin" / "checkpoints").glob("*.log.csv")
    names = {line.split(",")[1] for line in log.read_text().splitlines()[1:]}
    assert {"adversarial", "adaptive_weight", "d_loss", "logits_real", "logits_fake", "d_grad_norm", "perceptual", "l1", "lecam", "r1"} <= names
