"""The GAN recipe's pieces against taming-transformers, the official VQGAN code (PyPI package, random
weights): PatchGAN discriminator and its initialisation, and one whole training step of
``VQLPIPSWithDiscriminator``: L1 + LPIPS, hinge loss, adaptive weight, codebook weight, the generator
loss, the gradients it sends to the decoder's last layer, and the discriminator loss.

taming builds its LPIPS with downloaded VGG weights; here both sides share random backbone weights
and LPIPS v0.1's linear layers. taming's LPIPS sits in a module that Lightning puts in train mode,
which turns on the dropout before its linear layers; ours never drops out (the published metric's
evaluation network), so taming's LPIPS is compared in eval mode.
"""

from __future__ import annotations

import contextlib
from importlib.metadata import version
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from bench.config import compose
from bench.objective import Objective
from implementations import create_discriminator

taming_disc = pytest.importorskip("taming.modules.discriminator.model")
taming_loss = pytest.importorskip("taming.modules.losses.vqperceptual")
taming_lpips = pytest.importorskip("taming.modules.losses.lpips")
REFERENCE = dict(family="VQGAN training step (taming's VQLPIPSWithDiscriminator)", tokenizers=[], reference="taming-transformers",
                 version=version("taming-transformers"), golden=None)  # fmt: skip


def test_patchgan_is_tamings_nlayer_discriminator_initialisation_included():
    for layers, width in ((3, 64), (2, 8)):
        torch.manual_seed(0)
        ours = create_discriminator("patchgan", in_channels=3, base_channels=width, n_layers=layers)
        torch.manual_seed(0)
        theirs = taming_disc.NLayerDiscriminator(input_nc=3, ndf=width, n_layers=layers).apply(taming_disc.weights_init)
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        for key, value in theirs.state_dict().items():
            assert torch.equal(ours.state_dict()[key], value), key
        x = torch.rand(2, 3, 64, 64) * 2 - 1
        torch.testing.assert_close(ours(x).logits[0], theirs(x), rtol=0, atol=0)
    assert sum(p.numel() for p in create_discriminator("patchgan").parameters()) == 2_765_633  # taming's ImageNet discriminator


@pytest.fixture
def taming_and_ours(lpips_weights, gan_overrides, monkeypatch):
    vgg16 = taming_lpips.models.vgg16
    monkeypatch.setattr(taming_lpips.models, "vgg16", lambda pretrained=True: vgg16(weights=None))
    monkeypatch.setattr(taming_lpips.LPIPS, "load_from_pretrained", lambda self, name="vgg_lpips": None)
    overrides = [o for o in gan_overrides if "start_step" not in o and "lecam" not in o and "r1_weight" not in o]
    recipe = compose(["tokenizer=vqvae_tiny_vq_d4", *overrides]).tokenizer.recipe
    torch.manual_seed(0)
    ours = Objective(recipe, SimpleNamespace(modality="image")).train()
    theirs = taming_loss.VQLPIPSWithDiscriminator(disc_start=0, codebook_weight=1.0, pixelloss_weight=1.0, disc_num_layers=2, disc_ndf=8,
                                                  disc_weight=0.75, perceptual_weight=1.0, disc_loss="hinge").train()  # fmt: skip
    theirs.discriminator.load_state_dict(ours.discriminator.state_dict())
    lpips_state = {f"net.slice{_slice(int(k.split('.')[1]))}.{k.split('.', 1)[1]}": v for k, v in ours.perceptual.state_dict().items() if k.startswith("features.")}
    lpips_state.update({f"lin{k}.model.1.weight": ours.perceptual.linear[k].weight for k in range(5)})
    lpips_state.update({f"scaling_layer.{name}": getattr(theirs.perceptual_loss.scaling_layer, name) for name in ("shift", "scale")})
    theirs.perceptual_loss.load_state_dict(lpips_state, strict=True)
    theirs.perceptual_loss.eval()
    return ours, theirs


def _slice(index: int) -> int:
    """taming's VGG16 slice (1..5) holding torchvision's ``features[index]``."""
    return 1 + sum(index >= start for start in (4, 9, 16, 23))


def decoder_step(seed: int):
    """A tiny "decoder" whose last layer is a conv: the adaptive weight needs its weight."""
    torch.manual_seed(seed)
    last = nn.Conv2d(4, 3, 3, padding=1)
    z = torch.randn(2, 4, 32, 32)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    codebook_loss = (z**2).mean() * 0.1
    return last, z, x, codebook_loss


def test_one_vqgan_step_equals_tamings(parity, taming_and_ours):
    case = parity.case("training_step", setup="PatchGAN 8 channels 2 layers, random LPIPS backbone, 2 images 32x32", **REFERENCE)
    ours, theirs = taming_and_ours

    last, z, x, codebook_loss = decoder_step(1)
    recon = torch.tanh(last(z))
    expected, log = theirs(codebook_loss, x, recon, 0, global_step=10, last_layer=last.weight)
    (expected_grad,) = torch.autograd.grad(expected, last.weight)

    last, z, x, codebook_loss = decoder_step(1)
    recon = torch.tanh(last(z))
    out = SimpleNamespace(recon=recon, loss=codebook_loss)
    terms = ours.generator_backward(x, out, step=10, last_layer=last.weight, scale=1.0, backward=lambda loss: loss.backward())
    case.compare("generator loss", terms["loss"], expected.detach(), tolerance=5e-6)
    torch.testing.assert_close(terms["adaptive_weight"] * 0.75, log["train/d_weight"], rtol=1e-5, atol=0)
    torch.testing.assert_close(terms["perceptual"], log["train/p_loss"], rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(terms["adversarial"], log["train/g_loss"], rtol=1e-5, atol=1e-8)
    case.compare("last layer's gradient", last.weight.grad, expected_grad, tolerance=5e-6)

    expected_d, log_d = theirs(codebook_loss, x, recon.detach(), 1, global_step=10)
    ours_d = ours.discriminator_backward(x, recon.detach(), 1.0, backward=lambda loss: None, autocast=contextlib.nullcontext)
    case.compare("discriminator loss", ours_d["d_loss"], expected_d.detach(), tolerance=5e-6)
    torch.testing.assert_close(ours_d["logits_real"], log_d["train/logits_real"], rtol=1e-5, atol=1e-7)
