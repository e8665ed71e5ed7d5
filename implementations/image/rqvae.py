"""RQ-VAE (Lee et al. 2022, "Autoregressive Image Generation using Residual Quantization",
https://arxiv.org/abs/2203.01941) as kakaobrain/rq-vae-transformer builds it (``rqvae/models/rqvae/``:
``rqvae.py`` ``RQVAE``, ``modules.py`` / ``layers.py`` ``Encoder`` / ``Decoder``, ``quantizations.py``
``RQBottleneck`` / ``VQEmbedding``; ``configs/imagenet256/stage1/in256-rqvae-8x8x4.yaml``).

The network is taming's VQGAN encoder/decoder, unchanged (same blocks, GroupNorm 32, swish,
single-head attention; the official ``modules.py`` is "borrowed and modified from" taming and only adds
gradient checkpointing), six levels ``ch_mult (1, 1, 2, 2, 4, 4)`` (f32) with attention at 8x8, and
1x1 convolutions to and from the 256-dimensional code space. At 256x256 an image is ``8 x 8 x 4``
codes: residual quantization of depth 4 over ONE codebook of 16384 codes shared by every level
(``shared_codebook: true``), i.e. the shared `ResidualQuantizer` over one shared `VectorQuantizer`:

* nearest codes by Euclidean distance; the codebook is learnt by EMA only (decay 0.99, Laplace
  smoothing eps 1e-5, the same formulas as ``VQEmbedding``), and since the codebook is shared each
  level applies its EMA step in turn, the next level searching the updated codebook, as the official
  loop does;
* unused codes are restarted (``restart_unused_codes: true``): a code whose EMA cluster size is
  below 1 gets a random vector of the batch (at that level) and cluster size 1. Differences from the
  official ``_update_buffers``: it restarts after the level's EMA step, ours before the level's
  search (same rule and state, the vectors drawn one step apart); when the batch has fewer vectors
  than codes it tiles them with uniform noise of scale ``0.01 / sqrt(dim)``, ours draws with
  replacement and without noise; its codebook starts as ``nn.Embedding``'s N(0, 1), ours as
  U(-1/K, 1/K) (the first training step restarts nearly every code either way);
* gradients as ``RQBottleneck`` runs them (``partial_sum_commitment``): the commitment term of level
  ``l`` is ``||z - sg[Q_l]||^2`` with ``Q_l`` the partial sum of the codes (RQ-VAE eq. 7), and the
  output is ``z + sg[Q_4 - z]``. The quantizer loss is ``beta = 0.25`` times the SUM over levels;
  the official loss is ``latent_loss_weight 0.25`` times their MEAN, hence the recipe's
  ``quantizer_weight`` of 1/4 (``bench/conf/recipe/rqvae.yaml``).

`rqvae_state_dict` maps the official ``state_dict`` onto this module tree: taming's names for the
network (`taming_state_dict`), and ``quantizer.codebooks.{i}``: ``weight`` (``n_embed + 1`` rows, the
last a padding row no search or decoding uses, dropped), ``cluster_size_ema``, ``embed_ema``. A
shared codebook appears under every ``i`` (``state_dict`` repeats a shared module); entries equal to
``codebooks.0`` are dropped, any others would map to their own level.

Parameter counts: the official model holds the codebook as an ``nn.Embedding`` weight with
``requires_grad=False`` (counted by ``parameters()``, 16385 x 256), ours as a buffer (16384 x 256);
the trainable parameters are the same, 100,207,491 (official total 104,402,051).
"""

from __future__ import annotations

import re

from torch import Tensor, nn

from ..arguments import require_at_least, require_positive
from ..checkpoints import WeightFile
from ..modules.taming_autoencoder import Decoder, Encoder
from ..quantizers.residual import ResidualQuantizer
from ..registry import create_quantizer, register_tokenizer
from .autoencoder import ImageAutoencoderTokenizer
from .vqgan import taming_state_dict


class RQVAE(ImageAutoencoderTokenizer):
    family = "RQ-VAE"
    paper = "Lee et al. 2022, https://arxiv.org/abs/2203.01941"


# configs/imagenet256/stage1/in256-rqvae-8x8x4.yaml: ddconfig and hparams of the released ImageNet model
IMAGENET_8X8X4 = dict(ch=128, ch_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2, attn_resolutions=(8,), resolution=256, z_channels=256,
                      embed_dim=256, codebook_size=16384, depth=4)  # fmt: skip
# VQEmbedding / RQBottleneck as the config builds them: EMA decay 0.99, eps 1e-5, restarts below usage 1
_CODEBOOK = dict(beta=0.25, ema_decay=0.99, ema_epsilon=1e-5, dead_code_threshold=1.0)


