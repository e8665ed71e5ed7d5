"""EnCodec's training losses against golden outputs of audiocraft's own modules (facebookresearch/audiocraft
is not installable with this torch): the loss balancer (`implementations.losses.balancer.Balancer`,
audiocraft's ``Balancer``) over six steps of three losses, per batch item and over the whole batch, and
the multi-scale mel loss (`implementations.losses.spectral.MultiScaleMelLoss`, audiocraft's
``MultiScaleMelSpectrogramLoss`` with ``normalized=True, alphas=False``, scales 2^5 .. 2^11).

``golden/audiocraft_losses.safetensors`` was made by ``golden/make_audiocraft_losses.py`` from
facebookresearch/audiocraft at 896ec7c (the command is in the script's docstring).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from implementations.losses.balancer import Balancer
from implementations.losses.spectral import MultiScaleMelLoss

GOLDEN = Path(__file__).parent / "golden" / "audiocraft_losses.safetensors"
REFERENCE = dict(tokenizers=["encodec_24khz", "encodec_48khz", "encodec_tiny"], reference="facebookresearch/audiocraft", version="896ec7c",
                 golden=f"tests/parity/golden/{GOLDEN.name}")  # fmt: skip
WEIGHTS = {"l1": 0.1, "l2": 1.0, "adversarial": 3.0}


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    return load_file(GOLDEN)


@pytest.mark.parametrize("per_batch_item", [True, False], ids=["per_item", "batch"])
def test_balanced_gradients_and_ratios_equal_audiocrafts(parity, golden, per_batch_item):
    mode = "per_item" if per_batch_item else "batch"
    case = parity.case(f"balancer_{mode}", family=f"EnCodec's loss balancer ({'per batch item' if per_batch_item else 'whole batch'})",
                       setup="3 losses (weights 0.1, 1, 3), total norm 2, EMA decay 0.9, 6 steps, float64", **REFERENCE)  # fmt: skip
    balancer = Balancer(WEIGHTS, total_norm=2.0, ema_decay=0.9, per_batch_item=per_batch_item)
    for step in range(6):
        prefix = f"balancer.{mode}.{step}"
        parameter = golden[f"{prefix}.parameter"].clone().requires_grad_()
        targets, direction = golden[f"{prefix}.targets"], golden[f"{prefix}.direction"]
        output = parameter * 1.0
        losses = {"l1": (output - targets).abs().mean(), "l2": (output - 0.5 * targets).square().mean(),
                  "adversarial": torch.nn.functional.softplus(-(output * direction).sum(-1)).mean()}  # fmt: skip
        metrics = balancer.backward(losses, output)
        case.compare("gradient", parameter.grad, golden[f"{prefix}.grad"], tolerance=1e-12)
        case.compare("ratios", torch.tensor([metrics[f"ratio_{name}"] for name in WEIGHTS], dtype=torch.float64), golden[f"{prefix}.ratios"], tolerance=1e-12)


def test_multi_scale_mel_loss_equals_audiocrafts(parity, golden):
    case = parity.case("mel", family="EnCodec's multi-scale mel loss", setup="24 kHz, scales 2^5 .. 2^11, 64 mels from 64 Hz, 2 clips of 0.5 s", **REFERENCE)
    with torch.no_grad():
        loss = MultiScaleMelLoss(24_000)(golden["mel.prediction"], golden["mel.target"])
    case.compare("loss", loss, golden["mel.loss"], tolerance=1e-5)
