"""Finite scalar quantization (FSQ; Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made
Simple", https://arxiv.org/abs/2309.15505).

Each of the ``d = len(levels)`` channels of the code space is bounded and rounded to one of
``levels[i]`` values; the implicit codebook is the grid of all combinations, ``prod(levels)`` codes.
Following the paper (appendix A.1):

* bound: ``b(z) = tanh(z + shift) * half_l - offset`` with ``half_l = (L - 1)(1 + eps) / 2``;
  for even ``L`` the grid is offset by one half (``offset = 0.5``, ``shift = atanh(offset / half_l)``)
  so that rounding yields the ``L`` integers ``-L/2 .. L/2 - 1``; for odd ``L`` it is symmetric;
* round with a straight-through gradient and normalise by ``L // 2`` (values in ``[-1, 1]``);
* the code of a token is the mixed-radix number of its per-channel level indices
  ``(round(b(z)) + L // 2)`` with the FIRST channel least significant (basis
  ``[1, L0, L0 L1, ...]``), the same convention as vector-quantize-pytorch's ``FSQ``.

The gradient is "straight through the rounding only": ``d quantized / d z = half_l (1 - tanh^2(z + shift))
/ (L // 2)``. FSQ has no loss. The whole step is one custom autograd function (a handful of
elementwise kernels and one matrix-vector product for the codes), since at typical sizes the cost is
per-operator overhead rather than arithmetic; ``tanh`` is evaluated as ``2 sigmoid(2u) - 1`` (the
faster CPU kernel). Codes therefore agree with other implementations except where a bounded value
lies within float32 rounding (~1e-7 relative) of a rounding boundary.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from ..protocol import Quantizer, QuantizerOutput
from ..arguments import ArgumentError, require_positive
from ..registry import register_quantizer
from .stats import batch_perplexity


class _BoundRound(torch.autograd.Function):
    """``(latent (N, d)) -> (quantized (N, d), codes (N,))`` with FSQ's straight-through gradient."""

    @staticmethod
    def forward(ctx, latent, twice_shift, twice_half_l, offset, inv_half_width, slope, basis, code_offset):
        # tanh(u) = 2 sigmoid(2u) - 1, and sigmoid is the faster kernel on CPU:
        # tanh(z + shift) * half_l - offset = sigmoid(2z + 2 shift) * 2 half_l - (half_l + offset)
        sig = torch.sigmoid(torch.add(twice_shift, latent, alpha=2.0))
        rounded = torch.round(torch.addcmul(offset, sig, twice_half_l))
        quantized = rounded * inv_half_width
        # mixed-radix index: sum_i (rounded_i + L_i // 2) * basis_i; the products and sums are
        # integers below 2^24 (float32) or 2^53 (float64): exact
        codes = torch.addmv(code_offset, rounded.to(basis.dtype), basis).long()
        ctx.save_for_backward(sig, slope)
        ctx.mark_non_differentiable(codes)
        return quantized, codes

    @staticmethod
    def backward(ctx, grad_quantized, _grad_codes):
        sig, slope = ctx.saved_tensors
        # d/dz [sigmoid(2z + 2 shift) * 2 half_l] / half_width = 4 sigmoid (1 - sigmoid) half_l / half_width
        # (= (1 - tanh^2(z + shift)) half_l / half_width)
        grad = (1 - sig).mul_(sig).mul_(slope).mul_(grad_quantized)
        return grad, None, None, None, None, None, None, None


