"""Evaluation metrics for tokenizers, as mergeable torchmetrics ``Metric`` objects.

Every metric has a ``protocol`` string stating its convention, recorded with each result.
``build_metrics`` returns the metrics that can run here and, for the others, why not (missing
weights are never downloaded), so a run completes and records e.g. "rFID: not available: ...".
Feed batches with ``update`` (or ``update_all``), not ``forward``: ``forward`` also computes a
per-batch value, and FID's ``compute`` costs a 2048-d eigendecomposition (tens of seconds on CPU).
Shards combine with ``merge_state`` or, under DDP, torchmetrics' own sync.
"""

from __future__ import annotations

from torch import Tensor
from torchmetrics import Metric


class MetricUnavailable(RuntimeError):
    """A metric cannot be built here (e.g. its network weights are not on disk)."""


from bench.data.items import DataAccount
from bench.metrics.codebook import CodebookUsage
from bench.metrics.fid import BACKENDS, FID
from bench.metrics.lpips import LPIPS
from bench.metrics.reconstruction import PSNR, SSIM, SSIMLlamaGen

METRIC_NAMES = ("psnr", "ssim", "ssim_llamagen", "lpips", "rfid", "rfid_clean", "rfid_pytorch", "usage")


def build_metrics(
    names: list[str],
    *,
    codebook_size: int,
    num_codebooks: int,
    usage_queue: int = 65536,
    fid_weights: dict[str, str] | None = None,
    fid_references: dict[str, dict[str, Tensor]] | None = None,
) -> tuple[dict[str, Metric], dict[str, str]]:
    """Build the metrics in ``names`` (from ``METRIC_NAMES``): ``(available, {name: reason})``.
    ``fid_weights`` / ``fid_references``: per rFID backend, an explicit weight file / cached real statistics."""
    fid_weights, fid_references = fid_weights or {}, fid_references or {}

    def fid(backend: str):
        return lambda: FID(backend, weights_path=fid_weights.get(backend), reference=fid_references.get(backend))

    factories = {
        "psnr": PSNR,
        "ssim": SSIM,
        "ssim_llamagen": SSIMLlamaGen,
        "lpips": LPIPS,
        **{backend: fid(backend) for backend in BACKENDS},
        "usage": lambda: CodebookUsage(codebook_size, num_codebooks, queue_size=usage_queue),
    }
    unknown = [name for name in names if name not in factories]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {list(METRIC_NAMES)}")
    metrics, unavailable = {}, {}
    for name in names:
        try:
            metrics[name] = factories[name]()
        except MetricUnavailable as err:
            unavailable[name] = str(err)
    return metrics, unavailable


def update_all(metrics: dict[str, Metric], real: Tensor, fake: Tensor, codes: Tensor | None = None) -> None:
    """Feed a batch to every metric: ``codes`` ``(..., num_codebooks)`` to ``CodebookUsage``,
    ``real`` and ``fake`` (floats in [-1, 1]) to the others (the evaluation pass feeds `DataAccount`)."""
    for metric in metrics.values():
        if isinstance(metric, DataAccount):
            continue
        if isinstance(metric, CodebookUsage):
            if codes is not None:
                metric.update(codes)
        else:
            metric.update(real, fake)


__all__ = [
    "FID",
    "LPIPS",
    "METRIC_NAMES",
    "PSNR",
    "SSIM",
    "SSIMLlamaGen",
    "CodebookUsage",
    "MetricUnavailable",
    "build_metrics",
    "update_all",
]
