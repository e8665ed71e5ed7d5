"""CelebA (Liu et al. 2015) from its official files: ``<root>/img_align_celeba/*.jpg`` and
``<root>/list_eval_partition.txt`` (``<file> <0|1|2>``: train, valid, test; the Kaggle copy's
``list_eval_partition.csv`` works too). The test split has 19,962 images.

Faces are center-cropped to ``center_crop`` pixels (140 in most 64x64 CelebA work) before the
suite's preprocessing resizes them.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import BenchError
from .images import ImageFiles, subset

PARTITIONS = {"train": "0", "valid": "1", "val": "1", "test": "2"}


def read_partition(root: Path) -> dict[str, list[str]]:
    for name in ("list_eval_partition.txt", "list_eval_partition.csv"):
        path = root / name
        if path.exists():
            break
    else:
        raise BenchError(f"CelebA split file list_eval_partition.txt not found in {root}: download CelebA (Align&Cropped) there")
    splits: dict[str, list[str]] = {"0": [], "1": [], "2": []}
    for line in path.read_text().splitlines():
        fields = line.replace(",", " ").split()
        if len(fields) == 2 and fields[1] in splits:
            splits[fields[1]].append(fields[0])
    return splits


def celeba(cfg, split: str) -> ImageFiles:
    if cfg.root is None:
        raise BenchError("suite.dataset.root is not set: point it at the CelebA folder")
    if split not in PARTITIONS:
        raise BenchError(f"CelebA has splits {', '.join(PARTITIONS)}, not {split!r}")
    root = Path(cfg.root).expanduser()
    images = root / "img_align_celeba"
    if not images.is_dir():
        raise BenchError(f"dataset folder {images} does not exist: download CelebA (Align&Cropped) into {root}")
    names = read_partition(root)[PARTITIONS[split]]
    return ImageFiles(subset([images / name for name in names], cfg.max_items), cfg.resolution, cfg.preprocessing, cfg.center_crop)
