"""Input conventions shared by every reconstruction metric.

Tokenizers emit floats in [-1, 1]. Every metric first turns real and reconstructed images into the
8-bit levels a saved PNG would hold: clamp to [-1, 1], map to [0, 1], multiply by 255 and round to
the nearest integer (not truncate, unlike ``(x * 255).byte()``). Video ``(B, 3, T, H, W)`` is
flattened to frames ``(B * T, 3, H, W)`` so image metrics average over frames.
"""

from __future__ import annotations

import torch
from torch import Tensor


def as_frames(x: Tensor) -> Tensor:
    """``(B, 3, H, W)`` unchanged; ``(B, 3, T, H, W)`` -> ``(B * T, 3, H, W)``."""
    if x.dim() == 5:
        return x.movedim(2, 1).reshape(-1, x.shape[1], x.shape[3], x.shape[4])
    if x.dim() != 4:
        raise ValueError(f"expected (B, 3, H, W) or (B, 3, T, H, W), got shape {tuple(x.shape)}")
    return x


def to_uint8(x: Tensor) -> Tensor:
    """Floats in [-1, 1] of any shape -> uint8 levels ``round((clamp(x) + 1) / 2 * 255)``."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_unit(x: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Floats in [-1, 1] -> 8-bit levels scaled back to [0, 1], as frames ``(N, 3, H, W)``."""
    return to_uint8(as_frames(x)).to(dtype) / 255
