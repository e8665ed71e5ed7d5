"""Preemption and sharding in-process: a run stopped by a real signal and run again, or evaluated in
shards, writes the record an uninterrupted single pass writes.

Equality: weights, usage and the training loss exactly; PSNR and SSIM to 1e-12 relative for shards
(float64 sums added in another order), exactly for resumed runs. (The weights file's sha256 differs
between a resumed and an uninterrupted run: the file also holds the training wall time.)
"""

from __future__ import annotations

import json
import math
import shutil
import signal

import pytest
from torch.utils.data import Dataset

import bench.run
from bench import checkpoints
from bench.preemption import Preempted
from bench.run import run_one
from tests.conftest import TINY

TOKENIZER = "tokenizer=vqvae_tiny_ema_d64"
RUN = (TOKENIZER, *TINY, "suite.train.steps=6", "suite.train.checkpoint_every=100", "tokenizer.recipe.weights_ema_decay=0.9")


class SignalAt(Dataset):
    """``dataset``, but the ``at``-th read (from 0) raises ``signum`` in this process (the main thread)."""

    def __init__(self, dataset: Dataset, at: int, signum: int):
        self.dataset, self.at, self.signum, self.reads = dataset, at, signum, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        if self.reads == self.at:
            signal.raise_signal(self.signum)
        self.reads += 1
        return self.dataset[index]


def signalled_once(monkeypatch, split: str, at: int, signum: int) -> None:
    """Make the next ``build_dataset(..., split)`` of bench.run raise ``signum`` on its ``at``-th read."""
    build = bench.run.build_dataset
    armed = [True]

    def build_dataset(cfg, name):
        dataset = build(cfg, name)
        if name == split and armed[0]:
            armed[0] = False
            return SignalAt(dataset, at, signum)
        return dataset

    monkeypatch.setattr(bench.run, "build_dataset", build_dataset)


def measured(path) -> dict:
    """What a record measured: metrics, training summary (no wall time), and the weights."""
    record = json.loads(path.read_text())
    (weights,) = (path.parent.parent / "checkpoints").glob(f"{record['tokenizer']}-{record['config_hash']}.pt")
    return {
        "metrics": record["metrics"],
        "train": {k: v for k, v in record["train"].items() if k != "wall_time_s"},
        "weights": {k: v.tolist() for k, v in checkpoints.load(weights)["model"].items()},
    }


@pytest.fixture
def uninterrupted(compose_run):
    return measured(run_one(compose_run(*RUN)))


@pytest.mark.parametrize(("split", "at", "signum"), [("train", 20, signal.SIGTERM), ("test", 3, signal.SIGUSR1)])
def test_stopped_run_resumes_to_the_same_record(compose_run, tmp_path, monkeypatch, uninterrupted, split, at, signum):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)  # never requeue the job pytest may run in
    shutil.rmtree(tmp_path / "results")
    cfg = compose_run(*RUN)
    stop_and_resume(cfg, monkeypatch, split, at, signum)
    assert measured(run_one(cfg)) == uninterrupted


@pytest.mark.parametrize("recipe", ["taming", "shrunk_with_lecam_r1"])
def test_a_gan_recipe_stopped_mid_training_resumes_to_the_same_weights(compose_run, tmp_path, monkeypatch, lpips_overrides, gan_overrides, recipe):
    """taming's recipe on its tiny VQGAN (GAN from step 2 instead of 300), and a PatchGAN recipe with
    LeCAM and R1 on the VQ-VAE: generator, discriminator (with BatchNorm statistics), both optimizers
    and schedules, LeCAM anchors, EMA and RNG all come back, so the resumed run ends with the
    uninterrupted run's weights; the log holds the GAN terms."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    if recipe == "taming":
        overrides = ("tokenizer=vqgan_taming_tiny", *RUN[1:], *lpips_overrides, "tokenizer.recipe.adversarial.start_step=2", "suite.train.log_every=1")
    else:
        overrides = (*RUN, *gan_overrides, "suite.train.log_every=1")
    cfg = compose_run(*overrides)
    plain = measured(run_one(cfg))
    (log,) = (tmp_path / "results" / "builtin" / "checkpoints").glob("*.log.csv")
    rows = [line.split(",") for line in log.read_text().splitlines()[1:]]
    assert {"adversarial", "adaptive_weight", "d_loss", "logits_real", "logits_fake", "grad_norm", "d_grad_norm", "perceptual", "l1"} <= {r[1] for r in rows}
    assert min(int(r[0]) for r in rows if r[1] == "d_loss") == 3  # the discriminator's first step is step 2 (logged as 3)
    shutil.rmtree(tmp_path / "results")
    stop_and_resume(cfg, monkeypatch, "train", 20, signal.SIGTERM)  # at step 3, after the GAN started at step 2
    assert measured(run_one(cfg)) == plain


def stop_and_resume(cfg, monkeypatch, split, at, signum) -> None:
    signalled_once(monkeypatch, split, at, signum)
    with pytest.raises(Preempted, match=f"stopped by {signal.Signals(signum).name} at {'train step 3/6' if split == 'train' else 'eval batch 1/2'}"):
        run_one(cfg)
    assert signal.getsignal(signum) is signal.SIG_DFL, "the handlers are restored"


def test_shards_merge_to_the_unsharded_record(compose_run, tmp_path, uninterrupted):
    records = tmp_path / "results" / "builtin" / "records"
    shutil.rmtree(records)  # keep the trained weights: shard tasks never train
    first = run_one(compose_run(*RUN, "eval_shards=2", "eval_shard=1"))
    assert not first.exists(), "one shard of two must not write the record"
    sharded = measured(run_one(compose_run(*RUN, "eval_shards=2", "eval_shard=0")))
    shutil.rmtree(records)
    in_turn = measured(run_one(compose_run(*RUN, "eval_shards=3")))  # every shard in this process
    for result in (sharded, in_turn):
        for key, value in uninterrupted["metrics"].items():
            if key in ("psnr", "ssim"):
                assert math.isclose(result["metrics"][key], value, rel_tol=1e-12), key
            else:
                assert result["metrics"][key] == value, key
        assert result["weights"] == uninterrupted["weights"]
