"""Image datasets read from real files (PNG, JPEG, WebP, BMP, TIFF) in a folder tree.

Layout: ``<root>/<split>/**/<image>`` (ImageNet's ``val/<class>/*.JPEG`` fits as is). Files are
listed in sorted order; ``max_items`` takes a fixed pseudo-random subset (seed 0), so a "5k subset"
is the same everywhere.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import BenchError
from .transforms import preprocess

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


class ImageFiles(Dataset):
    """Images from a list of paths, preprocessed to ``(3, resolution, resolution)`` in [-1, 1]."""

    def __init__(self, paths: list[Path], resolution: int, preprocessing: str, center_crop: int | None = None):
        self.paths = paths
        self.resolution = resolution
        self.preprocessing = preprocessing
        self.center_crop = center_crop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tensor:
        path = self.paths[index]
        try:
            with Image.open(path) as image:
                image.load()
                return preprocess(image, self.resolution, self.preprocessing, str(path), self.center_crop)
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise BenchError(f"cannot read image {path}: {error}") from error


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise BenchError(f"dataset folder {folder} does not exist: download the data and set suite.dataset.root")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise BenchError(f"dataset folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths


def subset(paths: list[Path], max_items: int | None) -> list[Path]:
    """A fixed pseudo-random subset of ``max_items`` paths (seed 0), in sorted order."""
    if max_items is None or max_items >= len(paths):
        return paths
    keep = torch.randperm(len(paths), generator=torch.Generator().manual_seed(0))[:max_items]
    return [paths[i] for i in sorted(keep.tolist())]


def image_folder(cfg, split: str) -> ImageFiles:
    if cfg.root is None:
        raise BenchError("suite.dataset.root is not set: point it at the folder holding the splits")
    paths = subset(list_images(Path(cfg.root).expanduser() / split), cfg.max_items)
    return ImageFiles(paths, cfg.resolution, cfg.preprocessing, cfg.center_crop)
