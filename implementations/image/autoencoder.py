"""The encoder -> quantizer -> decoder shape shared by convolutional image tokenizers."""

from __future__ import annotations

from torch import Tensor, nn

from ..protocol import Quantizer, QuantizerOutput, Tokenizer


class ImageAutoencoderTokenizer(Tokenizer):
    """A 2-D grid tokenizer: ``(B, 3, H, W) -> codes (B, H/f, W/f, num_codebooks)``.

    Args:
        encoder: ``(B, 3, H, W) -> (B, quantizer.dim, H/f, W/f)``.
        quantizer: any `Quantizer` with ``dim`` equal to the encoder's channels.
        decoder: ``(B, quantizer.dim, h, w) -> (B, 3, f h, f w)``.
        downsample_factor: f.
    """

    modality = "image"

    def __init__(self, encoder: nn.Module, quantizer: Quantizer, decoder: nn.Module, downsample_factor: int):
        super().__init__()
        self.encoder = encoder
        self.quantizer = quantizer
        self.decoder = decoder
        self.downsample_factor = downsample_factor

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        _, height, width = input_shape
        f = self.downsample_factor
        if height % f or width % f:
            raise ValueError(f"{type(self).__name__} needs H and W divisible by {f}, got {height}x{width}")
        return height // f, width // f

    def quantize(self, x: Tensor) -> QuantizerOutput:
        if x.ndim != 4:
            raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
        self.token_grid(tuple(x.shape[1:]))
        return self.quantizer(self.encoder(x).permute(0, 2, 3, 1))

    def decode_embeddings(self, quantized: Tensor) -> Tensor:
        return self.decoder(quantized.permute(0, 3, 1, 2))

    def last_layer_weight(self) -> Tensor:
        """The weight of the decoder's last convolution (taming: ``decoder.conv_out.weight``)."""
        convolutions = [m for m in self.decoder.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
        return convolutions[-1].weight
