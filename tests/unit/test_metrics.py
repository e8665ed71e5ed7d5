"""bench.metrics against independent references: scikit-image, torchmetrics, scipy, torch-fidelity,
closed forms and hand-counted code streams. No network: FID runs a randomly initialised Inception."""

from __future__ import annotations

import hashlib
import math
import os

import numpy as np
import pytest
import scipy.linalg
import torch
from skimage import data, transform
from skimage import metrics as skm
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.image import PeakSignalNoiseRatio

from bench.metrics import (
    FID,
    LPIPS,
    PSNR,
    SSIM,
    CodebookUsage,
    MetricUnavailable,
    build_metrics,
    update_all,
)
from bench.metrics._convert import to_uint8
from bench.metrics.fid import BACKENDS, frechet_distance

INCEPTION_FILE, INCEPTION_URL = BACKENDS["rfid"].weights.filename, BACKENDS["rfid"].weights.url
from bench.metrics.reconstruction import SSIM_OPTIONS, SSIMLlamaGen, gaussian_taps, ssim_map

# ---------------------------------------------------------------- photographs with noise


def _photo(image: np.ndarray, size: int = 128) -> np.ndarray:
    """Centre square crop of an ``(H, W, 3)`` uint8 photo, resized to ``(size, size, 3)`` uint8."""
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    square = image[top : top + s, left : left + s]
    return (transform.resize(square, (size, size), anti_aliasing=True) * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def photo_pairs() -> tuple[np.ndarray, np.ndarray]:
    """Real and noisy uint8 photos ``(N, 128, 128, 3)``, each at a different noise level."""
    rng = np.random.default_rng(0)
    real = np.stack([_photo(f()) for f in (data.astronaut, data.chelsea, data.coffee, data.rocket)])
    sigmas = np.array([2.0, 6.0, 15.0, 40.0])[:, None, None, None]
    fake = np.clip(real + rng.normal(size=real.shape) * sigmas, 0, 255).round().astype(np.uint8)
    return real, fake


def _unit(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` -> floats in [0, 1] ``(N, 3, H, W)``."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def _signed(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` -> floats in [-1, 1] ``(N, 3, H, W)``."""
    return _unit(images) * 2 - 1


def _video(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(4, H, W, 3)`` -> two 2-frame clips in [-1, 1], ``(2, 3, 2, H, W)``."""
    frames = _signed(images)
    return frames.reshape(2, 2, *frames.shape[1:]).transpose(1, 2)


def test_uint8_round_trip_and_rounding():
    levels = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(to_uint8(levels.float() / 127.5 - 1), levels)
    # Rounds to the nearest level (0.4 and 0.6 of a level) and clamps out-of-range values.
    x = torch.tensor([-2.0, (0.4 / 127.5) - 1, (0.6 / 127.5) - 1, 1.5])
    assert to_uint8(x).tolist() == [0, 0, 1, 255]


def test_psnr_equals_skimage_mean_per_image(photo_pairs):
    real, fake = photo_pairs
    expected = np.mean([skm.peak_signal_noise_ratio(r, f, data_range=255) for r, f in zip(real, fake)])
    metric = PSNR()
    metric.update(_signed(real), _signed(fake))
    assert float(metric.compute()) == pytest.approx(expected, abs=1e-5)  # torchmetrics: float32 log


def test_psnr_is_not_torchmetrics_pooled_default(photo_pairs):
    """Papers average per-image PSNR; torchmetrics by default pools the MSE over the batch."""
    real, fake = photo_pairs
    metric = PSNR()
    metric.update(_signed(real), _signed(fake))
    pooled = PeakSignalNoiseRatio(data_range=255.0)(torch.from_numpy(fake).double(), torch.from_numpy(real).double())
    assert float(metric.compute()) - float(pooled) > 3.0


def test_ssim_equals_torchmetrics_and_skimage_interior(photo_pairs):
    real, fake = photo_pairs
    metric = SSIM()
    metric.update(_signed(real), _signed(fake))

    real01, fake01 = (torch.from_numpy(images).permute(0, 3, 1, 2).double() / 255 for images in (real, fake))
    per_image, maps = structural_similarity_index_measure(fake01, real01, reduction="none", return_full_image=True, **SSIM_OPTIONS)
    assert float(metric.compute()) == pytest.approx(float(per_image.mean()), abs=1e-12)  # torchmetrics in float64
    ours = ssim_map(fake01, real01, gaussian_taps(), data_range=1.0)
    assert (ours - maps).abs().max() < 1e-9  # the whole map, not only its mean
    _, maps32 = structural_similarity_index_measure(fake01.float(), real01.float(), reduction="none", return_full_image=True, **SSIM_OPTIONS)
    assert (maps32.double() - maps).abs().max() > 1e-5  # what float32 loses (the reason for float64)

    # skimage averages the same map without its 5-pixel border.
    reference = [
        skm.structural_similarity(r / 255, f / 255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1, data_range=1.0)
        for r, f in zip(real, fake)
    ]
    np.testing.assert_allclose(ours[..., 5:-5, 5:-5].mean(dim=(1, 2, 3)).numpy(), reference, rtol=0, atol=1e-9)
    assert len(set(np.round(reference, 2))) == len(reference)  # the images really differ in quality


def test_llamagen_ssim_equals_its_skimage_call(photo_pairs):
    """LlamaGen: ``structural_similarity(restored, gt, multichannel=True, data_range=2.0, channel_axis=-1)`` on [0, 1]."""
    real, fake = photo_pairs
    metric = SSIMLlamaGen()
    metric.update(_signed(real), _signed(fake))
    reference = np.mean([skm.structural_similarity(f / 255, r / 255, data_range=2.0, channel_axis=-1) for r, f in zip(real, fake)])
    assert float(metric.compute()) == pytest.approx(reference, abs=1e-12)
    standard = SSIM()
    standard.update(_signed(real), _signed(fake))
    assert float(metric.compute()) > float(standard.compute()) + 0.02  # not the same number: name it


def test_video_frames_are_averaged(photo_pairs):
    real, fake = photo_pairs
    for cls in (PSNR, SSIM):
        frames, video = cls(), cls()
        frames.update(_signed(real), _signed(fake))
        video.update(_video(real), _video(fake))
        assert float(video.compute()) == pytest.approx(float(frames.compute()), abs=1e-6)


@pytest.mark.parametrize("cls", [PSNR, SSIM])
def test_reconstruction_metrics_merge(cls, photo_pairs):
    real, fake = _signed(photo_pairs[0]), _signed(photo_pairs[1])
    whole, first, second = cls(), cls(), cls()
    whole.update(real, fake)
    first.update(real[:1], fake[:1])
    second.update(real[1:], fake[1:])
    first.merge_state(second)
    assert float(first.compute()) == pytest.approx(float(whole.compute()), abs=1e-6)


# ---------------------------------------------------------------- codebook usage


def test_usage_whole_set_vs_queue():
    """All 8 codes are used, but the last 6 codes seen hold only 3 distinct ones."""
    stream = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 3, 2, 1])
    metric = CodebookUsage(codebook_size=8, num_codebooks=1, queue_size=6)
    metric.update(stream[:10].reshape(2, 5, 1))  # natural order: row-major over the batch
    metric.update(stream[10:].reshape(1, 4, 1))
    out = metric.compute()
    assert out["usage"] == 1.0
    assert out["usage_queue"] == pytest.approx(3 / 8)
    counts = np.bincount(stream.numpy(), minlength=8) / len(stream)
    assert out["perplexity"] == pytest.approx(math.exp(-(counts * np.log(counts)).sum()))


