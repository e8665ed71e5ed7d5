"""Cached real-side rFID statistics: computed once per dataset, preprocessing and Inception backend,
reused by every later run and every tokenizer of the suite (the real images' Inception pass is half
of rFID's cost).

The key is a sha256 of what decides those statistics: the items (the dataset's ``fingerprint``:
file paths and sizes, or the values of in-memory items), the resolution, preprocessing and center
crop, the backend and its weight file's sha256. A file at ``<output_dir>/<suite>/fid_reference/
<backend>-<key>.pt`` holds the float64 sums and the count; it is written atomically, by a run that
computed them in one process (a DDP rank holds only its part).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from torch import Tensor

from . import checkpoints
from .data.items import sha256_text
from .metrics.fid import FID

log = logging.getLogger("bench.fid_reference")


def cache_file(folder: Path, metric: FID, dataset, dataset_cfg) -> Path | None:
    """Where ``metric``'s reference statistics for ``dataset`` are cached (None: the dataset cannot name its items)."""
    if not hasattr(dataset, "fingerprint"):
        return None
    decided_by = {"items": dataset.fingerprint(), "resolution": dataset_cfg.resolution, "preprocessing": dataset_cfg.preprocessing,
                  "center_crop": dataset_cfg.center_crop, "backend": metric.backend.metric, "weights_sha256": metric.weights_sha256}  # fmt: skip
    return folder / f"{metric.backend.metric}-{sha256_text(json.dumps(decided_by, sort_keys=True))[:16]}.pt"


def load_references(metrics: dict, folder: Path, dataset, dataset_cfg) -> dict[str, dict[str, Tensor]]:
    """``{backend: cached real states}`` for the rFID metrics among ``metrics`` whose cache exists."""
    found = {}
    for name, metric in metrics.items():
        path = cache_file(folder, metric, dataset, dataset_cfg) if isinstance(metric, FID) else None
        if path is not None and path.exists():
            found[name] = checkpoints.load(path)
            log.info("%s: real-image statistics from %s", name, path)
    return found


def save_references(metrics: dict, folder: Path, dataset, dataset_cfg) -> None:
    """Cache the real side of every rFID metric that computed it in this run."""
    for metric in metrics.values():
        if isinstance(metric, FID) and metric.cached_reference is None:
            path = cache_file(folder, metric, dataset, dataset_cfg)
            if path is not None and not path.exists():
                checkpoints.save(metric.reference(), path)
                log.info("%s: cached real-image statistics in %s", metric.backend.metric, path)
