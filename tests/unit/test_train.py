"""The trainer: a NaN loss stops with a clear error and keeps the last good checkpoint."""

from __future__ import annotations

import pytest
import torch

from bench import checkpoints
from bench.config import compose
from bench.data.tensors import ImageTensors
from bench.train import Budget, TrainingDiverged, train
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
