"""The small convolutional encoder/decoder used for VQ-VAE on 64x64 images.

Shape of the networks follows the "SimpleCNN" of xyfJASON/visual-tokenizer-pytorch
(``models/autoencoder/simple_cnn.py``), itself the VQ-VAE paper's image model
(van den Oord et al. 2017, sec. 4.1: two stride-2 4x4 convolutions, two residual 3x3/1x1 blocks).
Downsampling factor 4: ``(B, 3, H, W) -> (B, hidden, H/4, W/4)``.
"""

from __future__ import annotations

from torch import Tensor, nn


class ResidualBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))), channels unchanged."""

    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)


class SimpleCNNEncoder(nn.Sequential):
    """``(B, in_channels, H, W) -> (B, hidden_dim, H/4, W/4)``."""

    downsample_factor = 4

    def __init__(self, in_channels: int = 3, hidden_dim: int = 256, num_res_blocks: int = 2):
        super().__init__(
            nn.Conv2d(in_channels, hidden_dim // 2, 4, stride=2, padding=1),
            nn.LeakyReLU(),
            nn.Conv2d(hidden_dim // 2, hidden_dim, 4, stride=2, padding=1),
            nn.LeakyReLU(),
            nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1),
            *[ResidualBlock(hidden_dim) for _ in range(num_res_blocks)],
        )
        self.out_channels = hidden_dim


class SimpleCNNDecoder(nn.Sequential):
    """``(B, hidden_dim, h, w) -> (B, out_channels, 4h, 4w)`` in [-1, 1] (tanh)."""

    def __init__(self, out_channels: int = 3, hidden_dim: int = 256, num_res_blocks: int = 2):
        super().__init__(
            *[ResidualBlock(hidden_dim) for _ in range(num_res_blocks)],
            nn.LeakyReLU(),
            nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1),
            nn.LeakyReLU(),
            nn.ConvTranspose2d(hidden_dim, hidden_dim // 2, 4, stride=2, padding=1),
            nn.LeakyReLU(),
            nn.ConvTranspose2d(hidden_dim // 2, out_channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )
