"""StyleGAN2-style residual discriminator (Karras et al. 2020, "Analyzing and Improving the Image Quality
of StyleGAN", https://arxiv.org/abs/1912.04958) as MaskGIT and MAGVIT-v2 train their tokenizers with it:
2-D for images, 3-D (spatio-temporal convolutions) for video.

* MaskGIT (Chang et al. 2022, "MaskGIT: Masked Generative Image Transformer",
  https://arxiv.org/abs/2202.04200), ``dims=2``: followed ``maskgit/nets/discriminator.py``
  (``Discriminator``, ``ResBlock``, ``BlurPool2D``) of github.com/google-research/maskgit with the
  defaults of ``maskgit/configs/vqgan_config.py`` (``image_size=256``, ``channel_multiplier=1``,
  ``blur_resample=True``). Its width table at 256x256 (64, then 128, 256, 512, 512, 512, 512) is
  ``filters=64`` with ``channel_multipliers=(2, 4, 8, 8, 8, 8)`` here.
* MAGVIT-v2 (Yu et al. 2023, "Language Model Beats Diffusion -- Tokenizer is Key to Visual Generation",
  https://arxiv.org/abs/2310.05737), ``dims=3``: followed Google's port of the MAGVIT-v2 discriminator
  to praxis (github.com/google/praxis, ``praxis/layers/video/vqvae.py``, ``Discriminator``, and
  ``praxis/layers/video/enc_dec_3dcnn.py``, ``DiscriminatorResBlock`` and ``BlurPool3D``): ``filters=128``,
  ``channel_multipliers=(2, 4, 4, 4)``, ``blur_filter_size=3``. MAGVIT (v1)'s JAX code
  (github.com/google-research/magvit, ``videogvt/models/stylegan_discriminator_3d.py``) has the same
  layout with average pooling instead of the blur and optional norms; that variant is not built here.
  lucidrains' ``magvit2-pytorch`` ``Discriminator`` (attention blocks, pixel-unshuffle downsampling) and
  Open-MAGVIT2's PatchGAN are different networks and were not followed.

Network (``D`` = 2 or 3 spatial/temporal dimensions, every convolution zero-padded "same", with a bias
unless noted; LeakyReLU slope 0.2; no normalisation):

* ``conv_first``: 3^D convolution ``in_channels -> filters``, LeakyReLU;
* one residual block per multiplier ``m``, ``c -> filters * m``, halving every dimension (rounding up):
  ``x = LeakyReLU(conv_last(blur(LeakyReLU(conv_first(x)))))`` (3^D convolutions, ``c -> c`` then
  ``c -> filters * m``), ``residual = conv_residual(blur(x))`` (1^D convolution, no bias),
  output ``(x + residual) / sqrt(2)``;
* ``conv_last``: 3^D convolution at the last width, LeakyReLU;
* flatten channel-last (``(T,) H, W, C`` as the JAX code, so its dense kernels load transposed),
  ``dense`` to the last width, LeakyReLU, ``logit`` to one real/fake score per clip or image.

``blur`` is the depthwise binomial low-pass filter of Zhang 2019 (https://arxiv.org/abs/1904.11486):
the outer product of ``[1, 3, 3, 1]`` (``blur_size=4``) or ``[1, 2, 1]`` (``blur_size=3``) with
itself, normalised to sum 1, applied with stride 2 and XLA's "SAME" zero padding (``ceil(n / 2)``
outputs; ``max((ceil(n / 2) - 1) * 2 + k - n, 0)`` zeros, the smaller half before). The 3-D blur
also runs along time, so 17 frames become 9, 5, 3, 2 (with ``blur_size=3`` a single frame is kept
but halved in value, as in praxis). Kernels are Xavier-uniform and biases zero as MaskGIT initialises
them (praxis' default initialiser is Xavier too).

Left open by the papers: MaskGIT's paper names a StyleGAN discriminator without its widths, blur or
input size; for MAGVIT-v2 these are taken from the praxis code, not from the paper's text. The dense
layer's size depends on the input size, so ``resolution`` (and ``frames``) must be those of the training
crops. praxis defaults to ``num_frames=1`` at 256x256 (images); the 3-D default here, 17 frames at
128x128, is a choice: a clip length MAGVIT-v2's causal tokenizer takes (1 + 4k frames) at the size of
MAGVIT's UCF-101 experiments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...protocol import Discriminator, DiscriminatorOutput
from ...registry import register_discriminator

# per ``dims``: the official code's widths and blur; the input sizes are discussed in the module docstring
_OFFICIAL_DEFAULTS = {
    2: {"filters": 64, "channel_multipliers": (2, 4, 8, 8, 8, 8), "blur_size": 4, "resolution": 256, "frames": 1},
    3: {"filters": 128, "channel_multipliers": (2, 4, 4, 4), "blur_size": 3, "resolution": 128, "frames": 17},
}


def binomial_filter(size: int, dims: int) -> Tensor:
    """The ``size^dims`` outer product of the binomial row ``[C(size-1, k)]`` with itself, summing to 1."""
    row = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float64)
    kernel = row
    for _ in range(dims - 1):
        kernel = kernel.unsqueeze(-1) * row
    return (kernel / kernel.sum()).float()


def _halved(size: int) -> int:
    return -(-size // 2)


class BlurPool(nn.Module):
    """Depthwise binomial blur with stride 2 and "SAME" zero padding:
    ``(B, channels, *S) -> (B, channels, *ceil(S / 2))``, ``len(S) == dims``."""

    def __init__(self, dims: int, channels: int, size: int):
        super().__init__()
        kernel = binomial_filter(size, dims)
        self.register_buffer("kernel", kernel.expand(channels, 1, *kernel.shape).contiguous(), persistent=False)
        self.size = size
        self.convolve = F.conv2d if dims == 2 else F.conv3d

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for n in reversed(x.shape[2:]):  # F.pad lists the last dimension first
            total = max((_halved(n) - 1) * 2 + self.size - n, 0)
            pads += [total // 2, total - total // 2]
        return self.convolve(F.pad(x, pads), self.kernel.to(x.dtype), stride=2, groups=x.shape[1])


class ResidualBlock(nn.Module):
    """``(B, in_channels, *S) -> (B, out_channels, *ceil(S / 2))``: blur-pooled residual block."""

    def __init__(self, dims: int, in_channels: int, out_channels: int, blur_size: int):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.conv_first = conv(in_channels, in_channels, 3, padding=1)
        self.blur = BlurPool(dims, in_channels, blur_size)
        self.conv_last = conv(in_channels, out_channels, 3, padding=1)
        self.conv_residual = conv(in_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        residual = x
        x = F.leaky_relu(self.conv_first(x), 0.2)
        x = F.leaky_relu(self.conv_last(self.blur(x)), 0.2)
        residual = self.conv_residual(self.blur(residual))
        return (x + residual) / math.sqrt(2)


@register_discriminator("stylegan")
class StyleGANDiscriminator(Discriminator):
    """Images ``(B, in_channels, H, W)`` (``dims=2``) or video ``(B, in_channels, T, H, W)`` (``dims=3``)
    in [-1, 1] -> ``logits [(B, 1)]``; ``features``: the activations of ``conv_first``, of every
    residual block and of ``conv_last``, channel-first.

    Args:
        dims: 2 (images; MaskGIT's defaults) or 3 (video; MAGVIT-v2's defaults).
        in_channels: input channels.
        filters: width of ``conv_first``; block ``i`` has ``filters * channel_multipliers[i]``
            channels. Default 64 (2-D) / 128 (3-D).
        channel_multipliers: one residual block (and one halving) per entry. Default
            ``(2, 4, 8, 8, 8, 8)`` (2-D) / ``(2, 4, 4, 4)`` (3-D).
        blur_size: length of the binomial blur row, 2 to 7. Default 4 (2-D) / 3 (3-D).
        resolution: input ``H = W`` or ``(H, W)``; fixes the dense layer's size. Default 256 (2-D) /
            128 (3-D).
        frames: input ``T`` (3-D only). Default 17.

    Parameters at the defaults: 2-D 256x256, 23,998,017; 3-D 17x128x128, 76,282,753.
    """

    modality = "image"
    paper = "Karras et al. 2020, https://arxiv.org/abs/1912.04958, as MaskGIT (2-D) and MAGVIT-v2 (3-D) use it"

    def __init__(
        self,
        dims: int = 2,
        in_channels: int = 3,
        filters: int | None = None,
        channel_multipliers: Sequence[int] | None = None,
        blur_size: int | None = None,
        resolution: int | Sequence[int] | None = None,
        frames: int | None = None,
    ):
        super().__init__()
        if dims not in _OFFICIAL_DEFAULTS:
            raise ValueError(f"dims must be 2 (images) or 3 (video), got {dims}")
        defaults = _OFFICIAL_DEFAULTS[dims]
        filters = defaults["filters"] if filters is None else filters
        channel_multipliers = tuple(defaults["channel_multipliers"] if channel_multipliers is None else channel_multipliers)
        blur_size = defaults["blur_size"] if blur_size is None else blur_size
        resolution = defaults["resolution"] if resolution is None else resolution
        frames = defaults["frames"] if frames is None else frames
        if not 2 <= blur_size <= 7:
            raise ValueError(f"blur_size must be 2 to 7 (the binomial filters of the official BlurPool), got {blur_size}")
        if dims == 2 and frames != 1:
            raise ValueError("frames applies to dims=3 only")
        height, width = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
        if dims == 3:
            self.modality = "video"
        self.input_size = (height, width) if dims == 2 else (frames, height, width)

        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.conv_first = conv(in_channels, filters, 3, padding=1)
        blocks, channels, grid = [], filters, self.input_size
        for multiplier in channel_multipliers:
            blocks.append(ResidualBlock(dims, channels, filters * multiplier, blur_size))
            channels, grid = filters * multiplier, tuple(_halved(n) for n in grid)
        self.blocks = nn.ModuleList(blocks)
        self.conv_last = conv(channels, channels, 3, padding=1)
        self.dense = nn.Linear(channels * math.prod(grid), channels)
        self.logit = nn.Linear(channels, 1)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        if tuple(x.shape[2:]) != self.input_size:
            raise ValueError(f"expected inputs of size {self.input_size} after (B, C), got {tuple(x.shape[2:])}")
        x = F.leaky_relu(self.conv_first(x), 0.2)
        features = [x]
        for block in self.blocks:
            x = block(x)
            features.append(x)
        x = F.leaky_relu(self.conv_last(x), 0.2)
        features.append(x)
        x = F.leaky_relu(self.dense(x.movedim(1, -1).flatten(1)), 0.2)
        return DiscriminatorOutput(logits=[self.logit(x)], features=[features])
