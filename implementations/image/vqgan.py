"""VQGAN (Esser et al. 2021, "Taming Transformers for High-Resolution Image Synthesis",
https://arxiv.org/abs/2012.09841) as taming-transformers builds it (``taming/models/vqgan.py``,
``VQModel``): the convolutional `Encoder`, a 1x1 convolution to the code dimension, vector
quantization, a 1x1 convolution back and the `Decoder`.

The released ImageNet models quantize with taming's ``VectorQuantizer``, whose loss puts beta on
the codebook term instead of the commitment term (``legacy_beta=True`` here, recorded with the
quantizer), beta 0.25, Euclidean nearest codes, no EMA. Their inputs are RGB in [-1, 1].

taming's Gumbel VQGAN (``GumbelVQ``, the released ``vqgan_gumbel_f8``: OpenImages, f8, 8192 codes of
dim 256) keeps the network and swaps the quantizer for ``GumbelQuantize``: a 1x1 convolution
(``proj``, our linear ``to_logits``) gives logits over the codes, training draws a straight-through
hard Gumbel-softmax sample (``straight_through=True``) whose one-hot picks the code vector, and the
loss is ``kl_weight`` (1e-8) times the KL of ``softmax(logits)`` to the uniform prior: the shared
`GumbelQuantizer` with ``hard=True``. Its temperature follows a cosine from 0.9 to 1e-6 over
1,000,001 steps in taming's training loop (not part of the model). taming also draws Gumbel noise in
eval (a hard sample at the current temperature); here eval codes are the argmax of the logits, the
noiseless mode. Without ``remap`` (unused by the release) codes index all 8192 entries.

`taming_state_dict` maps a taming checkpoint's ``state_dict`` onto this module tree: every key is
accounted for (the loss module's discriminator and LPIPS entries, ``loss.*``, are training-only and
dropped by name), and loading is strict, so any missing or mis-shaped tensor is an error.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..arguments import require_at_least, require_positive
from ..modules.taming_autoencoder import Decoder, Encoder
from ..checkpoints import WeightFile
from ..registry import create_quantizer, register_tokenizer
from .autoencoder import ImageAutoencoderTokenizer


class VQGAN(ImageAutoencoderTokenizer):
    family = "VQGAN"
    paper = "Esser et al. 2021, https://arxiv.org/abs/2012.09841"


# taming's configs/imagenet_vqgan.yaml (f16): ddconfig of the released ImageNet models.
IMAGENET_F16 = dict(ch=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2, attn_resolutions=(16,), resolution=256, z_channels=256)


def build_vqgan(*, ch: int, ch_mult: tuple[int, ...], num_res_blocks: int, attn_resolutions: tuple[int, ...], resolution: int, z_channels: int,
                embed_dim: int, codebook_size: int, dropout: float = 0.0, family: type[VQGAN] = VQGAN, quantizer: str = "vq",
                **quantizer_kwargs) -> VQGAN:  # fmt: skip
    """A VQGAN with taming's architecture arguments (``ddconfig``), ``embed_dim`` / ``codebook_size``
    (``n_embed``), a registered ``quantizer`` and its options (default: ``vq`` with taming's legacy VQ
    loss, beta 0.25); ``family`` is the `VQGAN` subclass that names the paper in records."""
    require_positive(ch=ch, ch_mult=ch_mult, resolution=resolution, z_channels=z_channels, embed_dim=embed_dim)
    require_at_least(0, num_res_blocks=num_res_blocks)
    arch = dict(ch=ch, ch_mult=tuple(ch_mult), num_res_blocks=num_res_blocks, attn_resolutions=tuple(attn_resolutions), resolution=resolution,
                z_channels=z_channels, dropout=dropout)  # fmt: skip
    encoder = nn.Sequential(Encoder(in_channels=3, **arch), nn.Conv2d(z_channels, embed_dim, 1))
    decoder = nn.Sequential(nn.Conv2d(embed_dim, z_channels, 1), Decoder(out_channels=3, **arch))
    defaults = {"beta": 0.25, "legacy_beta": True} if quantizer == "vq" else {}
    quantize = create_quantizer(quantizer, dim=embed_dim, codebook_size=codebook_size, **{**defaults, **quantizer_kwargs})
    return family(encoder, quantize, decoder, downsample_factor=2 ** (len(ch_mult) - 1))


_TAMING_PREFIXES = {"encoder.": "encoder.0.", "quant_conv.": "encoder.1.", "post_quant_conv.": "decoder.0.", "decoder.": "decoder.1."}
_TRAINING_ONLY = ("loss.",)  # VQLPIPSWithDiscriminator: discriminator and LPIPS weights
_QUANTIZER_KEYS = {  # taming key -> (ours, its reshaping)
    "quantize.embedding.weight": ("quantizer.codebook", lambda v: v),  # VectorQuantizer (K, D)
    "quantize.embed.weight": ("quantizer.codebook", lambda v: v[None]),  # GumbelQuantize (K, D) -> one group (1, K, D)
    "quantize.proj.weight": ("quantizer.to_logits.weight", lambda v: v.flatten(1)),  # GumbelQuantize's 1x1 conv (K, D, 1, 1) -> linear
    "quantize.proj.bias": ("quantizer.to_logits.bias", lambda v: v),
}


def taming_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """taming ``VQModel`` / ``GumbelVQ`` keys -> ours; raises ``KeyError`` naming any key it cannot place."""
    mapped, unplaced = {}, []
    for key, value in state.items():
        if key.startswith(_TRAINING_ONLY):
            continue
        if key in _QUANTIZER_KEYS:
            ours, reshape = _QUANTIZER_KEYS[key]
            mapped[ours] = reshape(value)
            continue
        prefix = next((p for p in _TAMING_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            unplaced.append(key)
        else:
            mapped[_TAMING_PREFIXES[prefix] + key[len(prefix) :]] = value
    if unplaced:
        raise KeyError(f"taming checkpoint keys with no place in VQGAN: {unplaced[:5]}")
    return mapped


def taming_release(name: str, heibox_id: str) -> WeightFile:
    """A checkpoint of taming's README, kept under its model name (taming publishes every one as last.ckpt)."""
    return WeightFile(
        filename=f"{name}.ckpt", url=f"https://heibox.uni-heidelberg.de/f/{heibox_id}/?dl=1", licence="MIT (CompVis/taming-transformers)",
        notes=f"taming README's {name}, published as last.ckpt (no sha256 published; the record keeps the file's); "
              "Lightning checkpoint, weights under 'state_dict'; inputs RGB in [-1, 1]",
    )  # fmt: skip


