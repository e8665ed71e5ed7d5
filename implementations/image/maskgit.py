"""MaskGIT's VQGAN tokenizer (Chang et al. 2022, "MaskGIT: Masked Generative Image Transformer",
https://arxiv.org/abs/2202.04200), after the official JAX code (google-research/maskgit,
``maskgit/nets/vqgan_tokenizer.py``: ``Encoder``, ``Decoder``, ``ResBlock``, ``VectorQuantizer``;
defaults of ``maskgit/configs/vqgan_config.py``).

VQGAN without attention: per level ``num_res_blocks`` residual blocks (GroupNorm 32, eps 1e-6, swish,
3x3 convolutions without bias), 2x2 average pooling between levels (encoder) or nearest upsampling
and a 3x3 convolution (decoder), ``num_res_blocks`` more blocks at the lowest resolution, GroupNorm,
swish and an output convolution; 1024 codes of dimension 256, Euclidean nearest codes. Two details
of the official code are kept as it runs them: where a block changes its width, the 1x1 "shortcut"
is applied to the block's output, not to its input (``residual = conv(x)`` after ``x`` was
overwritten), so the block returns ``h + W h``; and the network works on images in [0, 1], so this
tokenizer maps the protocol's [-1, 1] inputs to [0, 1] and its outputs back.

`maskgit_flax_state_dict` maps the Flax parameter tree of ``VQVAE`` (``params['encoder']``, ...)
onto this module tree, transposing kernels; every parameter is placed and every shape checked.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import create_quantizer, register_tokenizer
from .autoencoder import ImageAutoencoderTokenizer


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6)


class ResBlock(nn.Module):
    """``h = conv(swish(norm(conv(swish(norm(x))))))``; ``x + h`` at equal widths, else ``h + W h``
    (the official code's shortcut on the output)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(in_channels), nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm2, self.conv2 = _norm(out_channels), nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.shortcut = nn.Conv2d(out_channels, out_channels, 1, bias=False) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return h + (x if self.shortcut is None else self.shortcut(h))


def _blocks(widths: list[tuple[int, int]]) -> list[ResBlock]:
    return [ResBlock(a, b) for a, b in widths]


class Encoder(nn.Module):
    """``(B, 3, H, W)`` in [0, 1] -> ``(B, embedding_dim, H/f, W/f)``, ``f = 2 ** (len(channel_multipliers) - 1)``."""

    def __init__(self, filters: int, channel_multipliers: tuple[int, ...], num_res_blocks: int, embedding_dim: int):
        super().__init__()
        self.conv_in = nn.Conv2d(3, filters, 3, padding=1, bias=False)
        widths, levels, width = [], [], filters
        for multiplier in channel_multipliers:
            level = []
            for _ in range(num_res_blocks):
                level.append((width, filters * multiplier))
                width = filters * multiplier
            levels.append(nn.Sequential(*_blocks(level)))
            widths += level
        self.levels = nn.ModuleList(levels)
        self.middle = nn.Sequential(*_blocks([(width, width)] * num_res_blocks))
        self.norm_out, self.conv_out = _norm(width), nn.Conv2d(width, embedding_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for index, level in enumerate(self.levels):
            h = level(h)
            if index < len(self.levels) - 1:
                h = F.avg_pool2d(h, 2)
        return self.conv_out(F.silu(self.norm_out(self.middle(h))))


class Decoder(nn.Module):
    """``(B, embedding_dim, h, w) -> (B, 3, f h, f w)`` (in about [0, 1])."""

    def __init__(self, filters: int, channel_multipliers: tuple[int, ...], num_res_blocks: int, embedding_dim: int):
        super().__init__()
        width = filters * channel_multipliers[-1]
        self.conv_in = nn.Conv2d(embedding_dim, width, 3, padding=1)
        self.middle = nn.Sequential(*_blocks([(width, width)] * num_res_blocks))
        levels, upsamples = [], []
        for index in reversed(range(len(channel_multipliers))):
            target = filters * channel_multipliers[index]
            levels.append(nn.Sequential(*_blocks([(width, target)] + [(target, target)] * (num_res_blocks - 1))))
            width = target
            if index > 0:
                upsamples.append(nn.Conv2d(width, width, 3, padding=1))
        self.levels, self.upsamples = nn.ModuleList(levels), nn.ModuleList(upsamples)
        self.norm_out, self.conv_out = _norm(width), nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.middle(self.conv_in(z))
        for index, level in enumerate(self.levels):
            h = level(h)
            if index < len(self.upsamples):
                h = self.upsamples[index](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


class MaskGITVQGAN(ImageAutoencoderTokenizer):
    family = "MaskGIT VQGAN"
    paper = "Chang et al. 2022, https://arxiv.org/abs/2202.04200"

    def quantize(self, x: Tensor):
        return super().quantize((x + 1) / 2)  # the network's inputs are in [0, 1]

    def decode_embeddings(self, quantized: Tensor) -> Tensor:
        return super().decode_embeddings(quantized) * 2 - 1


@register_tokenizer(input_shape=(3, 256, 256))
def maskgit_vqgan(filters: int = 128, channel_multipliers: tuple[int, ...] = (1, 1, 2, 2, 4), num_res_blocks: int = 2, embedding_dim: int = 256,
                  codebook_size: int = 1024, **quantizer_kwargs) -> MaskGITVQGAN:  # fmt: skip
    """MaskGIT's ImageNet VQGAN: f16, 1024 codes of dim 256 (16x16 tokens at 256x256)."""
    arch = dict(filters=filters, channel_multipliers=tuple(channel_multipliers), num_res_blocks=num_res_blocks, embedding_dim=embedding_dim)
    quantizer = create_quantizer("vq", dim=embedding_dim, codebook_size=codebook_size, **{"beta": 0.25, **quantizer_kwargs})
    return MaskGITVQGAN(Encoder(**arch), quantizer, Decoder(**arch), downsample_factor=2 ** (len(channel_multipliers) - 1))


def _conv(params: dict, prefix: str) -> dict[str, Tensor]:
    out = {f"{prefix}.weight": torch.from_numpy(np.asarray(params["kernel"])).permute(3, 2, 0, 1).contiguous()}  # HWIO -> OIHW
    if "bias" in params:
        out[f"{prefix}.bias"] = torch.from_numpy(np.asarray(params["bias"]))
    return out


def _group_norm(params: dict, prefix: str) -> dict[str, Tensor]:
    return {f"{prefix}.weight": torch.from_numpy(np.asarray(params["scale"])), f"{prefix}.bias": torch.from_numpy(np.asarray(params["bias"]))}


def _res_block(params: dict, prefix: str) -> dict[str, Tensor]:
    out = {**_group_norm(params["GroupNorm_0"], f"{prefix}.norm1"), **_conv(params["Conv_0"], f"{prefix}.conv1"),
           **_group_norm(params["GroupNorm_1"], f"{prefix}.norm2"), **_conv(params["Conv_1"], f"{prefix}.conv2")}  # fmt: skip
    if "Conv_2" in params:
        out.update(_conv(params["Conv_2"], f"{prefix}.shortcut"))
    return out


def maskgit_flax_state_dict(params: dict, num_res_blocks: int, num_levels: int) -> dict[str, Tensor]:
    """The Flax parameters of MaskGIT's ``VQVAE`` (``{'encoder': ..., 'decoder': ..., 'quantizer':
    {'codebook'}}``) as this module tree's state dict, in the order the official code creates them."""
    encoder, decoder = params["encoder"], params["decoder"]
    state = {**_conv(encoder["Conv_0"], "encoder.conv_in"), "quantizer.codebook": torch.from_numpy(np.asarray(params["quantizer"]["codebook"]))}
    block = 0
    for level in range(num_levels):
        for index in range(num_res_blocks):
            state.update(_res_block(encoder[f"ResBlock_{block}"], f"encoder.levels.{level}.{index}"))
            block += 1
    for index in range(num_res_blocks):
        state.update(_res_block(encoder[f"ResBlock_{block}"], f"encoder.middle.{index}"))
        block += 1
    state.update({**_group_norm(encoder["GroupNorm_0"], "encoder.norm_out"), **_conv(encoder["Conv_1"], "encoder.conv_out")})
    state.update(_conv(decoder["Conv_0"], "decoder.conv_in"))
    for index in range(num_res_blocks):
        state.update(_res_block(decoder[f"ResBlock_{index}"], f"decoder.middle.{index}"))
    block = num_res_blocks
    for level in range(num_levels):
        for index in range(num_res_blocks):
            state.update(_res_block(decoder[f"ResBlock_{block}"], f"decoder.levels.{level}.{index}"))
            block += 1
        if level < num_levels - 1:
            state.update(_conv(decoder[f"Conv_{level + 1}"], f"decoder.upsamples.{level}"))
    state.update({**_group_norm(decoder["GroupNorm_0"], "decoder.norm_out"), **_conv(decoder[f"Conv_{num_levels}"], "decoder.conv_out")})
    return state