def test_usage_queue_not_yet_full_and_order_matters():
    metric = CodebookUsage(codebook_size=16, queue_size=4)
    metric.update(torch.tensor([[5], [5], [9]]))  # fewer codes than the queue: all of them count
    assert metric.compute()["usage_queue"] == pytest.approx(2 / 16)
    metric.update(torch.tensor([[1], [2], [3], [4], [4], [4]]))  # queue is now [3, 4, 4, 4]
    assert metric.compute()["usage_queue"] == pytest.approx(2 / 16)
    assert metric.compute()["usage"] == pytest.approx(6 / 16)


def test_usage_multi_codebook_and_uniform_perplexity():
    k = 32
    first = torch.arange(k).repeat(3)  # uniform over all entries
    second = torch.zeros(3 * k, dtype=torch.long)  # always entry 0
    metric = CodebookUsage(codebook_size=k, num_codebooks=2, queue_size=k)
    metric.update(torch.stack([first, second], dim=-1).reshape(4, -1, 2))
    out = metric.compute()
    assert out["usage_per_codebook"] == [1.0, 1 / k]
    assert out["usage_queue_per_codebook"] == [1.0, 1 / k]
    assert out["perplexity_per_codebook"] == pytest.approx([k, 1.0])
    assert out["usage"] == pytest.approx((1 + 1 / k) / 2)
    assert out["perplexity"] == pytest.approx((k + 1) / 2)


