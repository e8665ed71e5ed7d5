"""The encoder -> residual VQ -> decoder shape shared by the convolutional audio codecs, SoundStream
(Zeghidour et al. 2021, https://arxiv.org/abs/2107.03312) and EnCodec (Defossez et al. 2022,
https://arxiv.org/abs/2210.13438): waveforms ``(B, C, samples)`` in [-1, 1] -> codes ``(B, frames, levels)``.

One model holds ``depth`` residual levels and is run at a bitrate: ``num_levels`` of them encode, decode
and count in the rate (``num_codebooks``). With the quantizer's dropout (SoundStream sec. III-C) a
training batch uses a random number of levels; its codes keep ``num_levels`` columns, ``-1`` where the
batch dropped the level.

EnCodec's 48 kHz model also encodes in segments (``segment`` seconds, ``overlap`` of them shared with
the next; official ``EncodecModel.encode``) and normalises each segment by its loudness: the segment is
divided by the RMS of its channel mean (+1e-8) and the decoded segment multiplied back; decoded
segments are cross-faded (`linear_overlap_add`). Such a stream is more than its codes: the decoder
needs the input length (it emits whole frames, and the segments follow from the length) and the
per-segment scales, a `Stream`. ``encode`` keeps the `Stream` of the codes it returned last, so
``decode(encode(x))`` works as the protocol says; other codes need ``decode(codes, stream)``.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch
from torch import Tensor

from ..modules.seanet import SEANetDecoder, SEANetEncoder
from ..protocol import QuantizerOutput, Tokenizer, TokenizerOutput
from ..quantizers.residual import ResidualQuantizer


@dataclass(frozen=True)
class Stream:
    """What a codec's stream carries besides the codes: the input length in samples and, for normalised
    models, the scale of every segment ``(B, segments)`` (EnCodec writes each as a float32)."""

    length: int
    scales: Tensor | None = None


def linear_overlap_add(segments: list[Tensor], stride: int) -> Tensor:
    """Decoded segments ``(B, C, n_i)``, placed every ``stride`` samples, cross-faded: each is weighted by
    a triangle over the first segment's length (peak at its middle) and the sum divided by the summed
    weights, so across an overlap the weight moves linearly from one segment to the next (EnCodec's
    ``_linear_overlap_add``). Returns ``(B, C, stride * (len - 1) + n_last)``."""
    first = segments[0]
    t = torch.linspace(0, 1, first.shape[-1] + 2, device=first.device, dtype=first.dtype)[1:-1]
    triangle = 0.5 - (t - 0.5).abs()
    total = stride * (len(segments) - 1) + segments[-1].shape[-1]
    out = first.new_zeros(*first.shape[:-1], total)
    weights = first.new_zeros(total)
    for index, segment in enumerate(segments):
        start, n = index * stride, segment.shape[-1]
        out[..., start : start + n] += triangle[:n] * segment
        weights[start : start + n] += triangle[:n]
    return out / weights


class AudioCodec(Tokenizer):
    """SEANet encoder, residual VQ over the latent frames, SEANet decoder.

    Args:
        encoder: ``(B, channels, T) -> (B, dim, ceil(T / hop))``.
        quantizer: a `ResidualQuantizer` over ``dim``.
        decoder: ``(B, dim, F) -> (B, channels, F * hop)``.
        channels: audio channels.
        num_levels: residual levels used (the bitrate).
        normalize: scale each segment to unit RMS (EnCodec 48 kHz).
        segment: encode segments of this many seconds (``None``: the whole input at once).
        overlap: fraction of a segment shared with the next.
    """

    modality = "audio"

    def __init__(self, encoder: SEANetEncoder, quantizer: ResidualQuantizer, decoder: SEANetDecoder, *, channels: int, num_levels: int,
                 normalize: bool = False, segment: float | None = None, overlap: float = 0.01):  # fmt: skip
        super().__init__()
        if encoder.hop_length != decoder.hop_length:
            raise ValueError(f"encoder hop {encoder.hop_length} != decoder hop {decoder.hop_length}")
        self.encoder = encoder
        self.quantizer = quantizer
        self.decoder = decoder
        self.channels = channels
        self.hop_length = encoder.hop_length
        self.normalize = normalize
        self.segment = segment
        self.overlap = overlap
        self.num_levels = num_levels
        self._last_encoded: tuple[weakref.ref, Stream] | None = None

    @property
    def num_levels(self) -> int:
        return self._num_levels

    @num_levels.setter
    def num_levels(self, levels: int) -> None:
        if not 1 <= levels <= self.quantizer.depth:
            raise ValueError(f"num_levels must be in [1, {self.quantizer.depth}], got {levels}")
        self._num_levels = levels

    @property
    def num_codebooks(self) -> int:
        return self.num_levels * self.quantizer.codes_per_level

    @property
    def bits_per_token(self) -> float:
        return self.num_codebooks * math.log2(self.codebook_size)

    def segments(self, length: int) -> list[tuple[int, int]]:
        """``(start, stop)`` of each separately encoded segment of an input of ``length`` samples."""
        if self.segment is None:
            return [(0, length)]
        size, stride = self._segment_size_and_stride()
        return [(start, min(start + size, length)) for start in range(0, length, stride)]

    def _segment_size_and_stride(self) -> tuple[int, int]:
        size = int(self.segment * self.sample_rate)
        return size, max(1, int((1 - self.overlap) * size))

    def _frames(self, length: int) -> list[int]:
        return [-(-(stop - start) // self.hop_length) for start, stop in self.segments(length)]

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        channels, length = input_shape
        if channels != self.channels:
            raise ValueError(f"{type(self).__name__} takes {self.channels}-channel audio, got {channels} channels")
        return (sum(self._frames(length)),)

    def encode_stream(self, x: Tensor) -> tuple[QuantizerOutput, Stream]:
        """``x`` ``(B, C, T)`` -> the quantizer's output over all frames ``(B, frames, dim)`` (segments
        one after the other) and the `Stream` its decoding needs."""
        if x.ndim != 3 or x.shape[1] != self.channels:
            raise ValueError(f"expected audio (B, {self.channels}, samples), got shape {tuple(x.shape)}")
        latents, scales = [], []
        for start, stop in self.segments(x.shape[-1]):
            segment = x[..., start:stop]
            if self.normalize:
                scale = segment.mean(dim=1, keepdim=True).square().mean(dim=2, keepdim=True).sqrt() + 1e-8  # (B, 1, 1)
                segment = segment / scale
                scales.append(scale.view(-1))
            latents.append(self.encoder(segment))
        z = torch.cat(latents, dim=-1).transpose(1, 2)  # (B, frames, dim)
        dropout = self.training and self.quantizer.quantizer_dropout
        out = self.quantizer(z, num_levels=None if dropout else self.num_levels)
        out.codes = out.codes[..., : self.num_codebooks]
        return out, Stream(x.shape[-1], torch.stack(scales, dim=1) if scales else None)

    def quantize(self, x: Tensor) -> QuantizerOutput:
        return self.encode_stream(x)[0]

    def decode_embeddings(self, quantized: Tensor, stream: Stream | None = None) -> Tensor:
        """``(B, frames, dim)`` -> ``(B, C, samples)``: ``stream.length`` samples, or every decoded
        sample (``frames * hop``) without a stream, which only an unsegmented, unnormalised model allows."""
        z = quantized.transpose(1, 2)
        if stream is None:
            if self.segment is not None or self.normalize:
                raise ValueError(f"{type(self).__name__} decodes segments with their scales: decode(codes, stream) with the Stream of encode_stream")
            return self.decoder(z)
        counts = self._frames(stream.length)
        if sum(counts) != z.shape[-1]:
            raise ValueError(f"{z.shape[-1]} frames do not make a stream of {stream.length} samples ({sum(counts)} frames)")
        decoded = []
        for index, part in enumerate(z.split(counts, dim=-1)):
            y = self.decoder(part)
            decoded.append(y if stream.scales is None else y * stream.scales[:, index].view(-1, 1, 1))
        if self.segment is None:
            return decoded[0][..., : stream.length]
        return linear_overlap_add(decoded, self._segment_size_and_stride()[1])[..., : stream.length]

    def forward(self, x: Tensor) -> TokenizerOutput:
        out, stream = self.encode_stream(x)
        return TokenizerOutput(self.decode_embeddings(out.quantized, stream), out.codes, out.loss, out.metrics)

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        out, stream = self.encode_stream(x)
        self._last_encoded = (weakref.ref(out.codes), stream)
        return out.codes

    @torch.no_grad()
    def decode(self, codes: Tensor, stream: Stream | None = None) -> Tensor:
        """codes ``(B, frames, num_codebooks)`` -> ``(B, C, samples)``; ``stream`` defaults to that of the
        codes ``encode`` returned last, when these are they."""
        if stream is None and self._last_encoded is not None and self._last_encoded[0]() is codes:
            stream = self._last_encoded[1]
        return self.decode_embeddings(self.quantizer.codes_to_embeddings(codes), stream)

    def last_layer_weight(self) -> Tensor:
        return self.decoder.last_layer_weight()
