"""PatchGAN discriminator (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial
Networks", https://arxiv.org/abs/1611.07004), as taming-transformers trains VQGAN with it (Esser et
al. 2021, https://arxiv.org/abs/2012.09841; ``taming/modules/discriminator/model.py``,
``NLayerDiscriminator`` and ``weights_init``). LlamaGen and Open-MAGVIT2 train with the same network.

``n_layers`` stride-2 4x4 convolutions (channels ``base_channels * min(2**i, 8)``), one stride-1 4x4
convolution, then a 4x4 convolution to one logit per patch; BatchNorm after every convolution but the
first and the last (which carry biases; the others do not), LeakyReLU 0.2. At 256x256 with the
defaults each of the 30x30 logits sees a 70x70 patch. Weights are initialised as taming does:
convolutions N(0, 0.02), BatchNorm scales N(1, 0.02) and shifts 0. The module tree (``main.<i>``)
is taming's, so its state dicts load unchanged.
"""

from __future__ import annotations

from torch import Tensor, nn

from ...protocol import Discriminator, DiscriminatorOutput
from ...registry import register_discriminator


@register_discriminator("patchgan")
class PatchGANDiscriminator(Discriminator):
    """``(B, in_channels, H, W) -> logits [(B, 1, H', W')]``, features: each LeakyReLU's output."""

    modality = "image"
    paper = "Isola et al. 2017, https://arxiv.org/abs/1611.07004 (taming-transformers' NLayerDiscriminator)"

    def __init__(self, in_channels: int = 3, base_channels: int = 64, n_layers: int = 3):
        super().__init__()
        widths = [base_channels * min(2**i, 8) for i in range(n_layers + 1)]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base_channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(widths[i - 1], widths[i], 4, stride=stride, padding=1, bias=False), nn.BatchNorm2d(widths[i]), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.apply(_taming_init)

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        features = []
        for layer in self.main:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                features.append(x)
        return DiscriminatorOutput(logits=[x], features=[features])


def _taming_init(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.constant_(module.bias, 0.0)
