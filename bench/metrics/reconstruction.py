"""PSNR and SSIM of reconstructions, averaged per image.

Convention (recorded with every result through ``protocol``):

* Both images are quantised to 8-bit levels first (see ``_convert``), as if saved as PNG.
* PSNR is computed per image with data range 1 on [0, 1] (the same as 255 on uint8) and then
  averaged over images, as papers report it. torchmetrics' ``PeakSignalNoiseRatio`` by default
  pools the squared error over the whole batch instead, which gives a different (lower) number on
  batches of mixed quality. An exact reconstruction has infinite PSNR; the mean is then ``inf``.
* SSIM (Wang et al., 2004) is torchmetrics' convention: RGB, gaussian window of size 11 and
  sigma 1.5, data range 1, reflect padding, mean of the whole SSIM map over pixels and channels,
  per image, then averaged over images. It is computed here in float64 with the gaussian applied
  as two 1-D passes (the 2-D window is their outer product), equal to torchmetrics run in float64
  and faster than torchmetrics in float32 (`python -m bench.perf eval`), whose map is off by up to
  ~2e-3 on photographs.
  scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=
  False)`` averages the same map without its 5-pixel border.
* ``ssim_llamagen``: the SSIM LlamaGen (and TiTok, MaskBit) publish: scikit-image's defaults (7x7
  uniform window, sample covariance, map cropped by 3 pixels, channel mean) with ``data_range=2.0``
  on images in [0, 1], which enlarges the constants C1, C2 four-fold and raises the score (LlamaGen's
  ``reconstruction_vq_ddp.py``). Only comparable with numbers measured the same way.

Both metrics keep a float64 sum and a count, so shards merge by summing.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio

from bench.metrics._convert import to_unit

SSIM_OPTIONS = {"gaussian_kernel": True, "sigma": 1.5, "kernel_size": 11, "data_range": 1.0}  # torchmetrics' names


def gaussian_taps(size: int = 11, sigma: float = 1.5) -> Tensor:
    """The normalised 1-D gaussian of torchmetrics' SSIM window, float64 ``(size,)``."""
    offsets = torch.arange((1 - size) / 2, (1 + size) / 2, dtype=torch.float64)
    taps = torch.exp(-((offsets / sigma) ** 2) / 2)
    return taps / taps.sum()


def filter_valid(x: Tensor, taps: Tensor, dim: int) -> Tensor:
    """``x`` correlated with the 1-D ``taps`` along ``dim``, full windows only: a sum of shifted
    slices (float64 convolutions have no fast kernel on CPU; this is ~8x faster than ``conv2d``)."""
    length = x.shape[dim] - len(taps) + 1
    out = x.narrow(dim, 0, length) * taps[0]
    for j in range(1, len(taps)):
        out.add_(x.narrow(dim, j, length), alpha=float(taps[j]))
    return out


def ssim_map(x: Tensor, y: Tensor, taps: Tensor, *, data_range: float, sample_covariance: bool = False, reflect: bool = True) -> Tensor:
    """SSIM map of float64 images ``(N, C, H, W)`` with the separable window ``taps`` ``(k,)``:
    ``reflect`` pads by ``k // 2`` (the map is ``H x W``), else only full windows (``H-k+1 x W-k+1``).
    One channel of one image at a time: its five filtered planes stay in the CPU's cache."""
    n, c = x.shape[:2]
    maps = [_plane_map(a, b, taps, data_range, sample_covariance, reflect) for a, b in zip(x.flatten(0, 1), y.flatten(0, 1))]
    return torch.stack(maps).view(n, c, *maps[0].shape)


def _plane_map(x: Tensor, y: Tensor, taps: Tensor, data_range: float, sample_covariance: bool, reflect: bool) -> Tensor:
    """`ssim_map` of one plane ``(H, W)``."""
    k = len(taps)
    planes = torch.stack([x, y, x * x, y * y, x * y])
    if reflect:
        planes = F.pad(planes[:, None], (k // 2,) * 4, mode="reflect")[:, 0]
    mu_x, mu_y, xx, yy, xy = filter_valid(filter_valid(planes, taps, dim=-1), taps, dim=-2)
    norm = k * k / (k * k - 1) if sample_covariance else 1.0
    var_x, var_y, cov = norm * (xx - mu_x**2), norm * (yy - mu_y**2), norm * (xy - mu_x * mu_y)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))


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
    """Mean over images of per-image RGB SSIM (gaussian 11, sigma 1.5, data range 1), float64."""

    higher_is_better = True
    compute_dtype = torch.float64
    protocol = (
        "SSIM: uint8-rounded inputs, RGB, gaussian window 11 sigma 1.5, data range 1, "
        "torchmetrics (reflect padding, whole map), float64, per image, mean over images"
    )

    def per_image(self, real: Tensor, fake: Tensor) -> Tensor:
        return ssim_map(fake, real, gaussian_taps(), data_range=1.0).mean(dim=(1, 2, 3))


class SSIMLlamaGen(_PerImageMean):
    """LlamaGen's published SSIM: scikit-image defaults (uniform 7x7, sample covariance, 3-pixel
    border cropped) with ``data_range=2.0`` on [0, 1] images, float64."""

    higher_is_better = True
    compute_dtype = torch.float64
    protocol = (
        "SSIM (LlamaGen's): uint8-rounded inputs in [0, 1], skimage structural_similarity defaults (uniform 7x7 window, "
        "sample covariance, 3-pixel border cropped, mean over channels) with data_range=2.0, per image, mean over images"
    )

    def per_image(self, real: Tensor, fake: Tensor) -> Tensor:
        return ssim_map(fake, real, torch.full((7,), 1 / 7, dtype=torch.float64), data_range=2.0, sample_covariance=True, reflect=False).mean(dim=(1, 2, 3))