def test_usage_merge_concatenates_queues_in_shard_order():
    rng = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 64, (40, 3, 2), generator=rng)
    whole = CodebookUsage(64, 2, queue_size=50)
    first, second = CodebookUsage(64, 2, queue_size=50), CodebookUsage(64, 2, queue_size=50)
    for i, batch in enumerate(codes.split(5)):
        whole.update(batch)
        (first if i < 5 else second).update(batch)
    first.merge_state(second)
    assert first.compute() == whole.compute()
    # A shard with fewer codes than the queue keeps the earlier shard's codes behind it.
    small_a, small_b, small_all = (CodebookUsage(64, 2, queue_size=50) for _ in range(3))
    small_a.update(codes[:4])
    small_b.update(codes[4:8])
    small_all.update(codes[:8])
    small_a.merge_state(small_b)
    assert torch.equal(small_a.queue, small_all.queue)


def _gather_from(*shards):
    """A ``dist_sync_fn`` that plays all-gather over ``shards`` (rank order) without processes."""

    def gather(tensor, group=None):
        name = next(n for n in shards[0]._defaults if getattr(shards[0], n) is tensor)
        return [getattr(shard, name) for shard in shards]

    return gather


def test_ddp_style_sync_reduces_like_one_process(photo_pairs):
    codes = torch.randint(0, 64, (40, 3, 2), generator=torch.Generator().manual_seed(1))
    whole, rank0, rank1 = (CodebookUsage(64, 2, queue_size=50) for _ in range(3))
    whole.update(codes)
    rank0.update(codes[:25])
    rank1.update(codes[25:])
    rank0.sync(dist_sync_fn=_gather_from(rank0, rank1), distributed_available=lambda: True)
    assert torch.equal(rank0.queue, whole.queue) and torch.equal(rank0.counts, whole.counts)

    real, fake = _signed(photo_pairs[0]), _signed(photo_pairs[1])
    whole, rank0, rank1 = PSNR(), PSNR(), PSNR()
    whole.update(real, fake)
    rank0.update(real[:3], fake[:3])
    rank1.update(real[3:], fake[3:])
    rank0.sync(dist_sync_fn=_gather_from(rank0, rank1), distributed_available=lambda: True)
    assert rank0.count == whole.count and float(rank0.total) == pytest.approx(float(whole.total), rel=1e-12)


def test_usage_large_codebook():
    metric = CodebookUsage(codebook_size=2**18, num_codebooks=1)
    metric.update(torch.arange(2**17).reshape(2, 256, 256, 1))
    out = metric.compute()
    assert out["usage"] == 0.5
    assert out["usage_queue"] == pytest.approx(65536 / 2**18)
    assert out["perplexity"] == pytest.approx(2**17)


def test_usage_rejects_bad_codes():
    with pytest.raises(ValueError):
        CodebookUsage(8, 1).update(torch.tensor([[8]]))
    with pytest.raises(ValueError):
        CodebookUsage(8, 2).update(torch.tensor([[1]]))


# ---------------------------------------------------------------- Frechet distance and FID


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(1)
    d = 64
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.1, 3, size=d), rng.uniform(0.1, 3, size=d)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    got = frechet_distance(*map(torch.from_numpy, (mu1, np.diag(v1), mu2, np.diag(v2))))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(2)
    d = 48
    a, b = rng.normal(size=(200, d)), rng.normal(size=(200, d)) @ rng.normal(size=(d, d)) * 0.3
    mu1, mu2 = a.mean(0), b.mean(0) + 0.5
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    got = frechet_distance(*map(torch.from_numpy, (mu1, s1, mu2, s2)))
    assert got == pytest.approx(expected, rel=1e-8)


class _Uint8Images(torch.utils.data.Dataset):
    """uint8 ``(3, H, W)`` images from a ``(N, 3, H, W)`` tensor, as torch-fidelity reads them."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def test_fid_statistics_from_sums_merge(random_inception):
    """Mean and covariance rebuilt from merged float64 sums equal numpy's on the stacked features."""
    rng = np.random.default_rng(3)
    feats = rng.gamma(2.0, size=(30, 2048))
    first, second = FID(weights_path=random_inception), FID(weights_path=random_inception)
    first._accumulate("real", torch.from_numpy(feats[:12]))
    second._accumulate("real", torch.from_numpy(feats[12:]))
    first.merge_state(second)
    mu, sigma = first._gaussian("real")
    np.testing.assert_allclose(mu.numpy(), feats.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), np.cov(feats, rowvar=False), rtol=1e-9, atol=1e-12)
    with open(random_inception, "rb") as f:
        assert first.weights_sha256 == hashlib.sha256(f.read()).hexdigest()
    assert INCEPTION_FILE in first.protocol and first.weights_sha256[:12] in first.protocol


