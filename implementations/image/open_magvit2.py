"""Open-MAGVIT2's image tokenizer (Luo et al. 2024, "Open-MAGVIT2: An Open-Source Project Toward
Democratizing Auto-regressive Visual Generation", https://arxiv.org/abs/2409.04410), as
TencentARC/SEED-Voken (formerly TencentARC/Open-MAGVIT2) builds its L models
(``src/Open_MAGVIT2/models/lfqgan.py`` ``VQModel``, ``modules/diffusionmodules/improved_model.py``,
``modules/vqvae/lookup_free_quantize.py``; ``configs/Open-MAGVIT2/gpu/imagenet_lfqgan_{256,128}_L.yaml``).

A MAGVIT-v2 style convolutional network without attention: residual blocks (GroupNorm 32, eps 1e-6,
swish, bias-free 3x3 convolutions, a bias-free 1x1 shortcut where the width changes), stride-2 3x3
convolutions between encoder levels, ``num_res_blocks`` middle blocks, GroupNorm, swish and a 1x1
convolution to the 18 latent channels. The decoder mirrors it with ``num_res_blocks`` blocks per
level, each level opened by an adaptive GroupNorm whose scale and shift are linear in the per-channel
standard deviation and mean of the quantized latent over the whole image, and up-sampling by a 3x3
convolution to four times the width and depth-to-space (DCR order). The quantizer is LFQ with 18 bits
(2^18 codes) read least significant bit first, the order of the code the L models were released with.
Inputs in [-1, 1].

`open_magvit2_state_dict` maps a Lightning checkpoint (``state_dict``) onto this module tree: the
module names are the official ones, and where the checkpoint holds the weights' EMA (``LitEma``:
``model_ema.`` + the name without dots) those are taken, as ``evaluation_image.py`` evaluates the
released models (``use_ema: True``) under ``ema_scope``. Training-only entries (``loss.*``, the EMA of
the discriminator, ``model_ema.decay`` / ``num_updates``) are dropped by name; anything else is an
error.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..arguments import require_at_least, require_positive
from ..checkpoints import WeightFile
from ..registry import create_quantizer, register_tokenizer
from .autoencoder import ImageAutoencoderTokenizer


def _norm(channels: int, affine: bool = True) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6, affine=affine)


class ResBlock(nn.Module):
    """``x + conv(swish(norm(conv(swish(norm(x))))))``, bias-free convolutions, 1x1 shortcut on ``x``
    where the width changes."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1, self.norm2 = _norm(in_channels), _norm(out_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1, bias=False) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return h + (x if self.nin_shortcut is None else self.nin_shortcut(x))


class AdaptiveGroupNorm(nn.Module):
    """GroupNorm without affine parameters, then ``gamma(std(z)) * x + beta(mean(z))`` with the
    per-channel statistics of the quantized latent ``z`` ``(B, z_channels, h, w)`` over its positions
    (the variance is torch's default unbiased one, as the official code computes it, plus eps)."""

    def __init__(self, z_channels: int, channels: int, eps: float = 1e-6):
        super().__init__()
        self.gn = _norm(channels, affine=False)
        self.gamma, self.beta = nn.Linear(z_channels, channels), nn.Linear(z_channels, channels)
        self.eps = eps

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        flat = z.flatten(2)  # (B, z_channels, h w)
        scale = self.gamma((flat.var(dim=-1) + self.eps).sqrt())
        shift = self.beta(flat.mean(dim=-1))
        return self.gn(x) * scale[..., None, None] + shift[..., None, None]


