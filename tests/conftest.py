"""Shared test helpers: composing shrunk run configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.config import compose
from bench.metrics.fid import BACKENDS


@pytest.fixture
def compose_run(tmp_path):
    """Compose ``bench.run``'s config with overrides, writing results under ``tmp_path``."""

    def _compose(*overrides: str):
        return compose([f"output_dir={tmp_path / 'results'}", f"leaderboard_dir={tmp_path / 'leaderboards'}", *overrides])

    return _compose


# The smallest real run of the built-in suite: a few steps on a few crops.
TINY = ("seed=0", "suite.train.steps=4", "suite.train.batch_size=8", "suite.dataset.max_items=16", "suite.eval.batch_size=8", "suite.train.checkpoint_every=2")


@pytest.fixture(scope="session")
def lpips_weights(tmp_path_factory) -> tuple[Path, Path]:
    """LPIPS-VGG weight files for training tests: a random VGG16 backbone (the ImageNet file cannot be
    downloaded here; only ``features.*`` is kept, 59 MB) and LPIPS v0.1's linear layers, which the
    ``lpips`` package ships."""
    lpips = pytest.importorskip("lpips")
    from implementations.losses.perceptual import LPIPS

    folder = tmp_path_factory.mktemp("lpips")
    torch.manual_seed(0)
    backbone = {key: value for key, value in LPIPS().state_dict().items() if key.startswith("features.")}
    torch.save(backbone, folder / "vgg16-features-random.pth")
    return folder / "vgg16-features-random.pth", Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth"


@pytest.fixture
def lpips_overrides(lpips_weights) -> tuple[str, ...]:
    """The recipe's LPIPS weight files, given explicitly (see `lpips_weights`)."""
    backbone, linear = lpips_weights
    return (f"tokenizer.recipe.perceptual.backbone_weights={backbone}", f"tokenizer.recipe.perceptual.linear_weights={linear}")


@pytest.fixture
def gan_overrides(lpips_weights) -> tuple[str, ...]:
    """A taming-style recipe shrunk for the built-in suite's tiny model: L1 + LPIPS, PatchGAN (8
    channels, 2 layers) with hinge loss and the adaptive weight from step 2, LeCAM and R1."""
    backbone, linear = lpips_weights
    prefix = "tokenizer.recipe"
    return (
        f"{prefix}.l1_weight=1.0", f"{prefix}.l2_weight=0.0", f"{prefix}.perceptual.weight=1.0",
        f"{prefix}.perceptual.backbone_weights={backbone}", f"{prefix}.perceptual.linear_weights={linear}",
        f"{prefix}.adversarial.weight=0.75", f"{prefix}.adversarial.adaptive_weight=true", f"{prefix}.adversarial.start_step=2",
        f"+{prefix}.adversarial.discriminator_kwargs.base_channels=8", f"+{prefix}.adversarial.discriminator_kwargs.n_layers=2",
        f"{prefix}.adversarial.lecam_weight=0.001", f"{prefix}.adversarial.r1_weight=0.1",
        f"{prefix}.adversarial.optimizer.betas=[0.5,0.9]", f"{prefix}.optimizer.betas=[0.5,0.9]",
    )  # fmt: skip


@pytest.fixture(scope="session")
def random_inception(tmp_path_factory) -> str:
    """A randomly initialised torch-fidelity Inception saved to a file (Kaiming-normal convolutions:
    with PyTorch's default init its pool features collapse and every FID is ~0)."""
    from torch_fidelity import feature_extractor_inceptionv3 as tfi

    with pytest.MonkeyPatch.context() as mp:
        # Build the architecture without any weights: no download, no loading.
        mp.setattr(tfi, "load_state_dict_from_url", lambda *args, **kwargs: {})
        mp.setattr(tfi.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *args, **kwargs: None)
        net = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.manual_seed(0)
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight)
    path = tmp_path_factory.mktemp("inception") / BACKENDS["rfid"].weights.filename
    torch.save(net.state_dict(), path)
    return str(path)
