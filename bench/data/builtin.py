"""The built-in offline suite: crops of the real photographs that scikit-image ships.

No download, no files of ours: the photographs (astronaut, coffee, cat, rocket, ...) are in every
scikit-image install. Each photograph is resized so its shorter side is ``8 x resolution`` pixels
and tiled into non-overlapping ``resolution x resolution`` crops. The split is by photograph, so
test crops come from pictures the tokenizer never saw in training.
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
TILES_PER_SIDE = 8


def photo_crops(name: str, resolution: int) -> torch.Tensor:
    """All ``(3, resolution, resolution)`` crops of one photograph, row-major, ``(N, 3, r, r)``."""
    pixels = getattr(skimage_data, name)()
    if isinstance(pixels, tuple):  # stereo_motorcycle: (left, right, disparity); take the left view
        pixels = pixels[0]
    image = Image.fromarray(pixels)
    short = TILES_PER_SIDE * resolution
    scale = short / min(image.size)
    image = image.convert("RGB").resize((round(image.size[0] * scale), round(image.size[1] * scale)), Image.BICUBIC)
    pixels = np.asarray(image)
    rows, cols = pixels.shape[0] // resolution, pixels.shape[1] // resolution
    crops = [
        to_tensor(pixels[r * resolution : (r + 1) * resolution, c * resolution : (c + 1) * resolution])
        for r in range(rows)
        for c in range(cols)
    ]
    return torch.stack(crops)


def builtin_photos(cfg, split: str) -> ImageTensors:
    if split not in PHOTOS:
        raise BenchError(f"the built-in suite has splits {', '.join(PHOTOS)}, not {split!r}")
    crops = torch.cat([photo_crops(name, cfg.resolution) for name in PHOTOS[split]])
    if cfg.max_items is not None:
        crops = crops[: cfg.max_items]
    return ImageTensors(crops)