@register_tokenizer(input_shape=(3, 256, 256), pretrained=(taming_release("vqgan_imagenet_f16_1024", "140747ba53464f49b476"),), convert=taming_state_dict)
def vqgan_taming_f16_1024(**overrides) -> VQGAN:
    """taming's ImageNet VQGAN, f16, 1024 codes of dim 256 (16x16 tokens at 256x256)."""
    return build_vqgan(**{**IMAGENET_F16, "embed_dim": 256, "codebook_size": 1024, **overrides})


@register_tokenizer(input_shape=(3, 256, 256), pretrained=(taming_release("vqgan_imagenet_f16_16384", "867b05fc8c4841768640"),), convert=taming_state_dict)
def vqgan_taming_f16_16384(**overrides) -> VQGAN:
    """taming's ImageNet VQGAN, f16, 16384 codes of dim 256."""
    return build_vqgan(**{**IMAGENET_F16, "embed_dim": 256, "codebook_size": 16384, **overrides})


# The released vqgan_gumbel_f8's configs/model.yaml: ddconfig, GumbelVQ(kl_weight=1e-8, embed_dim=256, n_embed=8192).
OPENIMAGES_GUMBEL_F8 = dict(ch=128, ch_mult=(1, 1, 2, 4), num_res_blocks=2, attn_resolutions=(32,), resolution=256, z_channels=256)


@register_tokenizer(input_shape=(3, 256, 256), pretrained=(taming_release("vqgan_gumbel_f8", "34a747d5765840b5a99d"),), convert=taming_state_dict)
def vqgan_taming_gumbel_f8_8192(**overrides) -> VQGAN:
    """taming's Gumbel VQGAN (OpenImages), f8, 8192 codes of dim 256 (32x32 tokens at 256x256):
    straight-through Gumbel-softmax, KL weight 1e-8, temperature 0.9 (the schedule's first value)."""
    gumbel = dict(quantizer="gumbel", hard=True, kl_weight=1e-8, temperature=0.9)
    return build_vqgan(**{**OPENIMAGES_GUMBEL_F8, "embed_dim": 256, "codebook_size": 8192, **gumbel, **overrides})


@register_tokenizer(input_shape=(3, 32, 32), convert=taming_state_dict)
def vqgan_taming_tiny(**overrides) -> VQGAN:
    """taming's architecture at CPU size: width 32, levels 1,2,2 (f4), one block per level, attention
    at 8x8, 512 codes of dim 32 (the built-in suite's 32x32 crops give 8x8 tokens)."""
    tiny = dict(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,), resolution=32, z_channels=32, embed_dim=32, codebook_size=512)
    return build_vqgan(**{**tiny, **overrides})
