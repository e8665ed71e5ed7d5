"""GAN terms against independent references: taming-transformers' own hinge and vanilla losses, and
closed forms for least squares, LeCAM, R1 (a linear discriminator) and feature matching."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from implementations import DiscriminatorOutput
from implementations.losses.adversarial import LeCAM, adaptive_weight, discriminator_loss, feature_matching, generator_loss, r1_penalty

taming = pytest.importorskip("taming.modules.losses.vqperceptual")


def logits(seed: int) -> torch.Tensor:
    return torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(seed)) * 2


def test_hinge_and_non_saturating_equal_tamings():
    real, fake = logits(0), logits(1)
    torch.testing.assert_close(discriminator_loss("hinge", [real], [fake]), taming.hinge_d_loss(real, fake))
    torch.testing.assert_close(discriminator_loss("non_saturating", [real], [fake]), taming.vanilla_d_loss(real, fake))
    torch.testing.assert_close(generator_loss("hinge", [fake]), -fake.mean())  # taming's g_loss
    torch.testing.assert_close(generator_loss("non_saturating", [fake]), torch.log1p(torch.exp(-fake)).mean())


def test_least_squares_hinge_margin_and_sub_discriminators_average():
    real, fake, fake2 = logits(0), logits(1), logits(2)
    torch.testing.assert_close(discriminator_loss("least_squares", [real], [fake]), ((real - 1) ** 2).mean() + (fake**2).mean())
    torch.testing.assert_close(generator_loss("least_squares", [fake]), ((fake - 1) ** 2).mean())
    torch.testing.assert_close(generator_loss("hinge_margin", [fake]), torch.clamp(1 - fake, min=0).mean())
    both = generator_loss("hinge", [fake, fake2[:, :, :3]])
    torch.testing.assert_close(both, (-fake.mean() - fake2[:, :, :3].mean()) / 2)
    with pytest.raises(ValueError, match="unknown discriminator loss 'wasserstein'"):
        discriminator_loss("wasserstein", [real], [fake])


def test_lecam_anchors_and_value():
    lecam = LeCAM(decay=0.9)
    real, fake = logits(0), logits(1)
    value = lecam([real], [fake])
    anchor_real, anchor_fake = 0.1 * real.mean(), 0.1 * fake.mean()
    expected = (torch.clamp(real - anchor_fake, min=0) ** 2).mean() + (torch.clamp(anchor_real - fake, min=0) ** 2).mean()
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(lecam.anchor_real, anchor_real)
    assert set(lecam.state_dict()) == {"anchor_real", "anchor_fake"}  # resumes with the discriminator


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3 * 4 * 4))

    def forward(self, x):
        return DiscriminatorOutput(logits=[x.flatten(1) @ self.w])


def test_r1_is_half_gamma_times_the_squared_input_gradient():
    d = Linear()
    penalty = r1_penalty(d, torch.randn(5, 3, 4, 4), gamma=10.0)
    torch.testing.assert_close(penalty, 5.0 * d.w.detach().pow(2).sum())
    penalty.backward()  # it trains the discriminator
    torch.testing.assert_close(d.w.grad, 10.0 * d.w.detach())


def test_feature_matching_plain_and_relative():
    real = [[torch.full((2, 3), 2.0), torch.full((2, 5), -1.0)]]
    fake = [[torch.full((2, 3), 1.0), torch.full((2, 5), 1.0)]]
    torch.testing.assert_close(feature_matching(real, fake), torch.tensor((1.0 + 2.0) / 2))
    torch.testing.assert_close(feature_matching(real, fake, relative=True), torch.tensor((1.0 / 2 + 2.0 / 1) / 2))


def test_adaptive_weight_is_the_gradient_norm_ratio_clamped():
    w = nn.Parameter(torch.tensor([1.0, 2.0]))
    reconstruction, adversarial = (w**2).sum(), 3 * w.sum()
    expected = torch.tensor([2.0, 4.0]).norm() / (torch.tensor([3.0, 3.0]).norm() + 1e-4)
    torch.testing.assert_close(adaptive_weight(reconstruction, adversarial, w), expected)
    assert adaptive_weight(reconstruction, adversarial, w, maximum=0.5).item() == 0.5
