"""VQ-VAE image tokenizer (van den Oord et al. 2017, "Neural Discrete Representation Learning",
https://arxiv.org/abs/1711.00937) with the SimpleCNN encoder/decoder, as benchmarked on CelebA 64x64
by xyfJASON/visual-tokenizer-pytorch; any registered quantizer can be plugged in.
"""

from __future__ import annotations

from ..arguments import require_at_least
from ..modules.simple_cnn import SimpleCNNDecoder, SimpleCNNEncoder
from ..registry import create_quantizer, register_tokenizer
from .autoencoder import ImageAutoencoderTokenizer


class VQVAE(ImageAutoencoderTokenizer):
    family = "VQ-VAE"
    paper = "van den Oord et al. 2017, https://arxiv.org/abs/1711.00937"


# Quantizer settings of the CelebA table when none are given (512 codes of dim 64, VQ loss).
DEFAULT_QUANTIZER_KWARGS = {"vq": {"codebook_size": 512, "codebook_dim": 64}}


@register_tokenizer(input_shape=(3, 64, 64))
def vqvae_simplecnn(hidden_dim: int = 256, num_res_blocks: int = 2, quantizer: str = "vq", **quantizer_kwargs) -> VQVAE:
    """SimpleCNN VQ-VAE, downsampling 4. ``quantizer`` names a registered quantizer, built with
    ``dim=hidden_dim`` and the remaining keyword arguments (e.g. ``codebook_size=512,
    codebook_dim=4, l2_normalize=True, ema_decay=0.99`` for "vq", ``levels=[8, 5, 5, 5]`` for "fsq")."""
    require_at_least(2, hidden_dim=hidden_dim)  # the first convolution has hidden_dim // 2 channels
    require_at_least(0, num_res_blocks=num_res_blocks)
    kwargs = {**DEFAULT_QUANTIZER_KWARGS.get(quantizer, {}), **quantizer_kwargs}
    return VQVAE(
        SimpleCNNEncoder(3, hidden_dim, num_res_blocks),
        create_quantizer(quantizer, dim=hidden_dim, **kwargs),
        SimpleCNNDecoder(3, hidden_dim, num_res_blocks),
        downsample_factor=SimpleCNNEncoder.downsample_factor,
    )
