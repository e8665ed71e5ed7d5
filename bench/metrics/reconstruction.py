"""PSNR and SSIM of reconstructions, averaged per image.

Convention (recorded with every result through ``protocol``):

* Both images are quantised to 8-bit levels first (see ``_convert``), as if saved as PNG.
* PSNR is computed per image with data range 1 on [0, 1] (the same as 255 on uint8) and then
  averaged over images, as papers report it. torchmetrics' ``PeakSignalNoiseRatio`` by default
  pools the squared error over the whole batch instead, which gives a different (lower) number on
  batches of mixed quality. An exact reconstruction has infinite PSNR; the mean is then ``inf``.
* SSIM (Wang et al., 2004) is torchmetrics' convention: RGB, gaussian window of size 11 and
  sigma 1.5, data range 1, reflect padding, mean of the whole SSIM map over pixels and channels,
  per image, then averaged over images. scikit-image's ``structural_similarity(gaussian_weights=
  True, sigma=1.5, use_sample_covariance=False)`` instead averages the map without its 5-pixel
  border; on that interior the two maps agree (to float32 precision).

Both metrics keep a float64 sum and a count, so shards merge by summing.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from bench.metrics._convert import to_unit

SSIM_OPTIONS = {"gaussian_kernel": True, "sigma": 1.5, "kernel_size": 11, "data_range": 1.0}


class _PerImageMean(Metric):
    """Mean over images of a per-image score; states ``total`` (float64) and ``count``."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def per_image(self, real: Tensor, fake: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Scores ``(N,)`` of images in [0, 1], ``(N, 3, H, W)``."""
        raise NotImplementedError

    def update(self, real: Tensor, fake: Tensor) -> None:
        """``real``, ``fake``: floats in [-1, 1], ``(B, 3, H, W)`` or ``(B, 3, T, H, W)``."""
        if real.shape != fake.shape:
            raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
        scores = self.per_image(to_unit(real, self.compute_dtype), to_unit(fake, self.compute_dtype))
        self.total += scores.double().sum()
        self.count += scores.numel()

    def compute(self) -> Tensor:
        return self.total / self.count


class PSNR(_PerImageMean):
    """Mean over images of per-image PSNR (dB) on 8-bit levels, data range 1."""

    higher_is_better = True
    compute_dtype = torch.float64
    protocol = "PSNR: uint8-rounded inputs, data range 1 (255 levels), per image, mean over images"

    def per_image(self, real: Tensor, fake: Tensor) -> Tensor:
        return peak_signal_noise_ratio(fake, real, data_range=1.0, reduction="none", dim=(1, 2, 3))


class SSIM(_PerImageMean):
    """Mean over images of per-image RGB SSIM (gaussian 11, sigma 1.5, data range 1)."""

    higher_is_better = True
    compute_dtype = torch.float32
    protocol = (
        "SSIM: uint8-rounded inputs, RGB, gaussian window 11 sigma 1.5, data range 1, "
        "torchmetrics (reflect padding, whole map), per image, mean over images"
    )

    def per_image(self, real: Tensor, fake: Tensor) -> Tensor:
        return structural_similarity_index_measure(fake, real, reduction="none", **SSIM_OPTIONS)
