"""Reconstruction FID (rFID) with torch-fidelity's Inception-v3 ('inception-v3-compat').

The network is torch-fidelity's ``FeatureExtractorInceptionV3`` (the TF 2015-12-05 Inception graph
ported to PyTorch, with its TF1-compatible bilinear resize to 299) and the features are its
2048-d pool features. Inputs are quantised to 8-bit levels by the shared rounding convention
(``_convert.to_uint8``), as torch-fidelity expects uint8 images.

Weights are never downloaded: pass ``weights_path`` or place the file at
``$TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth`` (``torch.hub.get_dir()``),
otherwise the constructor raises ``MetricUnavailable``.

States, for real and fake separately: feature sum ``(2048,)``, sum of outer products
``(2048, 2048)`` (float64) and the count, all merged by summing. ``compute`` turns them into mean
and unbiased covariance (as ``numpy.cov``) and calls torch-fidelity's own Frechet distance
(``fid_statistics_to_metric``: trace of the square root from the eigenvalues of
``sigma1 @ sigma2``), which agrees with ``scipy.linalg.sqrtm`` to ~1e-15 on full-rank matrices.
That non-symmetric 2048-d eigendecomposition takes 15-60 s on a 2-core CPU, once per ``compute``.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

import torch
from torch import Tensor
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric
from torchmetrics import Metric

from bench.metrics import MetricUnavailable
from bench.metrics._convert import as_frames, to_uint8
from implementations.checkpoints import sha256_of

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
FEATURE_DIM = 2048


def default_inception_path() -> str:
    """``$TORCH_HOME/hub/checkpoints/<INCEPTION_FILE>`` as torch.hub resolves it now."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", INCEPTION_FILE)


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Frechet distance of two Gaussians, ``mu`` ``(d,)`` and ``sigma`` ``(d, d)``, via torch-fidelity."""
    stats = [
        {"mu": mu.detach().cpu().double().numpy(), "sigma": sigma.detach().cpu().double().numpy()}
        for mu, sigma in ((mu1, sigma1), (mu2, sigma2))
    ]
    return float(fid_statistics_to_metric(stats[0], stats[1], verbose=False)[KEY_METRIC_FID])


class FID(Metric):
    """rFID between real images and reconstructions, both floats in [-1, 1]."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, weights_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.weights_path = os.path.abspath(weights_path or default_inception_path())
        if not os.path.isfile(self.weights_path):
            raise MetricUnavailable(
                f"rFID needs the Inception weights {INCEPTION_FILE}, not found at {self.weights_path}: "
                f"download {INCEPTION_URL} and put it there (or pass its path as fid_weights/weights_path)"
            )
        self.inception = FeatureExtractorInceptionV3(
            "inception-v3-compat", [str(FEATURE_DIM)], feature_extractor_weights_path=self.weights_path
        )
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", torch.zeros(FEATURE_DIM, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(
                f"{side}_outer", torch.zeros(FEATURE_DIM, FEATURE_DIM, dtype=torch.float64), dist_reduce_fx="sum"
            )
            self.add_state(f"{side}_count", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    @property
    def protocol(self) -> str:
        return (
            f"rFID: torch-fidelity inception-v3-compat 2048-d pool features ({INCEPTION_FILE}), "
            "uint8-rounded inputs resized by torch-fidelity (TF1 bilinear to 299), "
            "float64 statistics, unbiased covariance, torch-fidelity Frechet distance"
        )

    @cached_property
    def weights_sha256(self) -> str:
        """SHA-256 of the Inception weights file, for the run record."""
        return sha256_of(self.weights_path)

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """Floats in [-1, 1] ``(B, 3, H, W)`` or ``(B, 3, T, H, W)`` -> float64 features ``(N, 2048)``."""
        return self.inception(to_uint8(as_frames(images)))[0].double()

    def _accumulate(self, side: str, feats: Tensor) -> None:
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + feats.sum(dim=0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + feats.T @ feats)
        setattr(self, f"{side}_count", getattr(self, f"{side}_count") + feats.shape[0])

    def update(self, real: Tensor, fake: Tensor) -> None:
        """``real``, ``fake``: floats in [-1, 1], ``(B, 3, H, W)`` or ``(B, 3, T, H, W)``."""
        self._accumulate("real", self.features(real))
        self._accumulate("fake", self.features(fake))

    def _gaussian(self, side: str) -> tuple[Tensor, Tensor]:
        n = getattr(self, f"{side}_count").double()
        if n < 2:
            raise RuntimeError(f"FID needs at least 2 {side} images, got {int(n)}")
        mu = getattr(self, f"{side}_sum") / n
        sigma = (getattr(self, f"{side}_outer") - n * torch.outer(mu, mu)) / (n - 1)
        return mu, sigma

    def compute(self) -> Tensor:
        value = frechet_distance(*self._gaussian("real"), *self._gaussian("fake"))
        return torch.tensor(value, dtype=torch.float64)


__all__ = ["FID", "INCEPTION_FILE", "INCEPTION_URL", "default_inception_path", "frechet_distance"]