def build_rqvae(*, ch: int, ch_mult: tuple[int, ...], num_res_blocks: int, attn_resolutions: tuple[int, ...], resolution: int, z_channels: int,
                embed_dim: int, codebook_size: int, depth: int, dropout: float = 0.0, **codebook_kwargs) -> RQVAE:  # fmt: skip
    """An RQ-VAE with the official ``ddconfig`` arguments, ``embed_dim``, ``codebook_size`` (``n_embed``)
    and ``depth`` (``code_shape[-1]``); ``codebook_kwargs`` override the shared codebook's options."""
    require_positive(ch=ch, ch_mult=ch_mult, resolution=resolution, z_channels=z_channels, embed_dim=embed_dim, depth=depth)
    require_at_least(0, num_res_blocks=num_res_blocks)
    arch = dict(ch=ch, ch_mult=tuple(ch_mult), num_res_blocks=num_res_blocks, attn_resolutions=tuple(attn_resolutions), resolution=resolution,
                z_channels=z_channels, dropout=dropout)  # fmt: skip
    encoder = nn.Sequential(Encoder(in_channels=3, **arch), nn.Conv2d(z_channels, embed_dim, 1))
    decoder = nn.Sequential(nn.Conv2d(embed_dim, z_channels, 1), Decoder(out_channels=3, **arch))
    codebook = create_quantizer("vq", dim=embed_dim, codebook_size=codebook_size, **{**_CODEBOOK, **codebook_kwargs})
    quantizer = ResidualQuantizer.from_quantizers(codebook, depth=depth, partial_sum_commitment=True)
    return RQVAE(encoder, quantizer, decoder, downsample_factor=2 ** (len(ch_mult) - 1))


_CODEBOOK_ENTRY = re.compile(r"quantizer\.codebooks\.(\d+)\.(weight|cluster_size_ema|embed_ema)")
_OURS = {"weight": "codebook", "cluster_size_ema": "ema_cluster_size", "embed_ema": "ema_sum"}
_NETWORK = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")  # taming's names


def rqvae_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official ``RQVAE`` keys -> ours; raises ``KeyError`` naming any key it cannot place."""
    network, mapped = {}, {}
    for key, value in state.items():
        match = _CODEBOOK_ENTRY.fullmatch(key)
        if match is None:
            network[key] = value
            continue
        level, name = int(match.group(1)), match.group(2)
        value = value[:-1] if name == "weight" else value  # the padding row (padding_idx = n_embed)
        first = state.get(f"quantizer.codebooks.0.{name}")
        if level > 0 and first is not None and first.shape == state[key].shape and first.equal(state[key]):
            continue  # the shared codebook, repeated under every level
        mapped[f"quantizer.levels.{level}.{_OURS[name]}"] = value
    unplaced = [key for key in network if not key.startswith(_NETWORK)]
    if unplaced:
        raise KeyError(f"RQ-VAE checkpoint keys with no place in RQVAE: {unplaced[:5]}")
    return {**taming_state_dict(network), **mapped}


# rq-vae-transformer README, "ImageNet (cIN) ... imagenet_1.4B_rqvae_50e": a tar.gz holding stage1/model.pt
_IMAGENET_50E = WeightFile(
    filename="rqvae_imagenet_1.4B_rqvae_50e.pt",
    url="https://twg.kakaocdn.net/brainrepo/models/RQVAE/6714b47bb9382076923590eff08b1ee5/imagenet_1.4B_rqvae_50e.tar.gz",
    licence="CC-BY-NC-SA 4.0 (weights; code Apache 2.0, kakaobrain/rq-vae-transformer)",
    notes="extract imagenet_1.4B_rqvae_50e/stage1/model.pt from the archive and save it as rqvae_imagenet_1.4B_rqvae_50e.pt (no sha256 "
          "published); the RQ-VAE trained 50 epochs (the archive's name); torch.save dict, weights under 'state_dict'; inputs RGB in [-1, 1]",
)  # fmt: skip


@register_tokenizer(input_shape=(3, 256, 256), pretrained=(_IMAGENET_50E,), convert=rqvae_state_dict)
def rqvae_8x8x4(**overrides) -> RQVAE:
    """RQ-VAE 8x8x4 (ImageNet): f32, depth 4 over one shared codebook of 16384 codes of dim 256."""
    return build_rqvae(**{**IMAGENET_8X8X4, **overrides})


@register_tokenizer(input_shape=(3, 32, 32), convert=rqvae_state_dict)
def rqvae_tiny(**overrides) -> RQVAE:
    """RQ-VAE at CPU size: width 32, levels 1,2,2 (f4), one block per level, attention at 8x8, depth 4
    over one shared codebook of 512 codes of dim 32 (8x8x4 codes at 32x32)."""
    tiny = dict(ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(8,), resolution=32, z_channels=32, embed_dim=32, codebook_size=512,
                depth=4)  # fmt: skip
    return build_rqvae(**{**tiny, **overrides})