@pytest.mark.slow  # Inception on 40 images and two 2048-d eigendecompositions: 30-130 s on 2 cores
def test_fid_matches_torch_fidelity(random_inception):
    """Two shards merged vs torch-fidelity's calculate_metrics on the whole sets."""
    import torch_fidelity

    gen = torch.Generator().manual_seed(0)
    n = 10
    base = torch.nn.functional.interpolate(torch.rand(n, 3, 8, 8, generator=gen), size=64, mode="bilinear")
    real = (base * 255).round().to(torch.uint8)
    noise = torch.rand(n, 3, 64, 64, generator=gen)
    fake = ((base * 0.5 + 0.5 * noise) * 255).round().to(torch.uint8)  # blurry photo-like vs noisy

    reference = torch_fidelity.calculate_metrics(
        input1=_Uint8Images(real),
        input2=_Uint8Images(fake),
        fid=True,
        cuda=False,
        cache=False,
        feature_extractor_weights_path=random_inception,
        save_cpu_ram=True,
        verbose=False,
    )["frechet_inception_distance"]

    real_signed, fake_signed = real.float() / 127.5 - 1, fake.float() / 127.5 - 1
    first, second = FID(weights_path=random_inception), FID(weights_path=random_inception)
    first.update(real_signed[:4], fake_signed[:4])
    second.update(real_signed[4:], fake_signed[4:])
    first.merge_state(second)
    ours = float(first.compute())
    print(f"FID ours {ours!r} torch-fidelity {reference!r}")
    assert reference > 1.0  # the random network does not collapse
    assert ours == pytest.approx(reference, rel=1e-3)


def test_fid_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MetricUnavailable) as err:
        FID()
    message = str(err.value)
    assert INCEPTION_FILE in message and INCEPTION_URL in message and str(tmp_path) in message
    assert "\n" not in message
    with pytest.raises(MetricUnavailable):
        FID(weights_path=str(tmp_path / "nowhere.pth"))


def test_lpips_missing_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MetricUnavailable) as err:
        LPIPS()
    assert "alexnet-owt-7be5be79.pth" in str(err.value) and "LPIPS_v0.1_alex" in str(err.value)


# ---------------------------------------------------------------- factory


def test_build_metrics_reports_unavailable(tmp_path, monkeypatch, photo_pairs):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    metrics, unavailable = build_metrics(
        ["psnr", "ssim", "lpips", "rfid", "usage"], codebook_size=16, num_codebooks=2, usage_queue=8
    )
    assert set(metrics) == {"psnr", "ssim", "usage"}
    assert set(unavailable) == {"lpips", "rfid"} and INCEPTION_URL in unavailable["rfid"]
    assert all(isinstance(m.protocol, str) and m.protocol for m in metrics.values())

    real, fake = _signed(photo_pairs[0]), _signed(photo_pairs[1])
    update_all(metrics, real, fake, torch.randint(0, 16, (4, 5, 5, 2)))
    assert metrics["usage"].counts.sum() == 4 * 25 * 2
    assert float(metrics["psnr"].compute()) > 10
    with pytest.raises(ValueError):
        build_metrics(["fvd"], codebook_size=16, num_codebooks=1)


def test_lpips_matches_torchmetrics_with_local_weights(tmp_path, monkeypatch, photo_pairs):
    """pyiqa's LPIPS through our metric vs torchmetrics' independent LPIPS, both reading the same
    offline files: a random AlexNet backbone and torchmetrics' shipped v0.1 linear layers."""
    import torchmetrics.functional.image.lpips as tm_lpips
    import torchvision

    from bench.metrics.lpips import lpips_weight_paths

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    backbone_path, linear_path = lpips_weight_paths().values()
    torch.manual_seed(0)
    backbone = torchvision.models.alexnet(weights=None).state_dict()
    # The classifier is unused by LPIPS: store it as stride-0 views so the file stays small.
    backbone = {k: v if k.startswith("features") else torch.zeros(1).expand(v.shape) for k, v in backbone.items()}
    for path in (backbone_path, linear_path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(backbone, backbone_path)
    shipped = os.path.join(os.path.dirname(tm_lpips.__file__), "lpips_models", "alex.pth")
    torch.save(torch.load(shipped, map_location="cpu"), linear_path)

    metric = LPIPS()
    real, fake = photo_pairs
    metric.update(_signed(real), _signed(fake))
    reference = tm_lpips.learned_perceptual_image_patch_similarity(
        _unit(fake), _unit(real), net_type="alex", normalize=True
    )
    assert float(reference) > 0.01
    assert float(metric.compute()) == pytest.approx(float(reference), rel=1e-4)
