"""The convolutional encoder and decoder of VQGAN (Esser et al. 2021, "Taming Transformers for
High-Resolution Image Synthesis", https://arxiv.org/abs/2012.09841), after taming-transformers'
``taming/modules/diffusionmodules/model.py`` (``Encoder``, ``Decoder``, ``ResnetBlock``,
``AttnBlock``; itself derived from DDPM's U-Net, Ho et al. 2020), without the time embedding.

Per resolution level ``i`` (channels ``ch * ch_mult[i]``): ``num_res_blocks`` residual blocks
(GroupNorm 32 groups, eps 1e-6, swish, 3x3 convolutions, a 1x1 shortcut when the width changes),
each followed by single-head self-attention at the resolutions listed in ``attn_resolutions``;
between levels a stride-2 3x3 convolution after zero padding right and bottom (encoder) or
nearest-neighbour upsampling and a 3x3 convolution (decoder, ``num_res_blocks + 1`` blocks per
level). A middle of block, attention, block; then GroupNorm, swish and a 3x3 output convolution.
The module tree and parameter names are taming's, so its checkpoints' ``encoder.*`` and
``decoder.*`` entries load unchanged. Downsampling factor ``2 ** (len(ch_mult) - 1)``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """``x + conv(swish(norm(conv(swish(norm(x))))))`` with a 1x1 shortcut when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = _norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        h = F.silu(self.norm2(self.conv1(F.silu(self.norm1(x)))))  # conv1's output is freed before conv2 runs
        h = self.conv2(self.dropout(h))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the ``H W`` positions, 1x1 convolutions for q, k, v, output."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _norm(channels)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(channels, channels, 1) for _ in range(4))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        normed = self.norm(x)
        q, k, v = (layer(normed).reshape(b, c, h * w).transpose(1, 2) for layer in (self.q, self.k, self.v))
        attended = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(c)) v
        return x + self.proj_out(attended.transpose(1, 2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _level(blocks: list[nn.Module], attention: list[nn.Module]) -> nn.Module:
    level = nn.Module()
    level.block, level.attn = nn.ModuleList(blocks), nn.ModuleList(attention)
    return level


def _through_level(level: nn.Module, h: Tensor) -> Tensor:
    """A level's residual blocks, each followed by its attention block when the level has them."""
    for index, block in enumerate(level.block):
        h = block(h)
        if len(level.attn):
            h = level.attn[index](h)
    return h


def _middle(channels: int, dropout: float) -> nn.Module:
    middle = nn.Module()
    middle.block_1, middle.attn_1, middle.block_2 = ResnetBlock(channels, channels, dropout), AttnBlock(channels), ResnetBlock(channels, channels, dropout)
    return middle


class Encoder(nn.Module):
    """``(B, in_channels, H, W) -> (B, z_channels, H/f, W/f)`` with ``f = 2 ** (len(ch_mult) - 1)``;
    ``resolution`` (the training input size) decides where ``attn_resolutions`` apply."""

    def __init__(self, ch: int, ch_mult: tuple[int, ...], num_res_blocks: int, attn_resolutions: tuple[int, ...], in_channels: int,
                 resolution: int, z_channels: int, dropout: float = 0.0):  # fmt: skip
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        widths = [ch] + [ch * m for m in ch_mult]
        self.down = nn.ModuleList()
        current = resolution
        for i in range(len(ch_mult)):
            blocks = [ResnetBlock(widths[i] if j == 0 else widths[i + 1], widths[i + 1], dropout) for j in range(num_res_blocks)]
            attention = [AttnBlock(widths[i + 1]) for _ in range(num_res_blocks)] if current in attn_resolutions else []
            level = _level(blocks, attention)
            if i != len(ch_mult) - 1:
                level.downsample = Downsample(widths[i + 1])
                current //= 2
            self.down.append(level)
        self.mid = _middle(widths[-1], dropout)
        self.norm_out = _norm(widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], z_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = _through_level(level, h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """``(B, z_channels, h, w) -> (B, out_channels, f h, f w)``, the encoder's mirror."""

    def __init__(self, ch: int, ch_mult: tuple[int, ...], num_res_blocks: int, attn_resolutions: tuple[int, ...], out_channels: int,
                 resolution: int, z_channels: int, dropout: float = 0.0):  # fmt: skip
        super().__init__()
        widths = [ch * m for m in ch_mult]
        current = resolution // 2 ** (len(ch_mult) - 1)
        self.conv_in = nn.Conv2d(z_channels, widths[-1], 3, padding=1)
        self.mid = _middle(widths[-1], dropout)
        levels: list[nn.Module] = []
        incoming = widths[-1]
        for i in reversed(range(len(ch_mult))):
            blocks = [ResnetBlock(incoming if j == 0 else widths[i], widths[i], dropout) for j in range(num_res_blocks + 1)]
            attention = [AttnBlock(widths[i]) for _ in range(num_res_blocks + 1)] if current in attn_resolutions else []
            level = _level(blocks, attention)
            if i != 0:
                level.upsample = Upsample(widths[i])
                current *= 2
            levels.insert(0, level)
            incoming = widths[i]
        self.up = nn.ModuleList(levels)
        self.norm_out = _norm(widths[0])
        self.conv_out = nn.Conv2d(widths[0], out_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        for level in reversed(self.up):
            h = _through_level(level, h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))
