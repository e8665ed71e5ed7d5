"""Reconstruction FID (rFID), with the Inception backend the field's numbers were made with.

The same reconstructions score differently under the three Inception ports papers use, so the
backend is part of the metric's name, and its weight file's sha256 is part of its protocol:

* ``rfid`` (default): torch-fidelity's ``inception-v3-compat`` (the TF 2015-12-05 graph ported to
  PyTorch, TF1-compatible bilinear resize to 299), weights ``weights-inception-2015-12-05-6726825d.pth``.
* ``rfid_clean``: clean-fid's ``clean`` mode (Parmar et al. 2022): PIL bicubic resize to 299 of each
  float channel, then the TF graph as TorchScript (``inception-2015-12-05.pt``).
* ``rfid_pytorch``: pytorch-fid's FID Inception (``pt_inception-2015-12-05-6726825d.pth``), inputs
  in [0, 1] resized by ``F.interpolate`` (bilinear, ``align_corners=False``); LlamaGen's and
  MaskBit's ADM-suite numbers are TF, so this one is for comparing with pytorch-fid tables.

Inputs are quantised to 8-bit levels first (``_convert.to_uint8``), as each package reads PNGs.
Weights are found, never downloaded (`implementations.checkpoints.find_weights`: an explicit path,
the torch hub cache, clean-fid's folder); otherwise the constructor raises `MetricUnavailable`.

States, for real and fake separately: feature sum ``(2048,)``, sum of outer products ``(2048, 2048)``
(float64) and the count, all merged by summing. ``compute`` turns them into mean and unbiased
covariance (as ``numpy.cov``) and calls torch-fidelity's Frechet distance (trace of the square root
from the eigenvalues of ``sigma1 @ sigma2``; 15-60 s on a 2-core CPU). The real side of a dataset
depends only on the data, its preprocessing and the backend: `FID.reference` / ``reference=`` let
a run reuse statistics cached by an earlier one instead of computing them again.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric
from torchmetrics import Metric

from bench.metrics import MetricUnavailable
from bench.metrics._convert import as_frames, to_uint8
from implementations.checkpoints import MissingWeightsError, WeightFile, find_weights, sha256_of

FEATURE_DIM = 2048
Extractor = Callable[[Tensor], Tensor]  # uint8 (N, 3, H, W) -> float (N, 2048)


@dataclass(frozen=True)
class Backend:
    """One Inception port: its weight file and how it turns uint8 images into 2048-d features."""

    metric: str
    package: str  # whose port: the name a reference row's ``fid_backend`` gives (bench.leaderboard)
    weights: WeightFile
    protocol: str
    build: Callable[[Path], Extractor]


def _torch_fidelity(path: Path) -> Extractor:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    net = FeatureExtractorInceptionV3("inception-v3-compat", [str(FEATURE_DIM)], feature_extractor_weights_path=str(path)).eval()
    return lambda images: net(images)[0]


@contextmanager
def _pytorch_fid_weights_from(path: Path):
    """pytorch-fid's constructor fetches its weights by URL; hand it the found file instead."""
    import pytorch_fid.inception as module

    fetch = module.load_state_dict_from_url
    module.load_state_dict_from_url = lambda *args, **kwargs: torch.load(path, map_location="cpu", weights_only=True)
    try:
        yield module
    finally:
        module.load_state_dict_from_url = fetch


def _pytorch_fid(path: Path) -> Extractor:
    with _pytorch_fid_weights_from(path) as module:
        net = module.InceptionV3([module.InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]]).eval()
    return lambda images: net(images.float() / 255)[0].flatten(1)


def _clean_fid(path: Path) -> Extractor:
    from cleanfid.inception_torchscript import InceptionV3W
    from cleanfid.resize import make_resizer

    if path.name != "inception-2015-12-05.pt":
        raise MetricUnavailable(f"{path}: clean-fid loads its TorchScript Inception by the name inception-2015-12-05.pt")
    net = InceptionV3W(str(path.parent), download=False).eval()
    resize = make_resizer("PIL", False, "bicubic", (299, 299))  # clean-fid's "clean" mode

    def features(images: Tensor) -> Tensor:
        resized = np.stack([resize(image) for image in images.permute(0, 2, 3, 1).cpu().numpy()])
        return net(torch.from_numpy(resized).permute(0, 3, 1, 2).to(images.device))

    return features


