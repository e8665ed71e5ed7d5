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

The released weights are read in the PyTorch form the field uses: ``maskgit-vqgan-imagenet-f16-256.bin``
(Hugging Face ``fun-research/TiTok``), the JAX checkpoint converted by open-muse's
``scripts/convert_maskgit_vqgan.py`` for bytedance/1d-tokenizer's port (``modeling/modules/maskgit_vqgan.py``,
loaded by ``modeling/titok.py``'s ``PretrainedTokenizer`` as TiTok's stage-1 proxy-code teacher and by RAR).
That port is this network layer for layer (its ``Conv2dSame`` pads 3x3 convolutions by 1 on each side, as
``padding=1``; its width-changing blocks keep the shortcut on the output, ``residual = nin_shortcut(h)``;
nearest-code search by squared distance) and it too takes images in [0, 1]: TiTok feeds
``ToTensor()`` images (``scripts/pretokenization.py``; the webdataset reader's default mean 0, std 1), and
``PretrainedTokenizer.decode`` clamps reconstructions to [0, 1]. This tokenizer does not clamp (the
harness's metrics clip the [-1, 1] output themselves). `titok_maskgit_state_dict` renames that
port's keys onto this module tree.
"""

from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..arguments import require_at_least, require_positive
from ..checkpoints import WeightFile
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


_TITOK_RENAMES = (  # the port's names -> ours, level indices fixed up afterwards
    (re.compile(r"^encoder\.down\.(\d+)\.block\.(\d+)\."), r"encoder.levels.\1.\2."),
    (re.compile(r"^(encoder|decoder)\.mid\.(\d+)\."), r"\1.middle.\2."),
    (re.compile(r"^decoder\.up\.(\d+)\.block\.(\d+)\."), r"decoder.up_levels.\1.\2."),
    (re.compile(r"^decoder\.up\.(\d+)\.upsample_conv\."), r"decoder.up_upsamples.\1."),
    (re.compile(r"^quantize\.embedding\.weight$"), "quantizer.codebook"),
    (re.compile(r"^((?:encoder|decoder)\.(?:conv_in|norm_out|conv_out)\.(?:weight|bias))$"), r"\1"),
)
_TITOK_BLOCK_PARTS = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "nin_shortcut": "shortcut"}


def _titok_arch(state: dict[str, Tensor]) -> dict:
    """The factory arguments the port's state dict was built with (read off its key names and shapes)."""
    try:
        filters = state["encoder.conv_in.weight"].shape[0]
        levels = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.down\.(\d+)\.", k)))
        blocks = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k)))
        widths = [state[f"encoder.down.{level}.block.0.conv1.weight"].shape[0] for level in range(levels)]
        codebook_size, embedding_dim = state["quantize.embedding.weight"].shape
    except (KeyError, ValueError) as error:
        raise KeyError(f"not a MaskGIT VQGAN state dict in the TiTok port's names: cannot read its shape ({error!r})") from None
    if any(width % filters for width in widths):
        raise KeyError(f"TiTok port level widths {widths} are not multiples of conv_in's {filters} channels")
    return dict(filters=filters, channel_multipliers=tuple(width // filters for width in widths), num_res_blocks=blocks,
                embedding_dim=embedding_dim, codebook_size=codebook_size)  # fmt: skip


def titok_maskgit_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The state dict of bytedance/1d-tokenizer's ``PretrainedTokenizer`` (``encoder.down.{i}.block.{j}``,
    ``encoder.mid.{j}``, ``decoder.up.{i}`` in their reversed order, ``nin_shortcut``,
    ``quantize.embedding.weight``; the released ``maskgit-vqgan-imagenet-f16-256.bin``) as this module
    tree's. Every key is placed and every shape checked against `maskgit_vqgan` built (on the meta device)
    at the width the file implies; a key with no place, a missing key or a shape that does not fit raises
    ``KeyError`` naming it."""
    arch = _titok_arch(state)
    levels = len(arch["channel_multipliers"])
    mapped, source, unplaced = {}, {}, []
    for key, value in state.items():
        new = None
        for pattern, replacement in _TITOK_RENAMES:
            if pattern.match(key):
                new = pattern.sub(replacement, key)
                break
        if new is not None and re.search(r"\.(levels|up_levels)\.\d+\.\d+\.|\.middle\.\d+\.", new):  # inside a ResBlock
            block = re.match(r"^(.*\.\d+)\.(\w+)\.(weight|bias)$", new)
            if block is None or block.group(2) not in _TITOK_BLOCK_PARTS:
                new = None
            else:
                new = f"{block.group(1)}.{_TITOK_BLOCK_PARTS[block.group(2)]}.{block.group(3)}"
        if new is not None:  # the port keeps decoder.up[i] at level i (run from the last); ours in processing order
            new = re.sub(r"^decoder\.up_levels\.(\d+)\.", lambda m: f"decoder.levels.{levels - 1 - int(m.group(1))}.", new)
            new = re.sub(r"^decoder\.up_upsamples\.(\d+)\.", lambda m: f"decoder.upsamples.{levels - 1 - int(m.group(1))}.", new)
        if new is None:
            unplaced.append(key)
        else:
            mapped[new], source[new] = value, key
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in maskgit_vqgan(**arch).state_dict().items()}
    unplaced += [source[key] for key in mapped if key not in expected]  # a rename onto a module we do not have
    if unplaced:
        raise KeyError(f"TiTok MaskGIT-VQGAN keys with no place in MaskGITVQGAN: {unplaced[:5]}")
    missing = [key for key in expected if key not in mapped]
    if missing:
        raise KeyError(f"TiTok MaskGIT-VQGAN state dict lacks (in our names) {missing[:5]}")
    reshaped = [f"{source[key]} {tuple(mapped[key].shape)} vs {expected[key]}" for key in expected if tuple(mapped[key].shape) != expected[key]]
    if reshaped:
        raise KeyError(f"TiTok MaskGIT-VQGAN keys of another shape (file vs model): {reshaped[:5]}")
    return mapped


TITOK_MASKGIT_VQGAN = WeightFile(
    filename="maskgit-vqgan-imagenet-f16-256.bin",
    url="https://huggingface.co/fun-research/TiTok/resolve/main/maskgit-vqgan-imagenet-f16-256.bin",
    hf_repo="fun-research/TiTok",
    licence="Apache-2.0 (google-research/maskgit's released ImageNet 256 tokenizer; converted and published by bytedance/1d-tokenizer, Apache-2.0)",
    notes="bytedance/1d-tokenizer README_TiTok.md: google-research/maskgit's JAX tokenizer checkpoint converted to PyTorch with "
          "huggingface/open-muse scripts/convert_maskgit_vqgan.py (also on Google Drive 1DjZqzJrUt2hwpmUPkjGSBTFEJcOkLY-Q); torch.save of "
          "PretrainedTokenizer's plain state dict (encoder.*, decoder.*, quantize.embedding.weight), 54,515,587 parameters; "
          "the port takes RGB in [0, 1] (ToTensor, no normalisation) and clamps decoded images to [0, 1]; this tokenizer takes "
          "[-1, 1] and maps it to [0, 1] itself (no clamp)",
)  # fmt: skip


@register_tokenizer(input_shape=(3, 256, 256), pretrained=(TITOK_MASKGIT_VQGAN,), convert=titok_maskgit_state_dict)
def maskgit_vqgan(filters: int = 128, channel_multipliers: tuple[int, ...] = (1, 1, 2, 2, 4), num_res_blocks: int = 2, embedding_dim: int = 256,
                  codebook_size: int = 1024, **quantizer_kwargs) -> MaskGITVQGAN:  # fmt: skip
    """MaskGIT's ImageNet VQGAN: f16, 1024 codes of dim 256 (16x16 tokens at 256x256)."""
    require_positive(filters=filters, channel_multipliers=channel_multipliers, embedding_dim=embedding_dim)
    require_at_least(0, num_res_blocks=num_res_blocks)
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