def depth_to_space(x: Tensor, block: int) -> Tensor:
    """``(B, block^2 C, H, W) -> (B, C, block H, block W)``, DCR order: input channel
    ``(i block + j) C + c`` goes to output channel ``c`` at offset ``(i, j)`` (torch's pixel_shuffle is
    CRD: ``c block^2 + i block + j``)."""
    b, channels, h, w = x.shape
    c = channels // block**2
    x = x.view(b, block, block, c, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(b, c, h * block, w * block)


class Upsampler(nn.Module):
    """3x3 convolution to ``4 C`` channels, then depth-to-space by 2."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 4 * channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return depth_to_space(self.conv1(x), 2)


def _level(blocks: list[nn.Module], **resample: nn.Module) -> nn.Module:
    level = nn.Module()
    level.block = nn.ModuleList(blocks)
    for name, module in resample.items():
        setattr(level, name, module)
    return level


class Encoder(nn.Module):
    """``(B, 3, H, W) -> (B, z_channels, H/f, W/f)``, ``f = 2 ** (len(ch_mult) - 1)``."""

    def __init__(self, ch: int, ch_mult: tuple[int, ...], num_res_blocks: int, z_channels: int):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1, bias=False)
        widths = [ch] + [ch * m for m in ch_mult]
        self.down = nn.ModuleList()
        for i in range(len(ch_mult)):
            blocks = [ResBlock(widths[i] if j == 0 else widths[i + 1], widths[i + 1]) for j in range(num_res_blocks)]
            last = i == len(ch_mult) - 1
            self.down.append(_level(blocks) if last else _level(blocks, downsample=nn.Conv2d(widths[i + 1], widths[i + 1], 3, stride=2, padding=1)))
        self.mid_block = nn.ModuleList(ResBlock(widths[-1], widths[-1]) for _ in range(num_res_blocks))
        self.norm_out = _norm(widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], z_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for block in level.block:
                h = block(h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        for block in self.mid_block:
            h = block(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """``(B, z_channels, h, w) -> (B, 3, f h, f w)``: the encoder's mirror, each level opened by an
    `AdaptiveGroupNorm` conditioned on the decoder's input ``z``."""

    def __init__(self, ch: int, ch_mult: tuple[int, ...], num_res_blocks: int, z_channels: int):
        super().__init__()
        widths = [ch * m for m in ch_mult]
        self.conv_in = nn.Conv2d(z_channels, widths[-1], 3, padding=1)
        self.mid_block = nn.ModuleList(ResBlock(widths[-1], widths[-1]) for _ in range(num_res_blocks))
        adaptive, levels, incoming = [], [], widths[-1]
        for i in reversed(range(len(ch_mult))):
            adaptive.insert(0, AdaptiveGroupNorm(z_channels, incoming))
            blocks = [ResBlock(incoming if j == 0 else widths[i], widths[i]) for j in range(num_res_blocks)]
            levels.insert(0, _level(blocks, upsample=Upsampler(widths[i])) if i > 0 else _level(blocks))
            incoming = widths[i]
        self.up, self.adaptive = nn.ModuleList(levels), nn.ModuleList(adaptive)
        self.norm_out = _norm(widths[0])
        self.conv_out = nn.Conv2d(widths[0], 3, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        h = self.conv_in(z)
        for block in self.mid_block:
            h = block(h)
        for level, norm in zip(reversed(self.up), reversed(self.adaptive)):
            h = norm(h, z)
            for block in level.block:
                h = block(h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class OpenMAGVIT2(ImageAutoencoderTokenizer):
    family = "Open-MAGVIT2"
    paper = "Luo et al. 2024, https://arxiv.org/abs/2409.04410"


# imagenet_lfqgan_{256,128}_L.yaml: ddconfig (ch 128, 4 blocks, z_channels 18 = embed_dim, n_embed 2^18)
_L = dict(ch=128, num_res_blocks=4, z_channels=18)
# Open-MAGVIT2's LFQ and loss weights (lossconfig codebook_weight 0.1, commit_weight 0.25, sample_minimization_weight
# and batch_maximization_weight 1.0, entropy temperature 0.01); the codebook entropy over all 2^18 codes, exactly
_LFQ = dict(entropy_weight=0.1, commitment_weight=0.25, diversity_gamma=1.0, inv_temperature=100.0, bit_order="lsb_first")


def build_open_magvit2(*, ch: int, ch_mult: tuple[int, ...], num_res_blocks: int, z_channels: int, **quantizer_kwargs) -> OpenMAGVIT2:
    """An Open-MAGVIT2 tokenizer with the official ``ddconfig`` arguments and LFQ over ``z_channels``
    bits (``2 ** z_channels`` codes); ``quantizer_kwargs`` override the LFQ's options."""
    require_positive(ch=ch, ch_mult=ch_mult, z_channels=z_channels)
    require_at_least(0, num_res_blocks=num_res_blocks)
    encoder = Encoder(ch, tuple(ch_mult), num_res_blocks, z_channels)
    decoder = Decoder(ch, tuple(ch_mult), num_res_blocks, z_channels)
    lfq = {**_LFQ, "entropy_group_bits": z_channels, **quantizer_kwargs}
    quantizer = create_quantizer("lfq", dim=z_channels, codebook_size=2**z_channels, **lfq)
    return OpenMAGVIT2(encoder, quantizer, decoder, downsample_factor=2 ** (len(ch_mult) - 1))


_TRAINING_ONLY = ("loss.", "model_ema.loss", "model_ema.decay", "model_ema.num_updates")  # discriminator (and its EMA), EMA state


def open_magvit2_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official ``VQModel`` keys -> ours, the EMA weights where the checkpoint has them; raises
    ``KeyError`` naming any key it cannot place."""
    ema = {key.removeprefix("model_ema."): value for key, value in state.items() if key.startswith("model_ema.") and not key.startswith(_TRAINING_ONLY)}
    mapped, unplaced = {}, []
    for key, value in state.items():
        if key.startswith(_TRAINING_ONLY) or key.startswith("model_ema."):
            continue
        if key.startswith(("encoder.", "decoder.")):
            mapped[key] = ema.pop(key.replace(".", ""), value)
        else:
            unplaced.append(key)
    unplaced += [f"model_ema.{key}" for key in ema]  # an EMA entry of no known weight
    if unplaced:
        raise KeyError(f"Open-MAGVIT2 checkpoint keys with no place in OpenMAGVIT2: {unplaced[:5]}")
    return mapped


def _release(resolution: int) -> WeightFile:
    return WeightFile(
        filename=f"imagenet_{resolution}_L.ckpt", hf_repo=f"TencentARC/Open-MAGVIT2-Tokenizer-{resolution}-resolution",
        url=f"https://huggingface.co/TencentARC/Open-MAGVIT2-Tokenizer-{resolution}-resolution/resolve/main/imagenet_{resolution}_L.ckpt",
        licence="Apache 2.0 (TencentARC/SEED-Voken's LICENSE; the Hugging Face model card's licence was not checked here)",
        notes=f"SEED-Voken docs/Open-MAGVIT2.md's IN{resolution}_Large (ImageNet, trained at {resolution}x{resolution}); Lightning "
              "checkpoint, weights under 'state_dict' with their EMA under 'model_ema.*' (used); inputs RGB in [-1, 1]",
    )  # fmt: skip


@register_tokenizer(input_shape=(3, 256, 256), pretrained=(_release(256),), convert=open_magvit2_state_dict)
def open_magvit2_256(**overrides) -> OpenMAGVIT2:
    """Open-MAGVIT2 IN256_Large: f16 (levels 1,1,2,2,4), 2^18 LFQ codes (16x16 tokens at 256x256)."""
    return build_open_magvit2(**{**_L, "ch_mult": (1, 1, 2, 2, 4), **overrides})


@register_tokenizer(input_shape=(3, 128, 128), pretrained=(_release(128),), convert=open_magvit2_state_dict)
def open_magvit2_128(**overrides) -> OpenMAGVIT2:
    """Open-MAGVIT2 IN128_Large: f8 (levels 1,2,2,4), 2^18 LFQ codes (16x16 tokens at 128x128)."""
    return build_open_magvit2(**{**_L, "ch_mult": (1, 2, 2, 4), **overrides})


@register_tokenizer(input_shape=(3, 32, 32), convert=open_magvit2_state_dict)
def open_magvit2_tiny(**overrides) -> OpenMAGVIT2:
    """Open-MAGVIT2's architecture at CPU size: width 32, levels 1,2,2 (f4), one block per level,
    2^12 LFQ codes (8x8 tokens at 32x32)."""
    return build_open_magvit2(**{"ch": 32, "ch_mult": (1, 2, 2), "num_res_blocks": 1, "z_channels": 12, **overrides})
