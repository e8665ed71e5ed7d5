"""The trainer: a NaN loss stops with a clear error and keeps the last good checkpoint; a resumed run ends
with the state and log of an uninterrupted one."""

from __future__ import annotations

import pytest
import torch

from bench import checkpoints
from bench.config import compose
from bench.data.tensors import ImageTensors
from bench.train import Budget, TrainingDiverged, train, trained_wall_time
from implementations import create_tokenizer


def test_nan_loss_is_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    recipe = compose(["tokenizer=vqvae_tiny_vq_d4"]).tokenizer.recipe
    model = create_tokenizer("vqvae_simplecnn", hidden_dim=16, codebook_size=32, codebook_dim=4)
    images = torch.rand(8, 3, 16, 16) * 2 - 1
    state_path = tmp_path / "state.pt"
    train(model, ImageTensors(images), recipe, Budget(4, 4, checkpoint_every=2), seed=0, device=torch.device("cpu"), state_path=state_path)
    good = checkpoints.load(state_path)
    assert good["step"] == 4

    nan = ImageTensors(torch.full_like(images, float("nan")))
    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 4; the last good checkpoint is .*state.pt"):
        train(model, nan, recipe, Budget(8, 4, checkpoint_every=2), seed=0, device=torch.device("cpu"), state_path=state_path)
    kept = checkpoints.load(state_path)
    assert kept["step"] == 4
    assert all(torch.equal(kept["model"][k], good["model"][k]) for k in good["model"])


class KilledAfter:
    """A stop check that kills the run (an exception, not a saved stop) when ``steps`` steps are done:
    the rows logged since the last checkpoint are left behind, as after ``kill -9``."""

    def __init__(self, steps: int):
        self.steps, self.calls = steps, 0

    def requested(self) -> bool:
        self.calls += 1
        if self.calls == self.steps:
            raise RuntimeError("killed")
        return False


def assert_same(a, b, where: str = "state") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{index}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def test_a_resumed_run_ends_with_the_state_and_log_of_an_uninterrupted_one(tmp_path):
    """Killed after step 5 (checkpoint at 4), resumed to the end (6), then both continued to 9: the
    states (weights, optimizers, every RNG) and the logs agree byte for byte; the training time adds up."""
    constant = ["tokenizer.recipe.schedule.kind=constant", "tokenizer.recipe.schedule.warmup_steps=0"]  # a run may be continued past its end
    recipe = compose(["tokenizer=vqvae_tiny_vq_d4", *constant]).tokenizer.recipe
    images = ImageTensors(torch.rand(16, 3, 16, 16) * 2 - 1)

    def run(name: str, steps: int, stop=None):
        torch.manual_seed(0)  # as bench.run seeds before building the model
        model = create_tokenizer("vqvae_simplecnn", hidden_dim=16, quantizer="gumbel", codebook_size=32)  # Gumbel noise draws from the RNG every step
        budget = Budget(steps, 4, checkpoint_every=2, log_every=3)
        return train(model, images, recipe, budget, seed=0, device=torch.device("cpu"), state_path=tmp_path / f"{name}.train.pt", stop=stop)

    run("whole", 6)
    with pytest.raises(RuntimeError, match="killed"):
        run("resumed", 6, stop=KilledAfter(5))
    assert checkpoints.load(tmp_path / "resumed.train.pt")["step"] == 4
    resumed = run("resumed", 6)
    for steps in (6, 9):
        if steps == 9:
            resumed = run("resumed", 9)
            run("whole", 9)
        whole_state, resumed_state = (checkpoints.load(tmp_path / f"{name}.train.pt") for name in ("whole", "resumed"))
        whole_time, resumed_time = whole_state.pop("wall_time_s"), resumed_state.pop("wall_time_s")
        assert_same(whole_state, resumed_state)
        assert (tmp_path / "whole.train.log.csv").read_bytes() == (tmp_path / "resumed.train.log.csv").read_bytes()
        assert 0 < whole_time and 0 < resumed_time
    assert resumed.wall_time_s == resumed_time == trained_wall_time(tmp_path / "resumed.train.pt") == run("resumed", 9).wall_time_s
    steps_logged = [line.split(",")[0] for line in (tmp_path / "resumed.train.log.csv").read_text().splitlines()[1:]]
    assert sorted(set(steps_logged), key=int) == ["1", "3", "6", "9"]
