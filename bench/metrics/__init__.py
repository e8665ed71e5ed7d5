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
from bench.metrics.audio import PESQ, SISDR, STOI, MelDistance, STFTDistance
from bench.metrics.codebook import CodebookUsage, QuantizationError
from bench.metrics.fid import BACKENDS, FID
from bench.metrics.lpips import LPIPS
from bench.metrics.reconstruction import PSNR, SSIM, SSIMLlamaGen

IMAGE_METRICS = ("psnr", "ssim", "ssim_llamagen", "lpips", "rfid", "rfid_clean", "rfid_pytorch")
AUDIO_METRICS = ("mel_distance", "stft_distance", "si_sdr", "pesq", "stoi")
CODE_METRICS = ("usage", "quantization_error")  # from the codes and the encoder alone: also for tokenizers without a decoder
METRIC_NAMES = (*IMAGE_METRICS, *AUDIO_METRICS, *CODE_METRICS)


def build_metrics(
    names: list[str],
    *,
    codebook_size: int,
    num_codebooks: int,
    usage_queue: int = 65536,
    fid_weights: dict[str, str] | None = None,
    fid_references: dict[str, dict[str, Tensor]] | None = None,
    sample_rate: int | None = None,
    reconstructs: bool = True,
) -> tuple[dict[str, Metric], dict[str, str]]:
    """Build the metrics in ``names`` (from ``METRIC_NAMES``): ``(available, {name: reason})``.
    ``fid_weights`` / ``fid_references``: per rFID backend, an explicit weight file / cached real
    statistics; ``sample_rate``: the audio metrics'; a tokenizer that does not ``reconstruct`` gets
    only the `CODE_METRICS` (the others are listed as unavailable, with the reason)."""
    fid_weights, fid_references = fid_weights or {}, fid_references or {}

    def fid(backend: str):
        return lambda: FID(backend, weights_path=fid_weights.get(backend), reference=fid_references.get(backend))

    factories = {
        "psnr": PSNR,
        "ssim": SSIM,
        "ssim_llamagen": SSIMLlamaGen,
        "lpips": LPIPS,
        **{backend: fid(backend) for backend in BACKENDS},
        "mel_distance": lambda: MelDistance(sample_rate),
        "stft_distance": lambda: STFTDistance(sample_rate),
        "si_sdr": lambda: SISDR(sample_rate),
        "pesq": lambda: PESQ(sample_rate),
        "stoi": lambda: STOI(sample_rate),
        "usage": lambda: CodebookUsage(codebook_size, num_codebooks, queue_size=usage_queue),
        "quantization_error": QuantizationError,
    }
    unknown = [name for name in names if name not in factories]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {list(METRIC_NAMES)}")
    metrics, unavailable = {}, {}
    for name in names:
        if not reconstructs and name not in CODE_METRICS:
            unavailable[name] = "the tokenizer has no decoder: nothing to compare with the input"
            continue
        if name in AUDIO_METRICS and sample_rate is None:
            unavailable[name] = "an audio metric, and the tokenizer has no sample rate"
            continue
        try:
            metrics[name] = factories[name]()
        except MetricUnavailable as err:
            unavailable[name] = str(err)
    return metrics, unavailable


def update_all(metrics: dict[str, Metric], real: Tensor, fake: Tensor | None, codes: Tensor | None = None, quantization_error: Tensor | None = None) -> None:
    """Feed a batch to every metric: ``codes`` ``(..., num_codebooks)`` to ``CodebookUsage``, the
    batch's mean squared ``quantization_error`` to `QuantizationError`, ``real`` and ``fake``
    (floats in [-1, 1]) to the others (the evaluation pass feeds `DataAccount`)."""
    for metric in metrics.values():
        if isinstance(metric, DataAccount):
            continue
        if isinstance(metric, QuantizationError):
            if quantization_error is not None:
                metric.update(quantization_error, len(real))
        elif isinstance(metric, CodebookUsage):
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
