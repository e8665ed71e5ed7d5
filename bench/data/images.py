"""Image datasets read from real files (PNG, JPEG, WebP, BMP, TIFF) in a folder tree.

Layout: ``<root>/<split>/**/<image>`` (ImageNet's ``val/<class>/*.JPEG`` fits as is). Files are
listed in sorted order; ``max_items`` takes a fixed pseudo-random subset (seed 0), so a "5k subset"
is the same everywhere.

Pixels become 8-bit RGB as the papers' loaders do it (``Image.open(f).convert("RGB")``: alpha is
dropped, palettes expanded, CMYK and grayscale converted by PIL), with one exception where PIL's
conversion is wrong: 16-bit grayscale (PIL modes ``I;16*`` and ``I``) keeps its high byte, as
scikit-image's ``img_as_ubyte`` does, instead of clipping every value above 255 to white (PIL
already reads 16-bit RGB PNGs as their high bytes). EXIF orientation is ignored, as in the papers.
A file that cannot be read or decoded is `Skipped` with the reason, never an exception.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import BenchError
from .items import FileItems, Item, Skipped
from .transforms import preprocess

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, zlib.error, Image.DecompressionBombError)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image -> 8-bit RGB (see the module docstring)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        pixels = np.asarray(image)
        if pixels.min() < 0 or pixels.max() > 65535:
            raise ValueError(f"{image.mode} image with values outside 16 bits ({pixels.min()}..{pixels.max()})")
        return Image.fromarray((pixels.astype(np.uint32) >> 8).astype(np.uint8), mode="L").convert("RGB")
    if image.mode == "F":
        raise ValueError("floating-point image (mode F): no defined 8-bit conversion")
    return image.convert("RGB")


def read_rgb(source) -> Image.Image:
    """Open, fully decode and convert an image file (path or file object); raises one of `UNREADABLE`."""
    with Image.open(source) as image:
        image.load()
        return to_rgb(image)


class ImageFiles(FileItems):
    """Images from a list of paths, preprocessed to ``(3, resolution, resolution)`` in [-1, 1]; an
    unreadable file is `Skipped`."""

    def __init__(self, paths: list[Path], resolution: int, preprocessing: str, center_crop: int | None = None):
        self.paths = paths
        self.resolution = resolution
        self.preprocessing = preprocessing
        self.center_crop = center_crop

    def __getitem__(self, index: int) -> Item:
        try:
            image = read_rgb(self.paths[index])
        except UNREADABLE as error:
            return Skipped(index, self.source(index), f"{type(error).__name__}: {error}")
        return preprocess(image, self.resolution, self.preprocessing, self.source(index), self.center_crop)


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise BenchError(f"dataset folder {folder} does not exist: download the data and set suite.dataset.root")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise BenchError(f"dataset folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths


def subset(items: list, max_items: int | None) -> list:
    """A fixed pseudo-random subset of ``max_items`` items (seed 0), in their order."""
    if max_items is None or max_items >= len(items):
        return items
    keep = torch.randperm(len(items), generator=torch.Generator().manual_seed(0))[:max_items]
    return [items[i] for i in sorted(keep.tolist())]


def image_folder(cfg, split: str) -> ImageFiles:
    if cfg.root is None:
        raise BenchError("suite.dataset.root is not set: point it at the folder holding the splits")
    paths = subset(list_images(Path(cfg.root).expanduser() / split), cfg.max_items)
    return ImageFiles(paths, cfg.resolution, cfg.preprocessing, cfg.center_crop)
