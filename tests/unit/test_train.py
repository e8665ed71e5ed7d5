"""The trainer: a NaN loss stops with a clear error and keeps the last good checkpoint."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from bench import checkpoints
from bench.data.tensors import ImageTensors
from bench.train import TrainingDiverged, train
from implementations import create_tokenizer


def train_cfg(steps: int):
    return SimpleNamespace(steps=steps, batch_size=4, lr=1e-3, betas=[0.9, 0.999], reconstruction_loss="mse", weights_ema_decay=None, checkpoint_every=2, num_workers=0)


def test_nan_loss_is_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = create_tokenizer("vqvae_simplecnn", hidden_dim=16, codebook_size=32, codebook_dim=4)
    images = torch.rand(8, 3, 16, 16) * 2 - 1
    state_path = tmp_path / "state.pt"
    train(model, ImageTensors(images), train_cfg(4), seed=0, device=torch.device("cpu"), state_path=state_path)
    good = checkpoints.load(state_path)
    assert good["step"] == 4

    with pytest.raises(TrainingDiverged, match=r"loss is nan at step 4; the last good checkpoint is .*state.pt"):
        train(model, ImageTensors(torch.full_like(images, float("nan"))), train_cfg(8), seed=0, device=torch.device("cpu"), state_path=state_path)
    kept = checkpoints.load(state_path)
    assert kept["step"] == 4
    assert all(torch.equal(kept["model"][k], good["model"][k]) for k in good["model"])
