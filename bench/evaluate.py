"""One streaming evaluation pass: encode, decode through the codes, update every metric.

Reconstructions go through ``decode(encode(x))`` (the token path a generative model uses), never
through ``forward``, so what is scored is what the tokens carry.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .metrics import update_all


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, metrics: dict, *, batch_size: int, device: torch.device, num_workers: int = 0) -> dict[str, Any]:
    """Run ``model`` over ``dataset`` once; returns ``{metric name: value}`` (values may be dicts)."""
    model.to(device).eval()
    for metric in metrics.values():
        metric.to(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for x in tqdm(loader, desc="eval", unit="batch", dynamic_ncols=True):
        x = x.to(device, non_blocking=True)
        codes = model.encode(x)
        update_all(metrics, real=x, fake=model.decode(codes).clamp(-1, 1), codes=codes)
    return {name: metric.compute() for name, metric in metrics.items()}
