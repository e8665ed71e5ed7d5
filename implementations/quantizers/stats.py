"""Small statistics shared by quantizers for logging."""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def batch_perplexity(codes: Tensor, codebook_size: int) -> Tensor:
    """exp(entropy) of the empirical code distribution in ``codes`` (any shape, one codebook)."""
    counts = torch.bincount(codes.reshape(-1), minlength=codebook_size).double()
    probs = counts / counts.sum().clamp_min(1)
    entropy = -(probs * probs.clamp_min(1e-30).log()).sum()
    return entropy.exp().float()