BACKENDS = {
    backend.metric: backend
    for backend in (
        Backend("rfid", "torch-fidelity", WeightFile("weights-inception-2015-12-05-6726825d.pth", "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
                                   sha256="6726825d", licence="Apache-2.0 (TF Inception 2015-12-05)"),
                "torch-fidelity inception-v3-compat 2048-d pool features, its TF1 bilinear resize to 299", _torch_fidelity),
        Backend("rfid_clean", "clean-fid", WeightFile("inception-2015-12-05.pt", "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
                                         also_at=("/tmp/inception-2015-12-05.pt",), licence="Apache-2.0 (TF Inception 2015-12-05)",
                                         notes="clean-fid keeps it in /tmp"),
                "clean-fid 'clean' mode: PIL bicubic resize to 299 per float channel, TF Inception (TorchScript) 2048-d pool features", _clean_fid),
        Backend("rfid_pytorch", "pytorch-fid", WeightFile("pt_inception-2015-12-05-6726825d.pth", "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
                                           sha256="6726825d", licence="Apache-2.0 (TF Inception 2015-12-05)"),
                "pytorch-fid FID Inception 2048-d pool features, inputs in [0, 1] bilinearly resized to 299 (align_corners=False)", _pytorch_fid),
    )
}  # fmt: skip


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Frechet distance of two Gaussians, ``mu`` ``(d,)`` and ``sigma`` ``(d, d)``, via torch-fidelity."""
    stats = [
        {"mu": mu.detach().cpu().double().numpy(), "sigma": sigma.detach().cpu().double().numpy()}
        for mu, sigma in ((mu1, sigma1), (mu2, sigma2))
    ]
    return float(fid_statistics_to_metric(stats[0], stats[1], verbose=False)[KEY_METRIC_FID])


class FID(Metric):
    """rFID between real images and reconstructions, both floats in [-1, 1], with the Inception
    ``backend`` (a key of `BACKENDS`); ``reference``: the real side's cached states (`FID.reference`)."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, backend: str = "rfid", weights_path: str | None = None, reference: dict[str, Tensor] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.backend = BACKENDS[backend]
        try:  # a file given explicitly is the user's choice (random weights in tests): recorded by its sha256, not checked
            self.weights_path = find_weights(self.backend.weights, weights_path, verify=weights_path is None)
        except MissingWeightsError as error:
            raise MetricUnavailable(f"{backend} needs the Inception weights: {error}") from None
        self.extract = self.backend.build(self.weights_path)
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", torch.zeros(FEATURE_DIM, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", torch.zeros(FEATURE_DIM, FEATURE_DIM, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_count", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.cached_reference = reference
        if reference is not None and not (torch.distributed.is_initialized() and torch.distributed.get_rank() != 0):
            for key, value in reference.items():  # on one rank only: DDP's sync sums the ranks' states
                setattr(self, key, value.clone())

    @property
    def protocol(self) -> str:
        reference = "; real statistics from the reference cache" if self.cached_reference is not None else ""
        return (
            f"rFID ({self.backend.metric}): {self.backend.protocol}, weights {self.weights_path.name} sha256 {self.weights_sha256[:12]}; "
            f"uint8-rounded inputs, float64 statistics, unbiased covariance, torch-fidelity Frechet distance{reference}"
        )

    @cached_property
    def weights_sha256(self) -> str:
        return sha256_of(self.weights_path)

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """Floats in [-1, 1] ``(B, 3, H, W)`` or ``(B, 3, T, H, W)`` -> float64 features ``(N, 2048)``."""
        return self.extract(to_uint8(as_frames(images))).double()

    def _accumulate(self, side: str, feats: Tensor) -> None:
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + feats.sum(dim=0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + feats.T @ feats)
        setattr(self, f"{side}_count", getattr(self, f"{side}_count") + feats.shape[0])

    def update(self, real: Tensor, fake: Tensor) -> None:
        """``real``, ``fake``: floats in [-1, 1], ``(B, 3, H, W)`` or ``(B, 3, T, H, W)``; the real side
        is skipped when its statistics came from the reference cache."""
        if self.cached_reference is None:
            self._accumulate("real", self.features(real))
        self._accumulate("fake", self.features(fake))

    def merge_state(self, incoming_state) -> None:
        """Sum the states; with cached reference statistics the incoming real side (the same cache) is not added again."""
        states = incoming_state.metric_state if isinstance(incoming_state, Metric) else incoming_state
        if self.cached_reference is not None:
            states = {key: torch.zeros_like(value) if key.startswith("real") else value for key, value in states.items()}
        super().merge_state(states)

    def reference(self) -> dict[str, Tensor]:
        """The real side's states, to cache and pass as ``reference=`` to the next run."""
        return {key: getattr(self, key).detach().cpu() for key in ("real_sum", "real_outer", "real_count")}

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


__all__ = ["BACKENDS", "FID", "frechet_distance"]
