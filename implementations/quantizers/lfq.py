"""Lookup-free quantization (LFQ; MAGVIT-v2, Yu et al. 2023, "Language Model Beats Diffusion --
Tokenizer is Key to Visual Generation", https://arxiv.org/abs/2310.05737).

Each of the ``k`` channels of a codebook is quantized to its sign, ``q = s * sign(x)`` (``s`` the
``codebook_scale``, ``x == 0`` maps to ``-s``); the implicit codebook is ``{-s, +s}^k`` with
``2^k`` codes. A token's code is the integer whose bits are ``x_d > 0`` with the FIRST channel the
most significant bit (``bit_order="msb_first"``, the convention of vector-quantize-pytorch's ``LFQ``
and of Open-MAGVIT2's first release, June 2024) or the least significant one (``"lsb_first"``:
Open-MAGVIT2 from its v2 code of September 2024 on, ``2 ** torch.arange(k)``, with which its L
checkpoints were released). The gradient is straight through (identity). With ``num_codebooks = C``
the ``C k`` channels are split into ``C`` independent codebooks of ``k`` bits, codes ``(..., C)``.

Loss (MAGVIT-v2 eq. 5, with the weights of vector-quantize-pytorch / Open-MAGVIT2)::

    loss = entropy_weight * (H_sample - diversity_gamma * H_codebook) + commitment_weight * ||x - sg[q]||^2

with the code distribution of a token ``P(c | x) = softmax_c(-||x - c||^2 * inv_temperature)``
(``inv_temperature`` = 100 by default, as in vqp), ``H_sample`` the mean over tokens of
``H(P(.|x))`` and ``H_codebook = H(mean over tokens of P(.|x))``. Both are averaged over codebooks.

How they are computed here, without ever building the ``N x 2^k`` matrix at large ``k``:

* ``H_sample`` is EXACT and costs ``O(N k)``: since ``||c||^2 = k s^2`` is constant,
  ``-||x - c||^2 / T = 2 x.c / T + const`` and the softmax over ``c in {-s, s}^k`` factorises into
  independent bits with ``P(c_d = +s) = sigmoid(a_d)``, ``a_d = 4 s x_d * inv_temperature``; the entropy
  of a product distribution is the sum of the per-bit binary entropies
  ``H_b(a) = softplus(a) - a sigmoid(a)``.
* ``H_codebook`` does not factorise (the batch mean of product distributions is a mixture). It is
  computed EXACTLY over sub-codebooks: the ``k`` bits are cut into ``ceil(k / entropy_group_bits)``
  contiguous groups of (nearly) equal size and the group entropies are SUMMED. By subadditivity the
  sum is an upper bound of the full codebook entropy, equal to it when ``k <= entropy_group_bits``
  (one group: the exact full-codebook entropy) -- see ``codebook_entropy_is_exact``. The default
  (``entropy_group_bits = 9``) gives two groups of 9 bits at 2^18; ``entropy_group_bits = 18`` gives
  the exact 2^18 codebook entropy. Each group's batch-mean distribution is itself exact and cheap:
  a token's distribution over the group's ``2^g`` codes is the outer product of its distributions
  over the two halves of the group's bits, so ``mean_n P_n = P1^T P2 / N`` -- one matrix product,
  two ``N x 2^{g/2}`` tensors and one ``2^{g/2} x 2^{g/2}`` matrix, never ``N x 2^g`` (see
  ``_GroupCodebookEntropy``). vector-quantize-pytorch instead builds the full ``N x 2^k`` softmax
  (14 GB at 2^18, N = 2048) and clamps probabilities at 1e-5 inside the log (wrong near uniform at
  large k); Open-MAGVIT2 also uses the full codebook. With several codebooks, both entropies are
  averaged over codebooks (as vqp does), not summed.
* Entropies are computed in float32 (float64 inputs stay float64), only in training mode and only
  when ``entropy_weight != 0``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..protocol import Quantizer, QuantizerOutput
from ..arguments import ArgumentError, require_positive
from ..registry import register_quantizer
from .stats import batch_perplexity


class _SignSTE(torch.autograd.Function):
    """``x -> s * sign(x)`` (``-s`` at 0) with an identity (straight-through) gradient."""

    @staticmethod
    def forward(ctx, x, scale: float):
        positive = x > 0
        ctx.mark_non_differentiable(positive)
        return torch.where(positive, scale, -scale).to(x.dtype), positive

    @staticmethod
    def backward(ctx, grad, _grad_positive):
        return grad, None


def binary_entropy_from_logits(a: Tensor) -> Tensor:
    """Entropy (nats) of a Bernoulli with ``P(1) = sigmoid(a)``, elementwise: ``softplus(a) - a sigmoid(a)``."""
    return F.softplus(a, threshold=50.0) - a * torch.sigmoid(a)


def bit_signs(bits: int, dtype=torch.float32, device=None) -> Tensor:
    """The ``(2^bits, bits)`` matrix of +-1: row ``j`` holds the bits of ``j``, most significant first."""
    shifts = torch.arange(bits - 1, -1, -1, device=device)
    table = (torch.arange(1 << bits, device=device).unsqueeze(1) >> shifts) & 1
    return table.to(dtype) * 2 - 1


class _GroupCodebookEntropy(torch.autograd.Function):
    """Exact entropy of the batch-mean code distribution of one group of ``g`` bits, per codebook.

    Input: bit logits ``a`` ``(C, N, g)`` (``P(bit = 1) = sigmoid(a)``) and the half sign tables of the
    two halves ``h1 = ceil(g/2)``, ``h2 = g - h1`` (``(h, 2^h)``, entries +-1/2). Output ``(C,)`` nats.

    Each token's distribution over the group's ``2^g`` codes is a product over bits, hence the outer
    product of its distributions over the two halves, ``P_n = P1_n (x) P2_n`` with
    ``P1_n = softmax((a_n / 2) . signs)`` over ``2^h1`` patterns (the product of its bit probabilities).
    So ``mean_n P_n = P1^T P2 / N`` is one matrix product with ``N`` as the inner dimension; no
    ``N x 2^g`` tensor exists (at g = 18: two ``N x 512`` tensors and a ``512 x 512`` one). The
    backward pass is written out so that every operand stays contiguous.
    """

    @staticmethod
    def forward(ctx, logits, half_signs_first, half_signs_second):
        h1 = half_signs_first.shape[0]
        n = logits.shape[1]
        first = (logits[..., :h1] @ half_signs_first).softmax(-1)  # (C, N, 2^h1)
        second = (logits[..., h1:] @ half_signs_second).softmax(-1)  # (C, N, 2^h2)
        mean_probs = torch.bmm(first.transpose(1, 2), second).div_(n)  # (C, 2^h1, 2^h2)
        log_mean = mean_probs.clamp_min(torch.finfo(mean_probs.dtype).tiny).log_()
        entropy = -(mean_probs * log_mean).sum((1, 2))
        ctx.save_for_backward(first, second, log_mean, half_signs_first, half_signs_second)
        return entropy

    @staticmethod
    def backward(ctx, grad_entropy):
        first, second, log_mean, half_signs_first, half_signs_second = ctx.saved_tensors
        n = first.shape[1]
        # dH/dmean = -(log mean + 1); d mean / d first = second / N (and symmetrically)
        grad_mean = (log_mean + 1).mul_(-grad_entropy.view(-1, 1, 1) / n)  # (C, 2^h1, 2^h2)
        grad_first = torch.bmm(second, grad_mean.transpose(1, 2))  # (C, N, 2^h1)
        grad_second = torch.bmm(first, grad_mean)  # (C, N, 2^h2)

        def through_softmax(probs, grad_probs, half_signs):
            grad_logits = probs * (grad_probs - (grad_probs * probs).sum(-1, keepdim=True))
            return grad_logits @ half_signs.t()  # (C, N, h)

        grad = torch.cat(
            [
                through_softmax(first, grad_first, half_signs_first),
                through_softmax(second, grad_second, half_signs_second),
            ],
            dim=-1,
        )
        return grad, None, None


@register_quantizer("lfq")
class LookupFreeQuantizer(Quantizer):
    """Sign quantizer with the MAGVIT-v2 entropy penalty.

    Args:
        dim: channels of the input ``z`` ``(..., dim)``.
        codebook_size: codes per codebook, a power of two ``2^k`` (e.g. ``2**18``).
        num_codebooks: independent codebooks ``C``; the code space has ``C k`` channels.
        codebook_scale: ``s``, the code values are ``+-s``.
        entropy_weight: weight of the entropy penalty; 0 skips its computation.
        diversity_gamma: weight of the codebook entropy inside the penalty.
        commitment_weight: weight of ``mse(x, sg[q])``.
        inv_temperature: ``1/T`` of the code distribution ``softmax(-||x - c||^2 / T)``.
        entropy_group_bits: largest number of bits per group for the codebook entropy (see the
            module docstring); ``>= k`` gives the exact full-codebook entropy (at 2^18 about 4x
            the time of the default two 9-bit groups, still without an ``N x 2^k`` tensor).
        track_perplexity: add the batch perplexity of the codes (mean over codebooks) to ``metrics``.
        bit_order: ``"msb_first"`` (the first channel is the code's most significant bit) or
            ``"lsb_first"``; the entropies do not depend on it.

    Shapes: ``forward(z (..., dim))`` -> quantized ``(..., dim)``, codes ``(..., C)`` int64 in
    ``[0, 2^k)``, scalar loss. ``codes_to_embeddings(codes (..., C)) -> (..., dim)``. When
    ``dim != C k`` linear in/out projections map between ``dim`` and the code space.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int = 1 << 18,
        num_codebooks: int = 1,
        codebook_scale: float = 1.0,
        entropy_weight: float = 0.1,
        diversity_gamma: float = 1.0,
        commitment_weight: float = 0.25,
        inv_temperature: float = 100.0,
        entropy_group_bits: int = 9,
        track_perplexity: bool = True,
        bit_order: str = "msb_first",
    ):
        super().__init__()
        require_positive(dim=dim, codebook_size=codebook_size, num_codebooks=num_codebooks, entropy_group_bits=entropy_group_bits)
        bits = codebook_size.bit_length() - 1
        if 1 << bits != codebook_size or bits < 1:
            raise ArgumentError("codebook_size", "a power of two >= 2 (LFQ)", codebook_size)
        if bits > 62:
            raise ArgumentError("codebook_size", "at most 2**62 (LFQ's int64 codes)", codebook_size)
        if bit_order not in ("msb_first", "lsb_first"):
            raise ArgumentError("bit_order", "'msb_first' or 'lsb_first'", bit_order)
        self.dim = dim
        self.codebook_size = codebook_size
        self.num_codebooks = num_codebooks
        self.bits = bits
        self.codebook_dim = bits * num_codebooks
        self.codebook_scale = float(codebook_scale)
        self.entropy_weight = entropy_weight
        self.diversity_gamma = diversity_gamma
        self.commitment_weight = commitment_weight
        self.inv_temperature = inv_temperature
        self.track_perplexity = track_perplexity

        projected = self.codebook_dim != dim
        self.in_proj = nn.Linear(dim, self.codebook_dim) if projected else nn.Identity()
        self.out_proj = nn.Linear(self.codebook_dim, dim) if projected else nn.Identity()

        # codes = bits @ 2^shifts; float32 is exact below 2^24, float64 below 2^53
        self.bit_order = bit_order
        shifts = torch.arange(bits - 1, -1, -1) if bit_order == "msb_first" else torch.arange(bits)  # per channel
        index_dtype = torch.float32 if bits <= 24 else torch.float64
        self.register_buffer("_powers", (2**shifts).to(index_dtype), persistent=False)
        self.register_buffer("_shifts", shifts, persistent=False)

        # contiguous groups of nearly equal size for the codebook entropy
        num_groups = max(1, math.ceil(bits / max(1, entropy_group_bits)))
        sizes = [bits // num_groups + (1 if g < bits % num_groups else 0) for g in range(num_groups)]
        self.entropy_groups = tuple(sizes)
        # half of the +-1 sign table of each half-group size (the logits are (a / 2) . signs)
        for size in sorted({h for g in sizes for h in ((g + 1) // 2, g // 2)}):
            self.register_buffer(f"_half_signs_{size}", bit_signs(size).t() / 2, persistent=False)

    @property
    def codebook_entropy_is_exact(self) -> bool:
        """True when the codebook entropy is the full-codebook one (a single group of bits)."""
        return len(self.entropy_groups) == 1

    def entropies(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-sample and codebook entropies (nats), each averaged over codebooks.

        x: the pre-quantization code-space values ``(N, C, k)``. Returns two scalars; see the module
        docstring for the formulas (exact per-sample entropy, grouped codebook entropy).
        """
        if x.dtype not in (torch.float32, torch.float64):
            x = x.float()
        logits = x * (4.0 * self.codebook_scale * self.inv_temperature)  # (N, C, k)
        per_sample = binary_entropy_from_logits(logits).sum(-1).mean()

        by_codebook = logits.transpose(0, 1).contiguous()  # (C, N, k)
        codebook = logits.new_zeros(())
        start = 0
        for size in self.entropy_groups:
            h1 = (size + 1) // 2
            signs_first = getattr(self, f"_half_signs_{h1}").to(logits.dtype)
            signs_second = getattr(self, f"_half_signs_{size - h1}").to(logits.dtype)
            group = by_codebook[..., start : start + size]
            codebook = codebook + _GroupCodebookEntropy.apply(group, signs_first, signs_second).mean()
            start += size
        return per_sample, codebook

    def forward(self, z: Tensor) -> QuantizerOutput:
        latent = self.in_proj(z)
        x = latent.reshape(-1, self.num_codebooks, self.bits)  # (N, C, k)
        quantized, positive = _SignSTE.apply(x, self.codebook_scale)
        codes = (positive.to(self._powers.dtype) @ self._powers).long()  # (N, C)

        commitment = F.mse_loss(x, quantized.detach())
        loss = self.commitment_weight * commitment
        metrics = {"commitment": commitment.detach()}
        if self.training and self.entropy_weight != 0:
            per_sample, codebook = self.entropies(x)
            loss = loss + self.entropy_weight * (per_sample - self.diversity_gamma * codebook)
            metrics["per_sample_entropy"] = per_sample.detach()
            metrics["codebook_entropy"] = codebook.detach()
        if self.track_perplexity:
            metrics["perplexity"] = torch.stack(
                [batch_perplexity(codes[:, c], self.codebook_size) for c in range(self.num_codebooks)]
            ).mean()

        quantized = quantized.view(latent.shape)
        return QuantizerOutput(self.out_proj(quantized), codes.view(*z.shape[:-1], self.num_codebooks), loss, metrics)

    def codes_to_embeddings(self, codes: Tensor) -> Tensor:
        """Codes ``(..., C)`` -> ``(..., dim)``, the value of ``forward(z).quantized``."""
        bits = (codes.unsqueeze(-1) >> self._shifts) & 1  # (..., C, k)
        values = bits.float() * (2 * self.codebook_scale) - self.codebook_scale
        return self.out_proj(values.flatten(-2))
