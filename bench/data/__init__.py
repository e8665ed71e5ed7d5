"""Datasets in real formats, and the built-in offline suite.

Every dataset yields float tensors in [-1, 1]: images ``(3, H, W)``. ``build_dataset(cfg, split)``
picks the loader named by ``cfg.kind``.
"""

from __future__ import annotations

import os
from typing import Callable

from torch.utils.data import Dataset

from ..errors import BenchError
from .audio import audio_folder, builtin_speech, librispeech, libritts
from .builtin import builtin_photos
from .celeba import celeba
from .images import image_folder
from .webdataset import webdataset_images

_DATASETS: dict[str, Callable[..., Dataset]] = {
    "audio_folder": audio_folder,
    "builtin_photos": builtin_photos,
    "builtin_speech": builtin_speech,
    "celeba": celeba,
    "image_folder": image_folder,
    "librispeech": librispeech,
    "libritts": libritts,
    "webdataset": webdataset_images,
}


def default_workers() -> int:
    """DataLoader workers when a suite sets none: one per CPU this process may use, one left for the
    main process, at most 8."""
    return max(0, min(8, len(os.sched_getaffinity(0)) - 1))


def build_dataset(cfg, split: str) -> Dataset:
    """``cfg`` is a `bench.config.DatasetConfig`; ``split`` e.g. "train", "val", "test"."""
    if cfg.kind not in _DATASETS:
        raise BenchError(f"unknown dataset kind {cfg.kind!r}; known: {', '.join(sorted(_DATASETS))}")
    return _DATASETS[cfg.kind](cfg, split)
