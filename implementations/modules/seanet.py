"""SEANet encoder and decoder, the convolutional waveform autoencoder of SoundStream (Zeghidour et al.
2021, "SoundStream: An End-to-End Neural Audio Codec", https://arxiv.org/abs/2107.03312, sec. III-A/B)
and EnCodec (Defossez et al. 2022, "High Fidelity Neural Audio Compression",
https://arxiv.org/abs/2210.13438, sec. 3.1), with the options of EnCodec's official code
(github.com/facebookresearch/encodec, ``encodec/modules/seanet.py``, ``conv.py``, ``lstm.py``):

* streamable convolutions that pad themselves, causally (all padding in the past) or centred (one
  more sample on the left when the total is odd), plus the right padding that fills the last strided
  window, so a strided convolution gives ``ceil(T / stride)`` frames and the decoder rebuilds them all;
* per convolution either weight norm (Salimans & Kingma 2016; EnCodec 24 kHz), a one-group GroupNorm over
  channels and time after it ("time group norm"; EnCodec 48 kHz, non-causal only) or nothing (SoundStream);
* residual units ``x + conv_1x1(ELU(conv_k,dilated(ELU(x))))`` whose inner width is ``dim // compress``,
  with an identity or 1x1 convolution skip; ``n_residual_layers`` of them per resolution, dilations
  ``dilation_base ** j``;
* down-sampling by strided convolutions of kernel ``2 * stride`` (channels doubled), up-sampling by
  transposed ones (channels halved), ELU before each, and an optional LSTM with a skip at the bottleneck.

The modules are written for this package (names of our own; `implementations.audio.encodec` maps the
official state dict onto them).
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

Norm = Literal["none", "weight_norm", "time_group_norm"]
PadMode = Literal["reflect", "constant"]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _pad(x: Tensor, left: int, right: int, mode: PadMode) -> Tensor:
    """``F.pad`` along time; reflect padding wider than the input first appends zeros (as EnCodec does)
    so short segments can be reflected."""
    widest = max(left, right)
    if mode == "reflect" and x.shape[-1] <= widest:
        extra = widest - x.shape[-1] + 1
        padded = F.pad(F.pad(x, (0, extra)), (left, right), mode="reflect")
        return padded[..., : padded.shape[-1] - extra]
    return F.pad(x, (left, right), mode=mode)


def _normalised(conv: nn.Module, norm: Norm, causal: bool) -> tuple[nn.Module, nn.Module]:
    """The convolution (weight-normed or not) and the module applied after it."""
    if norm not in ("none", "weight_norm", "time_group_norm"):
        raise ValueError(f"unknown norm {norm!r}")
    if norm == "time_group_norm" and causal:
        raise ValueError("time group norm looks at the whole segment: it cannot be causal")
    if norm == "weight_norm":
        conv = weight_norm(conv)
    after = nn.GroupNorm(1, conv.out_channels) if norm == "time_group_norm" else nn.Identity()
    return conv, after


def _weight(conv: nn.Module) -> Tensor:
    """A convolution's trainable weight: ``v`` of a weight-normed one (its direction), else ``weight``."""
    return conv.parametrizations.weight.original1 if hasattr(conv, "parametrizations") else conv.weight


class StreamableConv1d(nn.Module):
    """Self-padding Conv1d: ``(B, C_in, T) -> (B, C_out, ceil(T / stride))``.

    The padding is ``dilation * (kernel - 1) + 1 - stride`` samples (all on the left when ``causal``,
    else split with the odd sample on the left) plus the right padding that completes the last window.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1, *,
                 causal: bool = False, norm: Norm = "none", pad_mode: PadMode = "reflect"):  # fmt: skip
        super().__init__()
        self.conv, self.norm = _normalised(nn.Conv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation), norm, causal)
        self.causal = causal
        self.pad_mode = pad_mode
        self.kernel_size, self.stride = dilation * (kernel_size - 1) + 1, stride

    def forward(self, x: Tensor) -> Tensor:
        length, kernel, stride = x.shape[-1], self.kernel_size, self.stride
        padding = kernel - stride
        frames = _ceil_div(length - kernel + padding, stride) + 1
        extra = (frames - 1) * stride + kernel - padding - length
        left = padding if self.causal else padding - padding // 2
        return self.norm(self.conv(_pad(x, left, padding - left + extra, self.pad_mode)))


class StreamableConvTranspose1d(nn.Module):
    """ConvTranspose1d that trims its ``kernel - stride`` surplus samples: ``(B, C_in, T) -> (B, C_out,
    stride * T)``; trimmed on the right when ``causal``, else split with the odd sample on the left."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, *, causal: bool = False, norm: Norm = "none"):
        super().__init__()
        self.conv, self.norm = _normalised(nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride), norm, causal)
        self.surplus = kernel_size - stride
        self.causal = causal

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(self.conv(x))
        right = self.surplus if self.causal else self.surplus // 2
        return y[..., self.surplus - right : y.shape[-1] - right]


