"""Vector quantization (VQ-VAE, van den Oord et al. 2017, https://arxiv.org/abs/1711.00937).

Options the literature compares, each a constructor flag:

* the VQ loss ``||sg[z] - e||^2 + beta ||z - sg[e]||^2`` (paper) and taming's ``legacy`` placement
  ``beta ||sg[z] - e||^2 + ||z - sg[e]||^2`` (Esser et al. 2021, kept as a flag: released taming
  checkpoints were trained with it);
* an EMA codebook with Laplace smoothing (paper appendix A.1, as in Sonnet's ``VectorQuantizerEMA``)
  instead of the codebook loss;
* l2-normalised (cosine) codes (ViT-VQGAN, Yu et al. 2022, https://arxiv.org/abs/2110.04627);
* a low-dimensional code space reached through linear in/out projections (ViT-VQGAN, LlamaGen).

Nearest codes are found without building an ``N x K`` one-hot: distances ``||e||^2 - 2 z e^T`` are
made in row chunks with one ``addmm`` each and reduced by ``argmin`` straight away.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..protocol import Quantizer, QuantizerOutput
from ..registry import register_quantizer
from .stats import batch_perplexity

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


@register_quantizer("vq")
class VectorQuantizer(Quantizer):
    """Nearest-neighbour vector quantizer with one codebook.

    Args:
        dim: channels of the input ``z`` ``(..., dim)``.
        codebook_size: number of codes K.
        codebook_dim: dimension of the code space; when it differs from ``dim`` the input is
            projected down (and the codes back up) by linear layers.
        beta: commitment weight.
        legacy_beta: taming's placement of ``beta`` on the codebook term instead.
        l2_normalize: compare and emit unit-norm vectors (cosine similarity).
        ema_decay: if set, update the codebook by exponential moving averages (no codebook loss).
        ema_epsilon: Laplace smoothing of the EMA cluster sizes.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        codebook_dim: int | None = None,
        beta: float = 0.25,
        legacy_beta: bool = False,
        l2_normalize: bool = False,
        ema_decay: float | None = None,
        ema_epsilon: float = 1e-5,
    ):
        super().__init__()
        self.dim = dim
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim or dim
        self.beta = beta
        self.legacy_beta = legacy_beta
        self.l2_normalize = l2_normalize
        self.ema_decay = ema_decay
        self.ema_epsilon = ema_epsilon

        projected = self.codebook_dim != dim
        self.in_proj = nn.Linear(dim, self.codebook_dim) if projected else nn.Identity()
        self.out_proj = nn.Linear(self.codebook_dim, dim) if projected else nn.Identity()

        weight = torch.empty(codebook_size, self.codebook_dim).uniform_(-1 / codebook_size, 1 / codebook_size)
        if ema_decay is None:
            self.codebook = nn.Parameter(weight)
        else:
            self.register_buffer("codebook", weight)
            self.register_buffer("ema_cluster_size", torch.zeros(codebook_size))
            self.register_buffer("ema_sum", weight.clone())

    @property
    def uses_ema(self) -> bool:
        return self.ema_decay is not None

    def _normalize(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1) if self.l2_normalize else x

    def embeddings(self) -> Tensor:
        """The codebook as the quantizer uses it, ``(K, codebook_dim)``."""
        return self._normalize(self.codebook)

    def forward(self, z: Tensor) -> QuantizerOutput:
        latent = self._normalize(self.in_proj(z))
        flat = latent.reshape(-1, self.codebook_dim)
        codebook = self.embeddings()
        codes = nearest_codes(flat.detach(), codebook.detach())
        selected = F.embedding(codes, codebook).view_as(latent)

        if self.training and self.uses_ema:
            self._ema_update(flat.detach(), codes)

        commitment = F.mse_loss(latent, selected.detach())
        if self.uses_ema:
            codebook_loss = torch.zeros((), device=z.device)
            loss = self.beta * commitment
        else:
            codebook_loss = F.mse_loss(selected, latent.detach())
            loss = self.beta * codebook_loss + commitment if self.legacy_beta else codebook_loss + self.beta * commitment

        quantized = latent + (selected - latent).detach()  # straight-through estimator
        metrics = {
            "commitment": commitment.detach(),
            "codebook": codebook_loss.detach(),
            "perplexity": batch_perplexity(codes, self.codebook_size),
        }
        return QuantizerOutput(self.out_proj(quantized), codes.view(*z.shape[:-1], 1), loss, metrics)

    def codes_to_embeddings(self, codes: Tensor) -> Tensor:
        return self.out_proj(F.embedding(codes[..., 0], self.embeddings()))

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, codes: Tensor) -> None:
        """Sonnet/VQ-VAE EMA: N_k <- g N_k + (1-g) n_k, m_k <- g m_k + (1-g) sum z, e_k = m_k / N~_k,
        with Laplace-smoothed N~_k = (N_k + eps) / (sum N + K eps) * sum N."""
        counts = torch.bincount(codes, minlength=self.codebook_size).to(flat.dtype)
        sums = torch.zeros_like(self.ema_sum).index_add_(0, codes, flat.to(self.ema_sum.dtype))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
            torch.distributed.all_reduce(sums)
        decay = self.ema_decay
        self.ema_cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
        self.ema_sum.mul_(decay).add_(sums, alpha=1 - decay)
        total = self.ema_cluster_size.sum()
        smoothed = (self.ema_cluster_size + self.ema_epsilon) / (total + self.codebook_size * self.ema_epsilon) * total
        self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(1))
