"""Image preprocessing as the papers do it; the name of the one used is recorded with each result.

* ``resize_center_crop``: bicubic resize of the shorter side to the target (antialiased, PIL), then a
  center crop (torchvision ``Resize`` + ``CenterCrop``; taming, TiTok, Open-MAGVIT2).
* ``adm_center_crop``: ADM's ``center_crop_arr`` (Dhariwal & Nichol 2021; LlamaGen): halve with a box
  filter while the shorter side is >= 2x the target, bicubic resize so it equals the target, center crop.
* ``none``: the image must already have the target size.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..errors import BenchError


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    scale = size / min(width, height)
    new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
    return _center_crop(image.resize(new_size, Image.BICUBIC), size)


def adm_center_crop(image: Image.Image, size: int) -> Image.Image:
    while min(*image.size) >= 2 * size:
        image = image.resize(tuple(x // 2 for x in image.size), Image.BOX)
    scale = size / min(*image.size)
    image = image.resize(tuple(round(x * scale) for x in image.size), Image.BICUBIC)
    return _center_crop(image, size)


def _center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


PREPROCESSING = {
    "resize_center_crop": resize_center_crop,
    "adm_center_crop": adm_center_crop,
    "none": None,
}


def preprocess(image: Image.Image, size: int, method: str, source: str, center_crop: int | None = None) -> Tensor:
    """PIL image -> ``(3, size, size)`` float tensor in [-1, 1]; ``center_crop`` first crops a
    ``center_crop`` square from the middle (CelebA's 140-pixel face crop)."""
    if method not in PREPROCESSING:
        raise BenchError(f"unknown preprocessing {method!r}; known: {', '.join(PREPROCESSING)}")
    image = image.convert("RGB")
    if center_crop is not None:
        image = _center_crop(image, center_crop)
    transform = PREPROCESSING[method]
    if transform is not None:
        image = transform(image, size)
    elif image.size != (size, size):
        raise BenchError(f"{source}: image is {image.size[0]}x{image.size[1]}, expected {size}x{size} (preprocessing=none)")
    return to_tensor(np.asarray(image))


def to_tensor(array: np.ndarray) -> Tensor:
    """uint8 ``(H, W, 3)`` -> float ``(3, H, W)`` in [-1, 1]."""
    return torch.from_numpy(np.array(array, dtype=np.float32)).permute(2, 0, 1).div(127.5).sub(1.0)
