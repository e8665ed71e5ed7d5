"""Gumbel-softmax quantization.

* DALL-E's dVAE (Ramesh et al. 2021, "Zero-Shot Text-to-Image Generation",
  https://arxiv.org/abs/2102.12092): logits over K codes, a relaxed (soft) one-hot at temperature
  ``tau`` mixes the codebook, a KL term to the uniform prior over codes, ``tau`` annealed towards
  1/16.
* vq-wav2vec (Baevski et al. 2019, https://arxiv.org/abs/1910.05453): straight-through hard
  Gumbel-softmax (one-hot forward, soft gradient), the vector split into ``G`` groups with a
  codebook each (codes ``(..., G)``), ``tau`` annealed from 2 to 0.5 by a factor 0.999995 per update.

Logits come from one linear layer ``dim -> groups * codebook_size``. In training a Gumbel sample is
drawn; in eval the codes are the argmax of the logits (no noise) and the output is the codebook rows.
Here the ``N x K`` (soft) one-hot is the method itself.

With ``one_hot=True`` the quantizer has no parameters: ``z`` are the logits themselves and the output is
the (relaxed) one-hot, as in DALL-E's dVAE, whose encoder ends in the 1x1 convolution to the logits and
whose decoder begins with a 1x1 convolution over the one-hot (that convolution is the codebook).
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


def gumbel_temperature(step: int, start: float = 2.0, end: float = 0.5, *, decay: float = 0.999995, total_steps: int | None = None, mode: str = "exponential") -> float:
    """Temperature at ``step``.

    exponential: ``max(start * decay ** step, end)`` (vq-wav2vec: 2, 0.5, 0.999995).
    linear / cosine: from ``start`` at step 0 to ``end`` at ``total_steps``, constant after.
    """
    if mode == "exponential":
        return max(start * decay**step, end)
    if total_steps is None or total_steps <= 0:
        raise ValueError(f"mode {mode!r} needs total_steps > 0")
    progress = min(max(step, 0) / total_steps, 1.0)
    if mode == "linear":
        return start + (end - start) * progress
    if mode == "cosine":
        return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown temperature schedule {mode!r}")


_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


@register_quantizer("gumbel")
class GumbelQuantizer(Quantizer):
    """Gumbel-softmax quantizer.

    Args:
        dim: channels of ``z`` ``(..., dim)``.
        codebook_size: codes K per group.
        groups: G codebooks, each producing ``codebook_dim`` channels of the output (vq-wav2vec).
        codebook_dim: channels per group's code; default ``dim // groups``. When
            ``groups * codebook_dim != dim`` a linear layer maps the concatenation back to ``dim``.
        temperature: initial ``tau`` (set ``.temperature`` during training, e.g. from
            ``gumbel_temperature``).
        hard: straight-through one-hot forward with the soft gradient (vq-wav2vec, taming's
            ``straight_through``); ``False`` gives DALL-E's soft relaxation.
        kl_weight: weight of ``KL(softmax(logits) || uniform)`` averaged over tokens and groups
            (DALL-E; 0 disables it).
        one_hot: ``z`` are the logits, ``(..., groups * codebook_size)`` (so ``dim`` must be that), and
            ``quantized`` is the (relaxed) one-hot of the same shape: no logits layer, codebook or
            output projection (DALL-E).
        logits_hidden: if set, the logits come from a two-layer MLP ``dim -> logits_hidden ->
            groups * codebook_size`` with ``logits_activation`` (``"gelu"`` or ``"relu"``) between, as
            fairseq's ``GumbelVectorQuantizer`` with ``weight_proj_depth=2`` builds it (vq-wav2vec:
            ``logits_hidden = 2 * dim``); ``to_logits`` is then ``Sequential(Linear, activation, Linear)``.

    Codes ``(..., groups)``; ``codes_to_embeddings`` concatenates the groups' codes (one-hots).
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        groups: int = 1,
        codebook_dim: int | None = None,
        temperature: float = 1.0,
        hard: bool = True,
        kl_weight: float = 0.0,
        one_hot: bool = False,
        logits_hidden: int | None = None,
        logits_activation: str = "gelu",
    ):
        super().__init__()
        require_positive(dim=dim, codebook_size=codebook_size, groups=groups, codebook_dim=codebook_dim, temperature=temperature, logits_hidden=logits_hidden)
        if logits_activation not in _ACTIVATIONS:
            raise ArgumentError("logits_activation", f"one of {', '.join(_ACTIVATIONS)}", logits_activation)
        if one_hot:
            if dim != groups * codebook_size:
                raise ValueError(f"one_hot: dim {dim} must be groups * codebook_size = {groups * codebook_size} (z are the logits)")
            codebook_dim = codebook_size
        if codebook_dim is None:
            if dim % groups:
                raise ValueError(f"dim {dim} is not divisible by groups {groups}; pass codebook_dim")
            codebook_dim = dim // groups
        self.dim = dim
        self.codebook_size = codebook_size
        self.num_codebooks = groups
        self.groups = groups
        self.codebook_dim = codebook_dim
        self.temperature = temperature
        self.hard = hard
        self.kl_weight = kl_weight
        self.one_hot = one_hot

        if not one_hot:
            if logits_hidden is None:
                self.to_logits = nn.Linear(dim, groups * codebook_size)
            else:
                activation = _ACTIVATIONS[logits_activation]()
                self.to_logits = nn.Sequential(nn.Linear(dim, logits_hidden), activation, nn.Linear(logits_hidden, groups * codebook_size))
            self.codebook = nn.Parameter(torch.randn(groups, codebook_size, codebook_dim))
        self.out_proj = nn.Linear(groups * codebook_dim, dim) if groups * codebook_dim != dim else nn.Identity()

    def logits(self, z: Tensor) -> Tensor:
        """``(..., dim)`` -> ``(..., groups, codebook_size)``."""
        return (z if self.one_hot else self.to_logits(z)).unflatten(-1, (self.groups, self.codebook_size))

    def relaxed_one_hot(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """Gumbel-softmax sample at ``self.temperature``: weights ``(..., G, K)`` and codes ``(..., G)``.
        Hard: the weights' value is exactly one-hot (``one_hot + (soft - sg[soft])``), the gradient
        the soft sample's."""
        exponential = torch.empty_like(logits).exponential_().clamp_min_(torch.finfo(logits.dtype).tiny)
        gumbel = -exponential.log()  # -log(Exp(1)) ~ Gumbel(0, 1)
        soft = ((logits + gumbel) / self.temperature).softmax(dim=-1)
        codes = soft.argmax(dim=-1)
        if not self.hard:
            return soft, codes
        one_hot = torch.zeros_like(soft).scatter_(-1, codes.unsqueeze(-1), 1.0)
        return one_hot + (soft - soft.detach()), codes

    def _lookup(self, codes: Tensor) -> Tensor:
        """codes ``(..., G)`` -> concatenated code vectors ``(..., G * codebook_dim)``."""
        if self.one_hot:
            return F.one_hot(codes, self.codebook_size).float().flatten(-2)
        offsets = torch.arange(self.groups, device=codes.device) * self.codebook_size
        rows = F.embedding(codes + offsets, self.codebook.reshape(-1, self.codebook_dim))
        return rows.flatten(-2)

    def forward(self, z: Tensor) -> QuantizerOutput:
        logits = self.logits(z)
        if self.training:
            weights, codes = self.relaxed_one_hot(logits)
            mixed = weights.flatten(-2) if self.one_hot else torch.einsum("...gk,gkd->...gd", weights, self.codebook).flatten(-2)
        else:
            codes = logits.argmax(dim=-1)
            mixed = self._lookup(codes)

        log_probs = logits.float().log_softmax(dim=-1)
        kl = (log_probs.exp() * (log_probs + math.log(self.codebook_size))).sum(-1).mean()
        loss = self.kl_weight * kl if self.kl_weight else torch.zeros((), device=z.device)
        perplexity = torch.stack([batch_perplexity(codes[..., g], self.codebook_size) for g in range(self.groups)]).mean()
        metrics = {"kl_uniform": kl.detach(), "perplexity": perplexity, "temperature": torch.tensor(float(self.temperature))}
        return QuantizerOutput(self.out_proj(mixed), codes, loss, metrics)

    def codes_to_embeddings(self, codes: Tensor) -> Tensor:
        return self.out_proj(self._lookup(codes))
