"""VQ-VAE image tokenizer (van den Oord et al. 2017, "Neural Discrete Representation Learning",
https://arxiv.org/abs/1711.00937) with the SimpleCNN encoder/decoder, as benchmarked on CelebA 64x64
by xyfJASON/visual-tokenizer-pytorch; any registered quantizer can be plugged in.
"""

from __future__ import annotations

from ..modules.simple_cnn import SimpleCNNDecoder, SimpleCNNEncoder
from ..registry import create_quantizer, register_tokenizer
from .autoencoder import ImageAutoencoderTokenizer


class VQVAE(ImageAutoencoderTokenizer):
    family = "VQ-VAE"
    paper = "van den Oord et al. 2017, https://arxiv.org/abs/1711.00937"


@register_tokenizer(input_shape=(3, 64, 64))
def vqvae_simplecnn(
    hidden_dim: int = 256,
    num_res_blocks: int = 2,
    quantizer: str = "vq",
    codebook_size: int = 512,
    codebook_dim: int = 64,
    **quantizer_kwargs,
) -> VQVAE:
    """SimpleCNN VQ-VAE, downsampling 4. ``quantizer`` names a registered quantizer; the rest of the
    keyword arguments go to it (e.g. ``l2_normalize=True``, ``ema_decay=0.99``, ``beta=0.25``)."""
    return VQVAE(
        SimpleCNNEncoder(3, hidden_dim, num_res_blocks),
        create_quantizer(quantizer, dim=hidden_dim, codebook_size=codebook_size, codebook_dim=codebook_dim, **quantizer_kwargs),
        SimpleCNNDecoder(3, hidden_dim, num_res_blocks),
        downsample_factor=SimpleCNNEncoder.downsample_factor,
    )
