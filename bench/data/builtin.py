"""The built-in offline suite: crops of the real photographs that scikit-image ships.

No download, no files of ours: the photographs (astronaut, coffee, cat, rocket, ...) are in every
scikit-image install. Each photograph is resized so its shorter side is ``8 x resolution`` pixels
and cut into ``resolution x resolution`` crops starting every half crop, so each photograph is seen
at four alignments of the tokenizer's grid (four times the crops of non-overlapping tiles: more
training data, and test metrics and codebook usage averaged over more tokens, so a tokenizer's
numbers move less with float noise). The split is by photograph, so test crops come from pictures
the tokenizer never saw in training.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from skimage import data as skimage_data

from ..errors import BenchError
from .transforms import to_tensor
from .tensors import ImageTensors

PHOTOS = {
    "train": ("astronaut", "coffee", "hubble_deep_field", "immunohistochemistry", "stereo_motorcycle", "retina"),
    "test": ("chelsea", "rocket"),
}
TILES_PER_SIDE = 8  # the shorter side is this many crops long
CROP_STRIDE_DIVISOR = 2  # crops start every resolution / 2 pixels


def photo_crops(name: str, resolution: int, stride: int) -> torch.Tensor:
    """The ``(3, resolution, resolution)`` crops of one photograph starting every ``stride`` pixels,
    row-major, ``(N, 3, r, r)``."""
    pixels = getattr(skimage_data, name)()
    if isinstance(pixels, tuple):  # stereo_motorcycle: (left, right, disparity); take the left view
        pixels = pixels[0]
    image = Image.fromarray(pixels)
    short = TILES_PER_SIDE * resolution
    scale = short / min(image.size)
    image = image.convert("RGB").resize((round(image.size[0] * scale), round(image.size[1] * scale)), Image.BICUBIC)
    pixels = np.asarray(image)
    crops = [
        to_tensor(pixels[top : top + resolution, left : left + resolution])
        for top in range(0, pixels.shape[0] - resolution + 1, stride)
        for left in range(0, pixels.shape[1] - resolution + 1, stride)
    ]
    return torch.stack(crops)


def builtin_photos(cfg, split: str) -> ImageTensors:
    if split not in PHOTOS:
        raise BenchError(f"the built-in suite has splits {', '.join(PHOTOS)}, not {split!r}")
    stride = cfg.resolution // CROP_STRIDE_DIVISOR
    crops = torch.cat([photo_crops(name, cfg.resolution, stride) for name in PHOTOS[split]])
    if cfg.max_items is not None:
        crops = crops[: cfg.max_items]
    return ImageTensors(crops)
