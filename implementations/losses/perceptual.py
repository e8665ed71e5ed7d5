"""LPIPS with the VGG16 backbone (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as
a Perceptual Metric", https://arxiv.org/abs/1801.03924), the perceptual training loss of VQGAN
(taming-transformers' ``taming/modules/losses/lpips.py``), LlamaGen, MaskGIT and Open-MAGVIT2.

As the reference ``lpips`` package computes it (``lpips/pretrained_networks.py``, ``lpips/lpips.py``,
version 0.1): inputs in [-1, 1] are shifted and scaled per channel, passed through VGG16's
convolutional layers; at relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3 the features are unit-normalised
along channels (``x / (||x|| + 1e-10)``), their squared difference weighted by a learnt 1x1
convolution without bias, averaged over space and summed over the five layers.

Two released files give the weights (`LPIPS_VGG_FILES`): torchvision's ImageNet VGG16 and LPIPS
v0.1's linear layers (the same file taming-transformers downloads as ``vgg.pth``: identical md5).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..checkpoints import WeightFile, find_weights

VGG16_BACKBONE = WeightFile(
    filename="vgg16-397923af.pth",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    sha256="397923af",  # torchvision names the file after its digest's first 8 hex digits
    licence="torchvision (BSD-3-Clause); ImageNet-trained",
)
LPIPS_VGG_LINEAR = WeightFile(
    filename="vgg.pth",
    url="https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",
    sha256="a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
    also_at=("~/.cache/torch/hub/pyiqa/LPIPS_v0.1_vgg-a78928a0.pth",),  # pyiqa's cache; the lpips package ships it too
    licence="BSD-2-Clause (richzhang/PerceptualSimilarity)",
)
LPIPS_VGG_FILES = (VGG16_BACKBONE, LPIPS_VGG_LINEAR)

# VGG16's convolutional configuration ("D") up to relu5_3; "M" is a 2x2 max-pool.
_VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_TAPS = (3, 8, 15, 22, 29)  # indices of relu1_2 .. relu5_3 in torchvision's ``vgg16().features``
_CHANNELS = (64, 128, 256, 512, 512)


def _vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU()]
            channels = item
    return nn.Sequential(*layers)


class LPIPS(nn.Module):
    """``forward(x, y)``: images ``(B, 3, H, W)`` in [-1, 1] -> distances ``(B,)``. Frozen: its weights
    never train, gradients flow to the inputs. Built with random weights; `load_released` or
    `load_state_dicts` give it the published ones.

    ``dropout``: as the reference's ``use_dropout=True`` (taming's default), ``nn.Dropout()`` (p 0.5) on
    each layer's squared difference before its linear layer, active only in train mode (``train()``);
    the rest of the network is the evaluation network in either mode."""

    def __init__(self, dropout: bool = False):
        super().__init__()
        self.dropout = nn.Dropout() if dropout else nn.Identity()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.features = _vgg16_features()
        self.linear = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:
        super().train(False)  # no statistics: the evaluation network
        self.dropout.train(mode)
        return self

    def load_state_dicts(self, backbone: dict[str, Tensor], linear: dict[str, Tensor]) -> None:
        """``backbone``: torchvision's ``vgg16()`` state dict (``features.<i>.*`` used, the classifier's
        ``classifier.*`` ignored); ``linear``: LPIPS's ``lin<k>.model.1.weight`` (k = 0..4). Every key
        used is required and every shape checked."""
        own = {}
        for index, layer in enumerate(self.features):
            if isinstance(layer, nn.Conv2d):
                for name in ("weight", "bias"):
                    own[f"features.{index}.{name}"] = backbone[f"features.{index}.{name}"]
        unexplained = {k for k in backbone if not k.startswith("classifier.")} - set(own)
        if unexplained:
            raise ValueError(f"VGG16 state dict has keys LPIPS does not use: {sorted(unexplained)[:4]}")
        for k in range(len(_CHANNELS)):
            own[f"linear.{k}.weight"] = linear[f"lin{k}.model.1.weight"]
        if set(linear) != {f"lin{k}.model.1.weight" for k in range(len(_CHANNELS))}:
            raise ValueError(f"LPIPS linear-layer file has unexpected keys: {sorted(linear)}")
        self.load_state_dict(own, strict=True)  # strict: raises on any shape mismatch

    def load_released(self, backbone_path: str | None = None, linear_path: str | None = None) -> None:
        """Find the two released files (`implementations.checkpoints.find_weights`) and load them. A
        file found in a cache is checked against its published sha256; an explicit path is taken as
        given (the caller vouches for it)."""
        backbone = torch.load(find_weights(VGG16_BACKBONE, backbone_path, verify=backbone_path is None), map_location="cpu", weights_only=True)
        linear = torch.load(find_weights(LPIPS_VGG_LINEAR, linear_path, verify=linear_path is None), map_location="cpu", weights_only=True)
        self.load_state_dicts(backbone, linear)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        distance = x.new_zeros(x.shape[0])
        for linear, fx, fy in zip(self.linear, self._taps(x), self._taps(y)):
            distance = distance + linear(self.dropout((fx - fy) ** 2)).mean(dim=(1, 2, 3))
        return distance

    def _taps(self, x: Tensor):
        """The unit-normalised features at relu1_2 .. relu5_3, one at a time (each input on its own:
        a target without gradient keeps no activations for the backward pass)."""
        x = (x - self.shift) / self.scale
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _TAPS:
                yield x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
