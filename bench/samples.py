"""A few reconstructions per run, kept for the leaderboard's figures and listening samples.

The same items (evenly spaced through the evaluation set) for every tokenizer of a suite, in
``results/<suite>/samples/<tokenizer>-<hash>.npz``: images as uint8 ``(count, H, W, 3)`` arrays
``originals`` / ``reconstructions``; audio as float32 ``(channels, samples)`` arrays
``original_<k>`` / ``reconstruction_<k>`` (items may differ in length) with ``sample_rate``. A
tokenizer without a decoder keeps none.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from .data.items import tensor_of
from .files import atomic_write_bytes


def to_uint8_images(x: Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` in [-1, 1] -> ``(B, H, W, 3)`` uint8 (rounded)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def save_samples(model: nn.Module, dataset: Dataset, path: Path, *, count: int, device: torch.device) -> None:
    picked = np.linspace(0, len(dataset) - 1, num=min(count, len(dataset))).round().astype(int)
    readable = [(int(i), x) for i in picked if (x := tensor_of(dataset[int(i)])) is not None]
    if not readable:
        return
    if not getattr(model, "reconstructs", True):
        return
    indices = np.array([i for i, _ in readable])
    if getattr(model, "modality", "image") == "audio":
        arrays = {"indices": indices, "sample_rate": np.array(model.sample_rate)}
        for k, (_, x) in enumerate(readable):
            x = x[None].to(device)
            arrays[f"original_{k}"] = x[0].float().cpu().numpy()
            arrays[f"reconstruction_{k}"] = model.decode(model.encode(x))[0].clamp(-1, 1).float().cpu().numpy()
    else:
        originals = torch.stack([x for _, x in readable]).to(device)
        if originals.ndim != 4:  # images only (video: no grid yet)
            return
        reconstructions = model.decode(model.encode(originals))
        arrays = {"indices": indices, "originals": to_uint8_images(originals), "reconstructions": to_uint8_images(reconstructions)}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_samples(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}
