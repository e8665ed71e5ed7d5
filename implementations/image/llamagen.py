"""LlamaGen's VQ tokenizers (Sun et al. 2024, "Autoregressive Model Beats Diffusion: Llama for Scalable
Image Generation", https://arxiv.org/abs/2406.06525), as FoundationVision/LlamaGen builds them
(``tokenizer/tokenizer_image/vq_model.py``, ``VQ_16`` / ``VQ_8``).

The network is taming's VQGAN encoder/decoder (same blocks, GroupNorm 32, swish, single-head
attention), with attention at the lowest resolution only, and a codebook of 16384 codes of dimension
8: ``quant_conv`` maps 256 channels to 8, codes and latents are l2-normalised before the nearest-code
search (cosine similarity), and the loss is the standard VQ loss (beta 0.25 on the commitment term;
the entropy term is off in the released models). So it is `build_vqgan` with the shared VQ quantizer
(``l2_normalize=True``), and `llamagen_state_dict` renames LlamaGen's module tree (``conv_blocks``,
``res``, ``mid.0/1/2``; decoder levels in processing order) onto it.
"""

from __future__ import annotations

import re

from torch import Tensor

from ..checkpoints import WeightFile
from ..registry import register_tokenizer
from .vqgan import VQGAN, build_vqgan, taming_state_dict

class LlamaGenVQ(VQGAN):
    family = "LlamaGen VQ"
    paper = "Sun et al. 2024, https://arxiv.org/abs/2406.06525"


_MIDDLE = {"0": "block_1", "1": "attn_1", "2": "block_2"}
_TRAINING_ONLY = ("quantize.codebook_used",)  # usage statistics of LlamaGen's training loop


def llamagen_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """LlamaGen ``VQModel`` keys -> ours (through taming's names); raises ``KeyError`` naming any key
    it cannot place."""
    up_levels = 1 + max((int(m.group(1)) for k in state if (m := re.match(r"decoder\.conv_blocks\.(\d+)\.", k))), default=-1)
    renamed = {}
    for key, value in state.items():
        if key in _TRAINING_ONLY:
            continue
        new = re.sub(r"^(encoder|decoder)\.mid\.(\d)\.", lambda m: f"{m.group(1)}.mid.{_MIDDLE[m.group(2)]}.", key)
        new = re.sub(r"^encoder\.conv_blocks\.(\d+)\.res\.", r"encoder.down.\1.block.", new)
        new = re.sub(r"^encoder\.conv_blocks\.(\d+)\.", r"encoder.down.\1.", new)
        new = re.sub(r"^decoder\.conv_blocks\.(\d+)\.", lambda m: f"decoder.up.{up_levels - 1 - int(m.group(1))}.", new)
        new = re.sub(r"^decoder\.up\.(\d+)\.res\.", r"decoder.up.\1.block.", new)
        renamed[new] = value
    return taming_state_dict(renamed)


def _release(name: str, resolution: str) -> WeightFile:
    return WeightFile(
        filename=f"{name}.pt", url=f"https://huggingface.co/FoundationVision/LlamaGen/resolve/main/{name}.pt", hf_repo="FoundationVision/LlamaGen",
        licence="MIT (FoundationVision/LlamaGen)",
        notes=f"LlamaGen README's {name} (trained at {resolution}); torch.save dict, weights under 'ema', 'model' or 'state_dict' "
              "(LlamaGen's reconstruction script reads them in that order); inputs RGB in [-1, 1]",
    )  # fmt: skip


_VQ = dict(ch=128, num_res_blocks=2, resolution=256, z_channels=256, embed_dim=8, codebook_size=16384, l2_normalize=True, legacy_beta=False,
           family=LlamaGenVQ)  # fmt: skip


@register_tokenizer(input_shape=(3, 256, 256), pretrained=(_release("vq_ds16_c2i", "256x256, ImageNet"),), convert=llamagen_state_dict)
def llamagen_vq_16(**overrides) -> LlamaGenVQ:
    """LlamaGen VQ-16: f16, 16384 codes of dim 8, l2-normalised (16x16 tokens at 256x256)."""
    return build_vqgan(**{**_VQ, "ch_mult": (1, 1, 2, 2, 4), "attn_resolutions": (16,), **overrides})


@register_tokenizer(input_shape=(3, 256, 256), convert=llamagen_state_dict)
def llamagen_vq_8(**overrides) -> LlamaGenVQ:
    """LlamaGen VQ-8: f8, 16384 codes of dim 8, l2-normalised (32x32 tokens at 256x256)."""
    return build_vqgan(**{**_VQ, "ch_mult": (1, 2, 2, 4), "attn_resolutions": (32,), **overrides})
