"""LPIPS-VGG, the perceptual training loss, against the reference ``lpips`` package and against
taming-transformers' own LPIPS, with random VGG16 backbone weights (the ImageNet file cannot be
downloaded here) and LPIPS v0.1's real linear layers, which the ``lpips`` package ships."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch

from implementations.checkpoints import CorruptWeightsError, MissingWeightsError, find_weights
from implementations.losses.perceptual import LPIPS, LPIPS_VGG_LINEAR, VGG16_BACKBONE

lpips = pytest.importorskip("lpips")


def reference_and_ours(dropout: bool = False) -> tuple[torch.nn.Module, LPIPS]:
    torch.manual_seed(0)
    reference = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False).eval()
    state = reference.state_dict()
    backbone = {f"features.{key.split('.', 3)[2]}.{key.split('.', 3)[3]}": value for key, value in state.items() if key.startswith("net.")}
    linear = {key: value for key, value in state.items() if key.startswith("lin") and not key.startswith("lins.")}  # lins: an alias
    ours = LPIPS(dropout=dropout)
    ours.load_state_dicts(backbone, linear)
    return reference, ours


def test_equals_the_lpips_package_values_and_gradients():
    reference, ours = reference_and_ours()
    torch.manual_seed(1)
    x = (torch.rand(3, 3, 64, 64) * 2 - 1).requires_grad_()
    y = torch.rand(3, 3, 64, 64) * 2 - 1
    expected = reference(x, y).flatten()
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    got = ours(x, y)
    (got_grad,) = torch.autograd.grad(got.sum(), x)
    assert got.shape == (3,) and (got > 0).all()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(got_grad, expected_grad, rtol=1e-4, atol=1e-9)
    assert not any(p.requires_grad for p in ours.parameters())


def test_dropout_in_train_mode_as_the_reference_package_draws_it():
    """The package's LPIPS has taming's use_dropout=True: in train mode, the same masks from the same seed."""
    reference, ours = reference_and_ours(dropout=True)
    x, y = torch.rand(2, 3, 48, 48) * 2 - 1, torch.rand(2, 3, 48, 48) * 2 - 1
    evaluated = ours(x, y)
    torch.testing.assert_close(evaluated, reference(x, y).flatten(), rtol=1e-5, atol=1e-7)  # built in eval mode: no dropout
    reference.train(), ours.train()
    assert not ours.features.training  # only the dropout follows the mode
    for seed in (3, 4):
        torch.manual_seed(seed)
        expected = reference(x, y).flatten()
        torch.manual_seed(seed)
        torch.testing.assert_close(ours(x, y), expected, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(ours(x, y), evaluated)
    plain = LPIPS()
    plain.load_state_dict(ours.state_dict())
    assert torch.equal(plain.train()(x, y), evaluated)  # without dropout the mode changes nothing


def test_equals_taming_transformers_lpips(monkeypatch):
    """taming's LPIPS (the one its VQGAN trains with), built without its downloads."""
    taming_lpips = pytest.importorskip("taming.modules.losses.lpips")
    reference, ours = reference_and_ours()
    vgg16 = taming_lpips.models.vgg16
    monkeypatch.setattr(taming_lpips.models, "vgg16", lambda pretrained=True: vgg16(weights=None))
    monkeypatch.setattr(taming_lpips.LPIPS, "load_from_pretrained", lambda self, name="vgg_lpips": None)
    taming = taming_lpips.LPIPS().eval()
    state = {key: value for key, value in reference.state_dict().items() if not key.startswith("lins.")}
    taming.load_state_dict(state, strict=True)  # the same module tree, without the package's alias
    torch.manual_seed(2)
    x, y = torch.rand(2, 3, 48, 48) * 2 - 1, torch.rand(2, 3, 48, 48) * 2 - 1
    torch.testing.assert_close(ours(x, y), taming(x, y).flatten(), rtol=1e-5, atol=1e-7)


def test_released_linear_layers_are_found_and_verified(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    shipped = Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth"
    assert find_weights(LPIPS_VGG_LINEAR, shipped) == shipped  # sha256 verified: the published file

    with pytest.raises(MissingWeightsError) as missing:
        find_weights(VGG16_BACKBONE)
    message = str(missing.value)
    assert "\n" not in message and "vgg16-397923af.pth" in message and "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message

    damaged = tmp_path / "vgg.pth"
    damaged.write_bytes(shipped.read_bytes()[:-1] + b"\0")
    with pytest.raises(CorruptWeightsError, match="not the published"):
        find_weights(LPIPS_VGG_LINEAR, damaged)


def test_load_released_reads_both_files_from_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    import torchvision

    torch.manual_seed(3)
    torch.save(torchvision.models.vgg16(weights=None).state_dict(), cache / "vgg16-397923af.pth")
    os.symlink(Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth", cache / "vgg.pth")
    unverified = dataclasses.replace(VGG16_BACKBONE, sha256="")  # random weights cannot carry the published digest
    monkeypatch.setattr("implementations.losses.perceptual.VGG16_BACKBONE", unverified)
    ours = LPIPS()
    ours.load_released()
    assert ours.features[0].weight.abs().sum() > 0
