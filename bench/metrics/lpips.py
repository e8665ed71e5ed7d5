"""LPIPS (AlexNet, v0.1) through pyiqa, mean over images.

Inputs are quantised to 8-bit levels by the shared rounding convention and scaled to [0, 1], as
pyiqa expects. pyiqa builds the backbone with torchvision's ``alexnet(weights="IMAGENET1K_V1")``,
which reads ``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth`` and downloads it when absent,
and its linear layers from ``$TORCH_HOME/hub/pyiqa/LPIPS_v0.1_alex-df73285e.pth`` (names and URLs
from ``pyiqa.archs.lpips_arch.default_model_urls``). Both files are checked before pyiqa is called,
so nothing is ever downloaded: a missing file raises ``MetricUnavailable``.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from bench.metrics import MetricUnavailable
from bench.metrics._convert import to_unit

BACKBONE_FILE = "alexnet-owt-7be5be79.pth"
BACKBONE_URL = f"https://download.pytorch.org/models/{BACKBONE_FILE}"
LINEAR_FILE = "LPIPS_v0.1_alex-df73285e.pth"
LINEAR_URL = f"https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/{LINEAR_FILE}"


def lpips_weight_paths() -> dict[str, str]:
    """Where torchvision and pyiqa look for the two weight files, keyed by download URL."""
    hub = torch.hub.get_dir()
    return {
        BACKBONE_URL: os.path.join(hub, "checkpoints", BACKBONE_FILE),
        LINEAR_URL: os.path.join(hub, "pyiqa", LINEAR_FILE),
    }


class LPIPS(Metric):
    """Mean over images of LPIPS-alex (pyiqa) between real and fake, floats in [-1, 1]."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = False
    protocol = "LPIPS: pyiqa 'lpips' (AlexNet, v0.1), uint8-rounded inputs scaled to [0, 1], per image, mean"

    def __init__(self, device: str = "cpu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        paths = lpips_weight_paths()
        missing = [f"{path} (from {url})" for url, path in paths.items() if not os.path.isfile(path)]
        if missing:
            raise MetricUnavailable("LPIPS needs weight files that are missing; put them at: " + "; ".join(missing))
        import pyiqa

        self.net = pyiqa.create_metric("lpips", as_loss=False, device=device, pretrained_model_path=paths[LINEAR_URL])
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    @torch.no_grad()
    def update(self, real: Tensor, fake: Tensor) -> None:
        """``real``, ``fake``: floats in [-1, 1], ``(B, 3, H, W)`` or ``(B, 3, T, H, W)``."""
        scores = self.net(to_unit(fake), to_unit(real)).reshape(-1)
        self.total += scores.double().sum()
        self.count += scores.numel()

    def compute(self) -> Tensor:
        return self.total / self.count
