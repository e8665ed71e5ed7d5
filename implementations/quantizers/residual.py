"""Residual quantization over any inner quantizer.

* RQ-VAE (Lee et al. 2022, "Autoregressive Image Generation using Residual Quantization",
  https://arxiv.org/abs/2203.01941): one codebook shared by every level (``shared_codebook=True``).
* SoundStream (Zeghidour et al. 2021, https://arxiv.org/abs/2107.03312) and EnCodec (Defossez et al.
  2022, https://arxiv.org/abs/2210.13438): one codebook per level, and quantizer dropout for a
  variable bitrate: in training, each batch uses ``n_q`` levels with ``n_q`` uniform in
  ``[1, depth]``; at eval ``num_levels`` picks the bitrate.

Level ``l`` quantizes the residual ``r_l = r_{l-1} - q_l(r_{l-1})`` (``r_0 = z``) and the output is
``sum_l q_l``. The residual keeps its gradient path (as in the SoundStream/EnCodec algorithm and
vector-quantize-pytorch), so autograd applies the chain rule through the inner quantizers' own
surrogate gradients: with straight-through inner quantizers ``d quantized / d z`` is the identity, and
only level 1's commitment term reaches the encoder (``r_l`` for ``l >= 1`` has a zero
straight-through Jacobian), as in EnCodec's code.

RQ-VAE's gradient path (``partial_sum_commitment=True``, as its official ``RQBottleneck`` runs it):
level ``l`` quantizes ``r_{l-1} = z - sg[q_1] - ... - sg[q_{l-1}]``, whose Jacobian with respect to
``z`` is the identity, so level ``l``'s commitment term ``||r_{l-1} - sg[q_l]||^2 = ||z - sg[Q_l]||^2``
pulls ``z`` towards the partial sum ``Q_l = q_1 + ... + q_l`` (RQ-VAE eq. 7: every level's term reaches
the encoder), and the output is one straight-through estimator for the whole stack,
``z + sg[Q_D - z]``.

Loss: the **sum** of the levels' losses (RQ-VAE eq. 7 and EnCodec's commitment loss sum over levels;
RQ-VAE's released code averages instead).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..protocol import Quantizer, QuantizerOutput
from ..arguments import require_positive
from ..registry import create_quantizer, register_quantizer


@register_quantizer("residual")
class ResidualQuantizer(Quantizer):
    """Residual quantizer with ``depth`` levels.

    Args:
        dim: channels of ``z`` ``(..., dim)``.
        depth: number of levels.
        inner: a registered quantizer name built with ``dim=dim, **inner_kwargs`` (one per level,
            or one in all when ``shared_codebook``); or an already-built ``Quantizer`` (shared by all
            levels); or a sequence of ``depth`` built quantizers (one per level).
        shared_codebook: one inner quantizer (one codebook) for all levels, as RQ-VAE. With an EMA
            codebook each level applies its own EMA step, one after the other.
        quantizer_dropout: SoundStream's quantizer dropout in training.
        partial_sum_commitment: RQ-VAE's gradient path (module docstring): each level's commitment
            term pulls ``z`` towards the partial sum of the codes so far.

    Codes: ``(..., depth * c)`` where ``c`` is the inner quantizer's ``num_codebooks`` (1 for VQ),
    level-major. In training with quantizer dropout the levels not used are ``-1``;
    ``forward(z, num_levels=n)`` returns only the first ``n * c`` columns. ``codes_to_embeddings``
    sums the levels present in ``codes`` (skipping ``-1`` levels).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        inner: str | Quantizer | Sequence[Quantizer] = "vq",
        shared_codebook: bool = False,
        quantizer_dropout: bool = False,
        partial_sum_commitment: bool = False,
        **inner_kwargs,
    ):
        super().__init__()
        require_positive(dim=dim, depth=depth)
        if isinstance(inner, str):
            count = 1 if shared_codebook else depth
            levels = [create_quantizer(inner, dim=dim, **inner_kwargs) for _ in range(count)]
        elif isinstance(inner, Quantizer):
            levels, shared_codebook = [inner], True
        else:
            levels = list(inner)
            if len(levels) != depth:
                raise ValueError(f"got {len(levels)} quantizers for depth {depth}")
        if not isinstance(inner, str) and inner_kwargs:
            raise ValueError("inner keyword arguments only apply when the quantizer is given by name")
        for level in levels:
            if level.dim != dim:
                raise ValueError(f"inner quantizer dim {level.dim} != {dim}")
        sizes = {level.codebook_size for level in levels}
        per_level = {level.num_codebooks for level in levels}
        if len(sizes) != 1 or len(per_level) != 1:
            raise ValueError("all levels need the same codebook_size and num_codebooks")

        self.dim = dim
        self.depth = depth
        self.shared_codebook = shared_codebook
        self.quantizer_dropout = quantizer_dropout
        self.partial_sum_commitment = partial_sum_commitment
        self.levels = nn.ModuleList(levels)
        self.codebook_size = sizes.pop()
        self.codes_per_level = per_level.pop()
        self.num_codebooks = depth * self.codes_per_level

    @classmethod
    def from_quantizers(cls, quantizers: Quantizer | Sequence[Quantizer], depth: int | None = None, quantizer_dropout: bool = False,
                        partial_sum_commitment: bool = False) -> "ResidualQuantizer":  # fmt: skip
        """Wrap built quantizers: one shared ``Quantizer`` (then ``depth`` is required) or one per level."""
        options = dict(quantizer_dropout=quantizer_dropout, partial_sum_commitment=partial_sum_commitment)
        if isinstance(quantizers, Quantizer):
            if depth is None:
                raise ValueError("depth is required with a shared quantizer")
            return cls(quantizers.dim, depth, quantizers, **options)
        quantizers = list(quantizers)
        return cls(quantizers[0].dim, len(quantizers), quantizers, **options)

    def level(self, index: int) -> Quantizer:
        """The quantizer of level ``index`` (the same module at every level when shared)."""
        return self.levels[0 if self.shared_codebook else index]

    def _training_levels(self, device: torch.device) -> int:
        n = torch.randint(1, self.depth + 1, (1,), device=device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.broadcast(n, src=0)  # every rank drops the same levels
        return int(n)

    def forward(self, z: Tensor, num_levels: int | None = None) -> QuantizerOutput:
        if num_levels is not None and not 1 <= num_levels <= self.depth:
            raise ValueError(f"num_levels must be in [1, {self.depth}], got {num_levels}")
        dropout = self.training and self.quantizer_dropout and num_levels is None
        used = self._training_levels(z.device) if dropout else (num_levels or self.depth)

        residual = z
        quantized = torch.zeros_like(z)
        loss = torch.zeros((), device=z.device)
        codes, metrics, perplexities = [], {}, []
        for index in range(used):
            out = self.level(index)(residual)
            level_quantized = out.quantized.detach() if self.partial_sum_commitment else out.quantized
            residual = residual - level_quantized
            quantized = quantized + level_quantized
            loss = loss + out.loss
            codes.append(out.codes)
            metrics[f"loss_{index}"] = out.loss.detach()
            metrics[f"residual_norm_{index}"] = residual.detach().norm(dim=-1).mean()
            if "perplexity" in out.metrics:
                metrics[f"perplexity_{index}"] = out.metrics["perplexity"]
                perplexities.append(out.metrics["perplexity"])
        if self.partial_sum_commitment:
            quantized = z + (quantized - z).detach()
        codes = torch.cat(codes, dim=-1)
        if dropout and used < self.depth:
            pad = codes.new_full((*codes.shape[:-1], (self.depth - used) * self.codes_per_level), -1)
            codes = torch.cat([codes, pad], dim=-1)
        if perplexities:
            metrics["perplexity"] = torch.stack(perplexities).mean()
        metrics["num_levels"] = torch.tensor(float(used))
        return QuantizerOutput(quantized, codes, loss, metrics)

    def codes_to_embeddings(self, codes: Tensor, num_levels: int | None = None) -> Tensor:
        """codes ``(..., n * c)`` with ``n <= depth`` -> ``(..., dim)``: the sum of the first
        ``num_levels`` (default all ``n``) levels' embeddings; levels coded ``-1`` add nothing."""
        c = self.codes_per_level
        present = codes.shape[-1] // c
        if codes.shape[-1] != present * c or not 1 <= present <= self.depth:
            raise ValueError(f"codes of width {codes.shape[-1]} do not fit {self.depth} levels of {c}")
        if num_levels is not None:
            present = min(present, num_levels)
        out = None
        for index in range(present):
            level_codes = codes[..., index * c : (index + 1) * c]
            valid = (level_codes >= 0).all(dim=-1, keepdim=True)
            embedding = self.level(index).codes_to_embeddings(level_codes.clamp_min(0))
            embedding = torch.where(valid, embedding, torch.zeros_like(embedding))
            out = embedding if out is None else out + embedding
        return out
