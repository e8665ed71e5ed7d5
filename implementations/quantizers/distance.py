"""Nearest-code search shared by the vector quantizers and k-means.

Nearest codes are found without building an ``N x K`` one-hot: distances ``||e||^2 - 2 z e^T`` are
made in row chunks with one ``addmm`` each and reduced by ``argmin`` straight away.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Largest distance block (rows x codes) built at once: 2^20 floats, 4 MiB, stays in cache.
_DISTANCE_BLOCK = 1 << 20


def nearest_codes(z: Tensor, codebook: Tensor) -> Tensor:
    """Index of the nearest codebook row (squared Euclidean) for each row of ``z``.

    z: ``(N, d)``; codebook: ``(K, d)``; returns ``(N,)`` int64.
    """
    z, codebook = z.float(), codebook.float()
    codebook_sq = codebook.square().sum(dim=1)
    rows = max(1, _DISTANCE_BLOCK // codebook.shape[0])
    codes = torch.empty(z.shape[0], dtype=torch.long, device=z.device)
    with torch.no_grad():
        for start in range(0, z.shape[0], rows):
            block = torch.addmm(codebook_sq, z[start : start + rows], codebook.t(), alpha=-2.0)
            codes[start : start + rows] = block.argmin(dim=1)
    return codes


def squared_distances_to(z: Tensor, points: Tensor) -> Tensor:
    """Exact squared distances ``(M, N)`` from each of a few ``points`` ``(M, d)`` to every row of
    ``z`` ``(N, d)``; only for small ``M`` (k-means++ candidates), clamped at zero."""
    cross = points @ z.t()
    return (points.square().sum(1, keepdim=True) - 2 * cross + z.square().sum(1)).clamp_min_(0)
