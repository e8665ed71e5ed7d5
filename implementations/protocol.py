"""The two protocols every model in this package follows: `Quantizer` and `Tokenizer`.

Conventions shared by all modalities:

* Tokenizer inputs are floats in [-1, 1]: images ``(B, 3, H, W)``, video ``(B, 3, T, H, W)``,
  audio ``(B, C, samples)``.
* Quantizers are modality-agnostic and channel-last: they take ``z`` of shape ``(..., dim)``.
* Codes are always ``LongTensor`` of shape ``(..., depth)`` where ``depth`` is the number of
  codebooks (residual levels or groups); it is 1 for plain VQ. A tokenizer's codes are
  ``(B, *token_grid, depth)``.
* One name per idea: ``codes`` (integer indices), ``quantized`` (the embeddings the decoder sees),
  ``codes_to_embeddings`` (the inverse of quantization), ``codebook_size`` (entries per codebook),
  ``num_codebooks`` (the depth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn


@dataclass
class QuantizerOutput:
    """What every quantizer's ``forward`` returns.

    quantized: ``(..., dim)``, with a straight-through (or other) gradient path to the input.
    codes: ``(..., num_codebooks)`` int64.
    loss: scalar, the quantizer's own weighted training loss (zero when it has none).
    metrics: detached scalars for logging (e.g. ``commitment``, ``codebook``, ``perplexity``).
    """

    quantized: Tensor
    codes: Tensor
    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class TokenizerOutput:
    """What every tokenizer's ``forward`` returns.

    recon: same shape as the input, in [-1, 1] (up to the decoder's range); None for a tokenizer
        without a decoder (``Tokenizer.reconstructs`` False).
    codes: ``(B, *token_grid, num_codebooks)`` int64.
    loss: scalar quantizer loss to add to the reconstruction objective.
    metrics: detached scalars for logging.
    """

    recon: Tensor | None
    codes: Tensor
    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


class Quantizer(nn.Module):
    """Base class of every quantizer in ``implementations.quantizers``.

    Subclasses set ``dim`` (input channels), ``codebook_size`` (entries per codebook) and
    ``num_codebooks`` and implement ``forward`` and ``codes_to_embeddings``.
    """

    dim: int
    codebook_size: int
    num_codebooks: int = 1

    def forward(self, z: Tensor) -> QuantizerOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def codes_to_embeddings(self, codes: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Map codes ``(..., num_codebooks)`` back to ``(..., dim)``, equal to ``forward(z).quantized``
        in value (without its gradient path)."""
        raise NotImplementedError

    @property
    def bits_per_token(self) -> float:
        return self.num_codebooks * math.log2(self.codebook_size)


class Tokenizer(nn.Module):
    """Base class of every tokenizer, image, video or audio.

    Class attributes describe the model for listings and records: ``modality``, ``family``,
    ``paper`` (a citation and URL). Instances expose ``quantizer`` and implement ``encode``,
    ``decode`` and ``token_grid``; ``forward`` is shared. In eval mode
    ``decode(encode(x))`` equals ``forward(x).recon``.

    ``reconstructs`` is False for a tokenizer without a decoder (self-supervised speech tokenizers such
    as vq-wav2vec, whose codes feed a language model): its ``decode_embeddings`` (so ``decode``)
    raises ``NotImplementedError`` and ``forward(x).recon`` is None.
    """

    modality: ClassVar[str] = "image"
    reconstructs: ClassVar[bool] = True
    family: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    sample_rate: ClassVar[int | None] = None
    quantizer: Quantizer

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def num_codebooks(self) -> int:
        return self.quantizer.num_codebooks

    @property
    def bits_per_token(self) -> float:
        return self.quantizer.bits_per_token

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:  # pragma: no cover
        """The token grid for an input of shape ``input_shape`` (without the batch dimension)."""
        raise NotImplementedError

    def rate(self, input_shape: tuple[int, ...]) -> dict[str, Any]:
        """What one input of shape ``input_shape`` (no batch dimension) costs in tokens and bits:
        ``token_grid``, ``tokens``, ``codebook_size``, ``num_codebooks``, ``bits_per_token``, ``bits``,
        and by modality ``bits_per_pixel`` (image: per pixel; video: per pixel per frame, with
        ``tokens_per_frame``) or ``kbps`` and ``tokens_per_second`` (audio, at ``sample_rate``)."""
        grid = self.token_grid(tuple(input_shape))
        tokens = math.prod(grid)
        bits = self.bits_per_token * tokens
        rate: dict[str, Any] = {
            "token_grid": list(grid),
            "tokens": tokens,
            "codebook_size": self.codebook_size,
            "num_codebooks": self.num_codebooks,
            "bits_per_token": self.bits_per_token,
            "bits": bits,
        }
        if self.modality == "audio":
            seconds = input_shape[-1] / self.sample_rate
            rate.update(kbps=bits / seconds / 1000, tokens_per_second=tokens / seconds)
        else:  # image (3, H, W) or video (3, T, H, W): pixels, counting every frame's
            rate["bits_per_pixel"] = bits / math.prod(input_shape[1:])
            if self.modality == "video":
                rate["tokens_per_frame"] = tokens / input_shape[1]
        return rate

    def quantize(self, x: Tensor) -> QuantizerOutput:  # pragma: no cover - abstract
        """Encode ``x`` and quantize: quantized latents channel-last ``(B, *grid, dim)``."""
        raise NotImplementedError

    def decode_embeddings(self, quantized: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Decode channel-last quantized latents ``(B, *grid, dim)`` to the input space."""
        raise NotImplementedError

    def last_layer_weight(self) -> Tensor:  # pragma: no cover - abstract
        """The weight of the decoder's output layer (taming's adaptive GAN weight compares the
        gradient norms of the reconstruction and GAN losses there)."""
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """``x`` -> codes ``(B, *token_grid, num_codebooks)``."""
        return self.quantize(x).codes

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """codes ``(B, *token_grid, num_codebooks)`` -> reconstruction."""
        return self.decode_embeddings(self.quantizer.codes_to_embeddings(codes))

    def forward(self, x: Tensor) -> TokenizerOutput:
        q = self.quantize(x)
        recon = self.decode_embeddings(q.quantized) if self.reconstructs else None
        return TokenizerOutput(recon, q.codes, q.loss, q.metrics)


@dataclass
class DiscriminatorOutput:
    """What every discriminator's ``forward`` returns (GAN training of tokenizers, `implementations.losses`).

    logits: one tensor per sub-discriminator (scale, STFT resolution, ...), each ``(B, ...)``: a
        real/fake score per patch, frame or position.
    features: per sub-discriminator, its intermediate activations in order (for feature matching).
    """

    logits: list[Tensor]
    features: list[list[Tensor]] = field(default_factory=list)


class Discriminator(nn.Module):
    """Base class of every discriminator in ``implementations.modules.discriminators``: it takes the
    inputs of its ``modality`` (images ``(B, C, H, W)``, video ``(B, C, T, H, W)``, audio
    ``(B, C, samples)``, in [-1, 1]) and returns a `DiscriminatorOutput`."""

    modality: ClassVar[str] = "image"
    paper: ClassVar[str] = ""

    def forward(self, x: Tensor) -> DiscriminatorOutput:  # pragma: no cover - abstract
        raise NotImplementedError

