"""Image preprocessing as the papers do it; the name of the one used is recorded with each result.

Each mode maps an RGB PIL image to a ``size x size`` square:

* ``adm_center_crop``: ADM's ``center_crop_arr`` (Dhariwal & Nichol 2021; LlamaGen, MaskBit):
  halve with a box filter while the shorter side is >= 2x the target, bicubic resize so the shorter
  side equals the target (upsampling a smaller image), center crop.
* ``resize_center_crop``: torchvision ``Resize(size, BICUBIC)`` + ``CenterCrop(size)`` on the PIL
  image (antialiased; the longer side truncated as torchvision does; TiTok, Open-MAGVIT2, MaskGIT's
  PyTorch evaluations). Called through torchvision itself.
* ``smallest_side_bilinear``: taming-transformers' ImageNet loader: albumentations
  ``SmallestMaxSize`` (cv2 ``INTER_LINEAR``, no antialiasing, sides rounded) + ``CenterCrop``. cv2's
  fixed-point arithmetic is replaced by float bilinear interpolation rounded to 8 bits: within one
  level of cv2 on photographs (tested against opencv).
* ``none``: the image must already have the target size.

An image whose shorter side is below the target is upsampled by the resizing modes (counted as
``upsampled``). ``center_crop`` (CelebA's 140-pixel face crop, taken first) pads an image smaller
than the crop with black, as torchvision's ``CenterCrop`` does (counted as ``padded``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor
from torchvision.transforms import InterpolationMode

from ..errors import BenchError
from .items import Noted


def adm_center_crop(image: Image.Image, size: int) -> Image.Image:
    while min(*image.size) >= 2 * size:
        image = image.resize(tuple(x // 2 for x in image.size), Image.BOX)
    scale = size / min(*image.size)
    image = image.resize(tuple(round(x * scale) for x in image.size), Image.BICUBIC)
    return _crop(image, size)


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    return TF.center_crop(TF.resize(image, size, InterpolationMode.BICUBIC), size)


def smallest_side_bilinear(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    scale = size / min(width, height)
    if scale != 1.0:
        pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()
        resized = F.interpolate(pixels, size=(round(height * scale), round(width * scale)), mode="bilinear", align_corners=False, antialias=False)
        image = Image.fromarray(resized[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())
    return _crop(image, size)


def _crop(image: Image.Image, size: int) -> Image.Image:
    """The central ``size x size`` square (ADM's and albumentations' offsets: floor of half the excess)."""
    width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


PREPROCESSING = {
    "adm_center_crop": adm_center_crop,
    "resize_center_crop": resize_center_crop,
    "smallest_side_bilinear": smallest_side_bilinear,
    "none": None,
}


def preprocess(image: Image.Image, size: int, method: str, source: str, center_crop: int | None = None) -> Tensor | Noted:
    """RGB PIL image -> ``(3, size, size)`` float tensor in [-1, 1], `Noted` when it was upsampled or
    padded; ``center_crop`` first crops a ``center_crop`` square from the middle (torchvision's
    ``CenterCrop``)."""
    if method not in PREPROCESSING:
        raise BenchError(f"unknown preprocessing {method!r}; known: {', '.join(PREPROCESSING)}")
    note = ""
    if center_crop is not None:
        if min(image.size) < center_crop:
            note = "padded"
        image = TF.center_crop(image, center_crop)
    transform = PREPROCESSING[method]
    if transform is not None:
        if min(image.size) < size:
            note = note or "upsampled"
        image = transform(image, size)
    elif image.size != (size, size):
        raise BenchError(f"{source}: image is {image.size[0]}x{image.size[1]}, expected {size}x{size} (preprocessing=none)")
    x = to_tensor(np.asarray(image))
    return Noted(x, note) if note else x


def to_tensor(array: np.ndarray) -> Tensor:
    """uint8 ``(H, W, 3)`` -> float ``(3, H, W)`` in [-1, 1]."""
    return torch.from_numpy(np.array(array, dtype=np.float32)).permute(2, 0, 1).div(127.5).sub(1.0)
