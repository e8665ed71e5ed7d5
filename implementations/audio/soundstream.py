"""SoundStream (Zeghidour et al. 2021, "SoundStream: An End-to-End Neural Audio Codec",
https://arxiv.org/abs/2107.03312, IEEE/ACM TASLP 2022). No official code was released; this follows
the paper where it is explicit and says where it is not.

From the paper (sec. III-A to III-C): a causal, fully convolutional encoder at 24 kHz, ``conv(k=7, C)``
then four blocks of three residual units (dilations 1, 3, 9) and a strided convolution (strides
2, 4, 5, 8, kernel 2 x stride, channels doubled), then ``conv(k=3, D)``: one embedding every 320 samples
(75 Hz); a mirrored decoder (transposed convolutions, channels halved) ending in ``conv(k=7, 1)``; ELU
activations, no normalisation, C = 32; residual VQ with 1024 codes per level (10 bits: 0.75 kbps per
level at 75 Hz), EMA codebooks, k-means initialisation on the first batch, dead codes replaced by random
frames of the batch, and quantizer dropout (a random number of levels in training) so that one model
runs at 3 to 18 kbps (24 levels).

Our choices (not read in the paper): the SEANet modules of `implementations.modules.seanet` in
EnCodec's layout (an ELU before each convolution of a residual unit and before every strided or output
convolution; residual units as a dilated kernel-7 convolution and a 1x1 one, identity skip), zero
padding in the past, D = 128 (EnCodec's latent width), EMA decay 0.99, dead-code threshold 2 (EnCodec's),
50 k-means iterations, commitment weight 1 (the paper's generator loss lists no commitment term), and
quantizer dropout drawn per batch (the shared `ResidualQuantizer`), not per example. A summary of the
paper's Table I gives 8.4M parameters at C = 32; this layout has 9.84M (9.18M without the two
D-dependent convolutions), a difference not reconciled here. The paper's
discriminators and losses are `implementations.modules.discriminators.audio` and
`implementations.losses.spectral` (recipe ``bench/conf/recipe/soundstream.yaml``).
"""

from __future__ import annotations

import math

from ..arguments import require_positive
from ..modules.seanet import SEANetDecoder, SEANetEncoder
from ..quantizers.residual import ResidualQuantizer
from ..registry import register_tokenizer
from .codec import AudioCodec


class SoundStream(AudioCodec):
    family = "SoundStream"
    paper = "Zeghidour et al. 2021, https://arxiv.org/abs/2107.03312"
    sample_rate = 24_000


_LEVEL = dict(codebook_size=1024, ema_decay=0.99, kmeans_init=True, kmeans_iters=50, dead_code_threshold=2.0, beta=1.0)


def build_soundstream(*, bitrate: float, max_bitrate: float = 18.0, n_filters: int = 32, dimension: int = 128, quantizer_dropout: bool = True) -> SoundStream:
    """SoundStream at ``bitrate`` kbps (a multiple of 0.75) of a model trained up to ``max_bitrate``;
    ``n_filters`` is the paper's C, ``dimension`` its D."""
    require_positive(bitrate=bitrate, max_bitrate=max_bitrate, n_filters=n_filters, dimension=dimension)
    seanet = dict(channels=1, dimension=dimension, n_filters=n_filters, ratios=(8, 5, 4, 2), n_residual_layers=3, residual_kernel_size=7,
                  dilation_base=3, compress=1, true_skip=True, lstm=0, kernel_size=7, norm="none", causal=True, pad_mode="constant")  # fmt: skip
    encoder, decoder = SEANetEncoder(**seanet, last_kernel_size=3), SEANetDecoder(**seanet, last_kernel_size=7)
    kbps_per_level = math.log2(_LEVEL["codebook_size"]) * SoundStream.sample_rate / encoder.hop_length / 1000
    levels, depth = bitrate / kbps_per_level, max_bitrate / kbps_per_level
    if levels != round(levels) or depth != round(depth):
        raise ValueError(f"SoundStream bitrates are multiples of {kbps_per_level} kbps, got {bitrate} (of at most {max_bitrate})")
    quantizer = ResidualQuantizer(dimension, round(depth), "vq", quantizer_dropout=quantizer_dropout, **_LEVEL)
    return SoundStream(encoder, quantizer, decoder, channels=1, num_levels=round(levels))


@register_tokenizer(input_shape=(1, 24_000))
def soundstream_24khz(bitrate: float = 6.0, **overrides) -> SoundStream:
    """SoundStream 24 kHz, C = 32, at ``bitrate`` kbps (the paper runs one model at 3 to 18 kbps: 4 to 24 levels)."""
    return build_soundstream(bitrate=bitrate, **overrides)


@register_tokenizer(input_shape=(1, 24_000))
def soundstream_tiny(bitrate: float = 6.0, **overrides) -> SoundStream:
    """SoundStream's architecture at CPU size: C = 4, D = 32; same strides, codebooks and bitrates."""
    return build_soundstream(bitrate=bitrate, **{"n_filters": 4, "dimension": 32, **overrides})