class ResidualUnit(nn.Module):
    """``shortcut(x) + conv2(ELU(conv1(ELU(x))))``: ``conv1`` of kernel ``kernel_size`` and ``dilation``
    to ``dim // compress`` channels, ``conv2`` pointwise back to ``dim``; ``shortcut`` is the identity
    (``true_skip``) or a 1x1 convolution. ``(B, dim, T) -> (B, dim, T)``."""

    def __init__(self, dim: int, kernel_size: int, dilation: int, *, compress: int, true_skip: bool, **conv):
        super().__init__()
        hidden = dim // compress
        self.activation = nn.ELU()
        self.conv1 = StreamableConv1d(dim, hidden, kernel_size, dilation=dilation, **conv)
        self.conv2 = StreamableConv1d(hidden, dim, 1, **conv)
        self.shortcut = nn.Identity() if true_skip else StreamableConv1d(dim, dim, 1, **conv)

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.conv2(self.activation(self.conv1(self.activation(x))))


class SkipLSTM(nn.Module):
    """A unidirectional ``num_layers`` LSTM over time plus its input: ``(B, dim, T) -> (B, dim, T)``."""

    def __init__(self, dim: int, num_layers: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: Tensor) -> Tensor:
        sequence = x.permute(2, 0, 1)  # (T, B, dim)
        return (self.lstm(sequence)[0] + sequence).permute(1, 2, 0)


def _residual_units(dim: int, n: int, kernel_size: int, dilation_base: int, **options) -> nn.ModuleList:
    return nn.ModuleList(ResidualUnit(dim, kernel_size, dilation_base**j, **options) for j in range(n))


class EncoderBlock(nn.Module):
    """Residual units at ``dim`` channels, ELU, strided convolution (kernel ``2 * stride``) to ``2 dim``:
    ``(B, dim, T) -> (B, 2 dim, ceil(T / stride))``."""

    def __init__(self, dim: int, stride: int, residuals: nn.ModuleList, **conv):
        super().__init__()
        self.residuals = residuals
        self.activation = nn.ELU()
        self.down = StreamableConv1d(dim, 2 * dim, 2 * stride, stride, **conv)

    def forward(self, x: Tensor) -> Tensor:
        for unit in self.residuals:
            x = unit(x)
        return self.down(self.activation(x))


