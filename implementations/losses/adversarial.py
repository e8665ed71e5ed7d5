"""Adversarial training terms of tokenizer recipes, for any modality.

* GAN objectives over the logits of every sub-discriminator (mean over sub-discriminators):
  ``hinge`` (Lim & Ye 2017; taming-transformers' ``hinge_d_loss``, generator ``-D(x_hat)``),
  ``non_saturating`` (Goodfellow et al. 2014; taming's ``vanilla_d_loss``, generator
  ``softplus(-D(x_hat))``, MaskGIT / MAGVIT), ``least_squares`` (Mao et al. 2017, LSGAN; HiFi-GAN,
  audiocraft's ``mse``). The generator side may use ``hinge_margin`` ``relu(1 - D(x_hat))``, as
  EnCodec writes its generator loss (Défossez et al. 2022, eq. 1).
* `adaptive_weight`: taming's ``calculate_adaptive_weight`` (Esser et al. 2021, eq. 7): the ratio of
  the gradient norms of the reconstruction and GAN losses at the decoder's last layer.
* `LeCAM` regularisation (Tseng et al. 2021, https://arxiv.org/abs/2104.03310), with the EMA anchors
  MAGVIT uses (decay 0.999).
* `r1_penalty` (Mescheder et al. 2018, https://arxiv.org/abs/1801.04406): ``gamma / 2 * E ||grad_x D(x)||^2``
  on real inputs.
* `feature_matching` (Larsen et al. 2016; MelGAN, SoundStream): L1 between the discriminator's features
  of real and reconstructed inputs, averaged over layers and sub-discriminators; ``relative=True``
  divides each term by the mean magnitude of the real features (EnCodec, eq. 2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DISCRIMINATOR_LOSSES = ("hinge", "non_saturating", "least_squares")
GENERATOR_LOSSES = ("hinge", "non_saturating", "least_squares", "hinge_margin")


def _mean_over(logits: list[Tensor], term) -> Tensor:
    return torch.stack([term(x).mean() for x in logits]).mean()


def discriminator_loss(kind: str, logits_real: list[Tensor], logits_fake: list[Tensor]) -> Tensor:
    """The discriminator's loss on real and reconstructed inputs (one logits tensor per sub-discriminator)."""
    if kind == "hinge":
        return 0.5 * (_mean_over(logits_real, lambda x: F.relu(1.0 - x)) + _mean_over(logits_fake, lambda x: F.relu(1.0 + x)))
    if kind == "non_saturating":
        return 0.5 * (_mean_over(logits_real, lambda x: F.softplus(-x)) + _mean_over(logits_fake, F.softplus))
    if kind == "least_squares":
        return _mean_over(logits_real, lambda x: (x - 1.0) ** 2) + _mean_over(logits_fake, lambda x: x**2)
    raise ValueError(f"unknown discriminator loss {kind!r}; choose from {', '.join(DISCRIMINATOR_LOSSES)}")


def generator_loss(kind: str, logits_fake: list[Tensor]) -> Tensor:
    """The generator's adversarial loss on the discriminator's logits for reconstructions."""
    if kind == "hinge":
        return _mean_over(logits_fake, torch.neg)
    if kind == "non_saturating":
        return _mean_over(logits_fake, lambda x: F.softplus(-x))
    if kind == "least_squares":
        return _mean_over(logits_fake, lambda x: (x - 1.0) ** 2)
    if kind == "hinge_margin":
        return _mean_over(logits_fake, lambda x: F.relu(1.0 - x))
    raise ValueError(f"unknown generator loss {kind!r}; choose from {', '.join(GENERATOR_LOSSES)}")


def adaptive_weight(reconstruction: Tensor, adversarial: Tensor, last_layer: Tensor, maximum: float = 1e4, eps: float = 1e-4) -> Tensor:
    """``||d reconstruction / d W|| / (||d adversarial / d W|| + eps)`` at the last layer's weight ``W``,
    clamped to ``[0, maximum]`` and detached (taming multiplies it by its ``disc_weight``)."""
    (g_reconstruction,) = torch.autograd.grad(reconstruction, last_layer, retain_graph=True)
    (g_adversarial,) = torch.autograd.grad(adversarial, last_layer, retain_graph=True)
    return (g_reconstruction.norm() / (g_adversarial.norm() + eps)).clamp(0.0, maximum).detach()


class LeCAM(nn.Module):
    """``E[relu(D(x) - a_fake)^2] + E[relu(a_real - D(x_hat))^2]`` with ``a_real``/``a_fake`` the EMAs
    of the mean logits on real and reconstructed inputs (buffers: saved with the discriminator side)."""

    def __init__(self, decay: float = 0.999):
        super().__init__()
        self.decay = decay
        self.register_buffer("anchor_real", torch.zeros(()))
        self.register_buffer("anchor_fake", torch.zeros(()))

    def forward(self, logits_real: list[Tensor], logits_fake: list[Tensor]) -> Tensor:
        real = torch.stack([x.mean() for x in logits_real]).mean().detach()
        fake = torch.stack([x.mean() for x in logits_fake]).mean().detach()
        self.anchor_real.mul_(self.decay).add_((1 - self.decay) * real)
        self.anchor_fake.mul_(self.decay).add_((1 - self.decay) * fake)
        return _mean_over(logits_real, lambda x: F.relu(x - self.anchor_fake) ** 2) + _mean_over(logits_fake, lambda x: F.relu(self.anchor_real - x) ** 2)


def r1_penalty(discriminator: nn.Module, real: Tensor, gamma: float) -> Tensor:
    """``gamma / 2 * mean_b ||grad_x sum D(x_b)||^2`` on real inputs, with a graph for the backward pass."""
    real = real.detach().requires_grad_(True)
    logits = discriminator(real).logits
    (grad,) = torch.autograd.grad(sum(x.sum() for x in logits), real, create_graph=True)
    return 0.5 * gamma * grad.pow(2).flatten(1).sum(1).mean()


def feature_matching(features_real: list[list[Tensor]], features_fake: list[list[Tensor]], relative: bool = False) -> Tensor:
    """Mean over sub-discriminators and layers of ``mean |f_real - f_fake|`` (``/ mean |f_real|`` when
    ``relative``); real features are targets (no gradient)."""
    terms = []
    for real_layers, fake_layers in zip(features_real, features_fake, strict=True):
        for real, fake in zip(real_layers, fake_layers, strict=True):
            real = real.detach()
            term = F.l1_loss(fake, real)
            terms.append(term / real.abs().mean().clamp_min(1e-8) if relative else term)
    return torch.stack(terms).mean()
