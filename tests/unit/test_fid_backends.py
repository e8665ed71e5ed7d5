"""rFID backends against each package's own computation, with random Inception weights (the
published files cannot be downloaded here): the plumbing (resize, input range, statistics,
Frechet distance) is what is tested; the weights only have to give non-degenerate features.
And the cached reference statistics: a second run reuses them and gets the same number."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skimage_data
from torch import nn

from bench.metrics import build_metrics
from bench.metrics.fid import BACKENDS, FID


def _photos(n: int = 12, size: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Real crops of scikit-image photographs and noisier, blurrier versions, uint8 ``(n, size, size, 3)``."""
    rng = np.random.default_rng(seed)
    sources = [skimage_data.astronaut(), skimage_data.chelsea(), skimage_data.coffee(), skimage_data.rocket()]
    real = np.stack([src[(t := rng.integers(0, src.shape[0] - size)) : t + size, (l := rng.integers(0, src.shape[1] - size)) : l + size]
                     for src in (sources[i % 4] for i in range(n))])  # fmt: skip
    fake = np.clip(real.astype(float) * 0.8 + rng.normal(size=real.shape) * 25 + 20, 0, 255).round().astype(np.uint8)
    return real, fake


def _write(folder, images) -> None:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:03d}.png")


def _signed(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def _ours(backend: str, weights, real, fake, batch: int = 5) -> float:
    metric = FID(backend, weights_path=str(weights))
    for start in range(0, len(real), batch):
        metric.update(_signed(real[start : start + batch]), _signed(fake[start : start + batch]))
    return float(metric.compute())


class _TinyInception(nn.Module):
    """A stand-in for clean-fid's TorchScript Inception with its interface: ``layers`` maps a
    normalised 299x299 batch to ``(N, 2048, 1, 1)``; random, small, non-degenerate."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(3, 32, 13, stride=6), nn.ReLU(), nn.Conv2d(32, 2048, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers((x - 128) / 128)


@pytest.mark.slow  # two 2048-d matrix square roots (ours and the package's): ~1 min on 2 cores
def test_clean_fid_backend_equals_clean_fid(tmp_path):
    cleanfid = pytest.importorskip("cleanfid.fid")
    from cleanfid.inception_torchscript import InceptionV3W

    torch.manual_seed(0)
    weights = tmp_path / "weights" / "inception-2015-12-05.pt"
    weights.parent.mkdir()
    torch.jit.script(_TinyInception()).save(str(weights))
    real, fake = _photos()
    _write(tmp_path / "real", real)
    _write(tmp_path / "fake", fake)
    net = InceptionV3W(str(weights.parent), download=False)
    reference = cleanfid.compute_fid(str(tmp_path / "real"), str(tmp_path / "fake"), mode="clean", num_workers=0, batch_size=5,
                                     device=torch.device("cpu"), custom_feat_extractor=net, verbose=False)  # fmt: skip
    ours = _ours("rfid_clean", weights, real, fake)
    assert reference > 1e-3
    assert ours == pytest.approx(reference, rel=1e-4)


@pytest.mark.slow  # the full Inception at 299 on 24 images and two 2048-d square roots
def test_pytorch_fid_backend_equals_pytorch_fid(tmp_path, monkeypatch):
    pytorch_fid = pytest.importorskip("pytorch_fid")
    import pytorch_fid.fid_score
    import pytorch_fid.inception as module
    import torchvision

    with monkeypatch.context() as patch:  # the architecture, with random weights
        patch.setattr(torchvision.models.inception.Inception3, "load_state_dict", lambda self, *a, **k: None)
        patch.setattr(module, "load_state_dict_from_url", lambda *a, **k: {})
        torch.manual_seed(0)
        net = module.fid_inception_v3()
    for layer in net.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight)
    weights = tmp_path / BACKENDS["rfid_pytorch"].weights.filename
    torch.save(net.state_dict(), weights)
    real, fake = _photos()
    _write(tmp_path / "real", real)
    _write(tmp_path / "fake", fake)
    monkeypatch.setattr(module, "load_state_dict_from_url", lambda *a, **k: torch.load(weights, weights_only=True))
    reference = pytorch_fid.fid_score.calculate_fid_given_paths([str(tmp_path / "real"), str(tmp_path / "fake")], 5, "cpu", 2048, num_workers=0)
    ours = _ours("rfid_pytorch", weights, real, fake)
    assert reference > 1e-3
    assert ours == pytest.approx(reference, rel=1e-3)  # pytorch-fid: float32 features, scipy sqrtm


def test_backends_need_their_files_and_say_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    metrics, unavailable = build_metrics(["rfid", "rfid_pytorch"], codebook_size=4, num_codebooks=1)
    assert metrics == {}
    for name in ("rfid", "rfid_pytorch"):
        file = BACKENDS[name].weights
        assert file.filename in unavailable[name] and file.url in unavailable[name] and "\n" not in unavailable[name]


@pytest.mark.slow  # a tiny training run, then two Inception backends and their square roots
def test_calibration_scores_one_set_of_reconstructions_with_every_backend(tmp_path, random_inception, monkeypatch):
    from bench.fid_calibration import calibrate
    from tests.conftest import TINY

    torch.manual_seed(0)
    clean = tmp_path / "clean" / "inception-2015-12-05.pt"
    clean.parent.mkdir()
    torch.jit.script(_TinyInception()).save(str(clean))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # pytorch-fid's weights: not here
    table = calibrate([f"output_dir={tmp_path / 'results'}", f"leaderboard_dir={tmp_path / 'lb'}", "tokenizer=vqvae_tiny_vq_d4", *TINY,
                       f"+suite.eval.fid_weights.rfid={random_inception}", f"+suite.eval.fid_weights.rfid_clean={clean}"])  # fmt: skip
    text = table.read_text()
    assert "| builtin | vqvae_tiny_vq_d4 |" in text and "rfid_clean - rfid" in text and "rfid_clean / rfid" in text
    assert "rfid_pytorch: rfid_pytorch needs the Inception weights" in text and "pt_inception-2015-12-05-6726825d.pth" in text