class DecoderBlock(nn.Module):
    """ELU, transposed convolution (kernel ``2 * stride``) to ``dim // 2`` channels, residual units:
    ``(B, dim, T) -> (B, dim // 2, stride * T)``."""

    def __init__(self, dim: int, stride: int, residuals: nn.ModuleList, *, causal: bool, norm: Norm):
        super().__init__()
        self.activation = nn.ELU()
        self.up = StreamableConvTranspose1d(dim, dim // 2, 2 * stride, stride, causal=causal, norm=norm)
        self.residuals = residuals

    def forward(self, x: Tensor) -> Tensor:
        x = self.up(self.activation(x))
        for unit in self.residuals:
            x = unit(x)
        return x


def _options(n_residual_layers: int, residual_kernel_size: int, dilation_base: int, compress: int, true_skip: bool, norm: Norm,
             causal: bool, pad_mode: PadMode) -> tuple[dict, dict]:  # fmt: skip
    """Keyword arguments of every convolution, and of `_residual_units`."""
    conv = dict(causal=causal, norm=norm, pad_mode=pad_mode)
    residual = dict(n=n_residual_layers, kernel_size=residual_kernel_size, dilation_base=dilation_base, compress=compress, true_skip=true_skip)
    return conv, {**residual, **conv}


class SEANetEncoder(nn.Module):
    """Waveform ``(B, channels, T)`` -> latents ``(B, dimension, ceil(T / hop_length))``,
    ``hop_length = prod(ratios)``.

    ``conv_in`` (``kernel_size``, ``n_filters`` channels) -> one `EncoderBlock` per stride of
    ``reversed(ratios)`` (channels doubled each) -> optional `SkipLSTM` (``lstm`` layers) -> ELU ->
    ``conv_out`` (``last_kernel_size``) to ``dimension``. Defaults: EnCodec's.
    """

    def __init__(self, channels: int = 1, dimension: int = 128, n_filters: int = 32, ratios: Sequence[int] = (8, 5, 4, 2),
                 n_residual_layers: int = 1, residual_kernel_size: int = 3, dilation_base: int = 2, compress: int = 2,
                 true_skip: bool = False, lstm: int = 2, kernel_size: int = 7, last_kernel_size: int = 7,
                 norm: Norm = "weight_norm", causal: bool = False, pad_mode: PadMode = "reflect"):  # fmt: skip
        super().__init__()
        self.ratios = tuple(ratios)  # up-sampling order (the decoder's); the encoder runs them reversed
        self.hop_length = math.prod(self.ratios)
        conv, residual = _options(n_residual_layers, residual_kernel_size, dilation_base, compress, true_skip, norm, causal, pad_mode)
        self.conv_in = StreamableConv1d(channels, n_filters, kernel_size, **conv)
        widths = [n_filters * 2**i for i in range(len(self.ratios))]
        self.blocks = nn.ModuleList(
            EncoderBlock(width, stride, _residual_units(width, **residual), **conv) for width, stride in zip(widths, reversed(self.ratios))
        )
        bottleneck = 2 * widths[-1]
        self.lstm = SkipLSTM(bottleneck, lstm) if lstm else nn.Identity()
        self.activation = nn.ELU()
        self.conv_out = StreamableConv1d(bottleneck, dimension, last_kernel_size, **conv)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_in(x)
        for block in self.blocks:
            x = block(x)
        return self.conv_out(self.activation(self.lstm(x)))


class SEANetDecoder(nn.Module):
    """Latents ``(B, dimension, F)`` -> waveform ``(B, channels, F * hop_length)``.

    ``conv_in`` (``kernel_size``) to ``n_filters * 2 ** len(ratios)`` channels -> optional `SkipLSTM` ->
    one `DecoderBlock` per stride of ``ratios`` (channels halved each) -> ELU -> ``conv_out``
    (``last_kernel_size``) to ``channels``; no output activation. Defaults: EnCodec's.
    """

    def __init__(self, channels: int = 1, dimension: int = 128, n_filters: int = 32, ratios: Sequence[int] = (8, 5, 4, 2),
                 n_residual_layers: int = 1, residual_kernel_size: int = 3, dilation_base: int = 2, compress: int = 2,
                 true_skip: bool = False, lstm: int = 2, kernel_size: int = 7, last_kernel_size: int = 7,
                 norm: Norm = "weight_norm", causal: bool = False, pad_mode: PadMode = "reflect"):  # fmt: skip
        super().__init__()
        self.ratios = tuple(ratios)  # up-sampling order
        self.hop_length = math.prod(self.ratios)
        conv, residual = _options(n_residual_layers, residual_kernel_size, dilation_base, compress, true_skip, norm, causal, pad_mode)
        bottleneck = n_filters * 2 ** len(self.ratios)
        self.conv_in = StreamableConv1d(dimension, bottleneck, kernel_size, **conv)
        self.lstm = SkipLSTM(bottleneck, lstm) if lstm else nn.Identity()
        widths = [bottleneck // 2**i for i in range(len(self.ratios))]
        self.blocks = nn.ModuleList(
            DecoderBlock(width, stride, _residual_units(width // 2, **residual), causal=causal, norm=norm)
            for width, stride in zip(widths, self.ratios)
        )
        self.activation = nn.ELU()
        self.conv_out = StreamableConv1d(n_filters, channels, last_kernel_size, **conv)

    def forward(self, z: Tensor) -> Tensor:
        x = self.lstm(self.conv_in(z))
        for block in self.blocks:
            x = block(x)
        return self.conv_out(self.activation(x))

    def last_layer_weight(self) -> Tensor:
        """The output convolution's trainable weight (``v`` when weight-normed)."""
        return _weight(self.conv_out.conv)
