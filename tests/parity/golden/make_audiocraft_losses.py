"""Make ``audiocraft_losses.safetensors``: audiocraft's ``Balancer`` over six steps of three losses
(both ``per_batch_item`` settings) and its ``MultiScaleMelSpectrogramLoss`` on two pairs of clips (the
golden file of tests/parity/test_audiocraft_losses.py).

From a checkout of facebookresearch/audiocraft at 896ec7c: ``audiocraft/losses/balancer.py`` and
``audiocraft/losses/specloss.py`` are imported, with empty stand-ins for ``audiocraft/__init__.py``,
``audiocraft/losses/__init__.py`` and ``audiocraft/modules/__init__.py`` (which import the models);
the Balancer needs ``flashy`` (PyPI; it imports ``dora-search``, ``treetable``, ``retrying`` and
``colorlog``), the mel loss torchaudio (2.11.1 here); torch 2.14.1, CPU::

    pip install --target audiocraft-deps --no-deps flashy dora-search treetable retrying colorlog
    PYTHONPATH=audiocraft-deps python tests/parity/golden/make_audiocraft_losses.py audiocraft tests/parity/golden/audiocraft_losses.safetensors
"""

from __future__ import annotations

import importlib

import torch
from official import arguments, stand_in
from safetensors.torch import save_file

WEIGHTS = {"l1": 0.1, "l2": 1.0, "adversarial": 3.0}
STEPS = 6


def balancer_steps(balancer_class, per_batch_item: bool) -> dict[str, torch.Tensor]:
    """Six steps of three losses of one output (B, C, T): their inputs, the balanced gradient, the ratios."""
    balancer = balancer_class(WEIGHTS, total_norm=2.0, ema_decay=0.9, per_batch_item=per_batch_item, monitor=True)
    generator = torch.Generator().manual_seed(0)
    out = {}
    for step in range(STEPS):
        parameter, targets, direction = (torch.randn(3, 2, 50, generator=generator, dtype=torch.float64) for _ in range(3))
        parameter.requires_grad_()
        output = parameter * 1.0
        losses = {"l1": (output - targets).abs().mean(), "l2": (output - 0.5 * targets).square().mean(),
                  "adversarial": torch.nn.functional.softplus(-(output * direction).sum(-1)).mean()}  # fmt: skip
        balancer.backward(losses, output)
        prefix = f"balancer.{'per_item' if per_batch_item else 'batch'}.{step}"
        out.update({f"{prefix}.parameter": parameter.detach(), f"{prefix}.targets": targets, f"{prefix}.direction": direction,
                    f"{prefix}.grad": parameter.grad, f"{prefix}.ratios": torch.tensor([float(balancer.metrics[f"ratio_{k}"]) for k in WEIGHTS], dtype=torch.float64)})  # fmt: skip
    return out


def make(official, out) -> None:
    stand_in("audiocraft", official / "audiocraft")
    stand_in("audiocraft.losses", official / "audiocraft" / "losses")
    modules = stand_in("audiocraft.modules", official / "audiocraft" / "modules")
    modules.pad_for_conv1d = importlib.import_module("audiocraft.modules.conv").pad_for_conv1d  # what specloss imports from the package
    balancer_class = importlib.import_module("audiocraft.losses.balancer").Balancer
    mel_loss_class = importlib.import_module("audiocraft.losses.specloss").MultiScaleMelSpectrogramLoss
    tensors = {**balancer_steps(balancer_class, True), **balancer_steps(balancer_class, False)}
    generator = torch.Generator().manual_seed(1)
    prediction, target = (torch.rand(2, 1, 12_000, generator=generator) * 2 - 1 for _ in range(2))
    mel = mel_loss_class(24_000, range_start=5, range_end=12, n_mels=64, f_min=64.0, normalized=True, alphas=False, floor_level=1e-5)
    tensors.update({"mel.prediction": prediction, "mel.target": target, "mel.loss": mel(prediction, target).detach()})
    save_file({key: value.contiguous() for key, value in tensors.items()}, str(out))


if __name__ == "__main__":
    args = arguments(__doc__, "facebookresearch/audiocraft checkout at 896ec7c")
    make(args.official, args.out)