@register_quantizer("fsq")
class FiniteScalarQuantizer(Quantizer):
    """Finite scalar quantizer with an implicit grid codebook.

    Args:
        dim: channels of the input ``z`` ``(..., dim)``.
        levels: number of values per code channel, e.g. ``[8, 8, 8, 5, 5, 5]`` (64000 codes) or
            ``[8, 5, 5, 5]`` (1000 codes). All levels must be >= 3 (a level of 2 rounds everything
            to one value with this bound).
        eps: the ``(1 + eps)`` widening of the bound, 1e-3 as in the paper.
        track_perplexity: add the batch perplexity of the codes to ``metrics`` (a bincount over
            ``prod(levels)`` bins per step).

    Shapes: ``forward(z (..., dim))`` -> quantized ``(..., dim)``, codes ``(..., 1)`` int64 in
    ``[0, prod(levels))``, loss ``0``. ``codes_to_embeddings(codes (..., 1)) -> (..., dim)``.
    When ``dim != len(levels)`` linear in/out projections map between ``dim`` and the code space.
    """

    def __init__(
        self,
        dim: int,
        levels: Sequence[int] = (8, 5, 5, 5),
        eps: float = 1e-3,
        track_perplexity: bool = False,
    ):
        super().__init__()
        require_positive(dim=dim)
        levels = [int(level) for level in levels]
        if not levels or any(level < 3 for level in levels):
            raise ArgumentError("levels", "a non-empty list of numbers >= 3 (FSQ)", levels)
        self.dim = dim
        self.levels = levels
        self.codebook_dim = len(levels)
        self.codebook_size = math.prod(levels)
        self.num_codebooks = 1
        self.track_perplexity = track_perplexity

        projected = self.codebook_dim != dim
        self.in_proj = nn.Linear(dim, self.codebook_dim) if projected else nn.Identity()
        self.out_proj = nn.Linear(self.codebook_dim, dim) if projected else nn.Identity()

        # float32 constants, computed exactly as the paper's reference code does, so that the
        # rounding decisions (and thus the codes) agree with other implementations bit for bit
        levels_t = torch.tensor(levels, dtype=torch.int32)
        half_l = (levels_t - 1) * (1 + eps) / 2
        offset = torch.where(levels_t % 2 == 0, 0.5, 0.0)
        half_width = levels_t // 2
        basis = torch.cumprod(torch.tensor([1] + levels[:-1], dtype=torch.int64), dim=0)
        # float32 represents the indices exactly up to 2^24 codes; beyond, use float64
        index_dtype = torch.float32 if self.codebook_size <= 1 << 24 else torch.float64
        self.register_buffer("_levels", levels_t.long(), persistent=False)
        shift = torch.atanh(offset / half_l)
        self.register_buffer("_twice_half_l", 2 * half_l.float(), persistent=False)
        self.register_buffer("_offset", -(half_l + offset).float(), persistent=False)  # added, so negated
        self.register_buffer("_twice_shift", 2 * shift.float(), persistent=False)
        self.register_buffer("_half_width", half_width.long(), persistent=False)
        self.register_buffer("_inv_half_width", (1.0 / half_width.float()), persistent=False)
        self.register_buffer("_slope", (4 * half_l / half_width).float(), persistent=False)
        self.register_buffer("_basis", basis, persistent=False)
        self.register_buffer("_basis_f", basis.to(index_dtype), persistent=False)
        self.register_buffer(
            "_code_offset", (half_width.long() * basis).sum().to(index_dtype), persistent=False
        )

    def forward(self, z: Tensor) -> QuantizerOutput:
        latent = self.in_proj(z)
        flat = latent.reshape(-1, self.codebook_dim)
        if flat.dtype not in (torch.float32, torch.float64):
            flat = flat.float()
        quantized, codes = _BoundRound.apply(
            flat,
            self._twice_shift,
            self._twice_half_l,
            self._offset,
            self._inv_half_width,
            self._slope,
            self._basis_f,
            self._code_offset,
        )
        quantized = quantized.to(latent.dtype).view(latent.shape)
        metrics = {}
        if self.track_perplexity:
            metrics["perplexity"] = batch_perplexity(codes, self.codebook_size)
        loss = quantized.new_zeros(())
        return QuantizerOutput(self.out_proj(quantized), codes.view(*z.shape[:-1], 1), loss, metrics)

    def codes_to_level_indices(self, codes: Tensor) -> Tensor:
        """Codes ``(..., 1)`` -> per-channel level indices ``(..., len(levels))`` in ``[0, L_i)``."""
        return torch.div(codes, self._basis, rounding_mode="floor") % self._levels

    def codes_to_embeddings(self, codes: Tensor) -> Tensor:
        """Codes ``(..., 1)`` -> ``(..., dim)``, the value of ``forward(z).quantized``."""
        centred = self.codes_to_level_indices(codes) - self._half_width
        return self.out_proj(centred.float() * self._inv_half_width)
