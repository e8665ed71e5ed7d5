"""The spectral losses of the audio recipes (`implementations.losses.spectral`).

* `mel_filterbank` against ``librosa.filters.mel`` (float64), both conventions: HTK mel scale without
  normalisation (``htk=True, norm=None``: torchaudio's ``melscale_fbanks`` defaults, which audiocraft's
  MelSpectrogram uses) and Slaney's scale with Slaney's area normalisation (``htk=False, norm="slaney"``:
  librosa's defaults).
* `MultiScaleMelLoss` against a numpy reference of audiocraft's ``MultiScaleMelSpectrogramLoss`` procedure
  (``msspec``: ``normalized=True``, ``alphas=False``, ``floor_level=1e-5``) built on ``librosa.stft`` and
  ``librosa.filters.mel``: reflection padding ``(n_fft - hop) // 2``, right zero padding to full frames,
  power / window energy, HTK mel, L1 on mel powers + MSE on ``log10(1e-5 + mel)``, divided by 2 x scales.
  (tests/parity/test_audiocraft_losses.py compares it with audiocraft's own module.)
* `MultiResolutionSTFTLoss` against ``auraloss.freq.MultiResolutionSTFTLoss`` (its ``eps`` set to
  Parallel WaveGAN's 1e-7; auraloss computes spectral convergence over the whole batch as Parallel WaveGAN's
  ``stft_loss.py`` does). (tests/parity/test_parallel_wavegan_stft.py compares it with Parallel WaveGAN's
  own ``sc_loss + mag_loss``.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from implementations.losses.spectral import MultiResolutionSTFTLoss, MultiScaleMelLoss, mel_filterbank

# EnCodec's 2^5 window has fewer bins than mel filters: librosa warns about the empty ones
pytestmark = pytest.mark.filterwarnings("ignore:Empty filters detected in mel frequency basis")

FILTERBANKS = [  # sample rate, n_fft, n_mels, f_min, f_max
    (24_000, 32, 64, 64.0, None),  # EnCodec's smallest scale: more filters than bins, some empty
    (24_000, 2048, 64, 64.0, None),
    (16_000, 512, 80, 0.0, 8000.0),
    (22_050, 1024, 128, 20.0, 11_000.0),
    (44_100, 4096, 40, 300.0, 16_000.0),
]


def _pair(shape: tuple[int, ...], seed: int = 0, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    target = (0.3 * torch.randn(shape, generator=generator, dtype=torch.float64)).clamp(-1, 1)
    prediction = (target + 0.1 * torch.randn(shape, generator=generator, dtype=torch.float64)).clamp(-1, 1)
    return prediction.to(dtype), target.to(dtype)


@pytest.mark.parametrize("sample_rate, n_fft, n_mels, f_min, f_max", FILTERBANKS)
@pytest.mark.parametrize("mel_scale, norm", [("htk", None), ("slaney", "slaney")])
def test_mel_filterbank_equals_librosa(sample_rate, n_fft, n_mels, f_min, f_max, mel_scale, norm):
    """Measured max abs difference: 3e-8 (float32 rounding of ours; librosa in float64), for
    weights up to ~1 (HTK) or ~2/width (Slaney-normalised)."""
    librosa = pytest.importorskip("librosa")
    expected = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max, htk=mel_scale == "htk", norm=norm, dtype=np.float64
    )
    ours = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, mel_scale=mel_scale, norm=norm)
    assert ours.shape == expected.shape == (n_mels, n_fft // 2 + 1)
    np.testing.assert_allclose(ours.double().numpy(), expected, rtol=1e-6, atol=1e-6 * expected.max())


def _reference_mel(signal: np.ndarray, sample_rate: int, n_fft: int, f_min: float) -> np.ndarray:
    """audiocraft's ``MelSpectrogramWrapper`` (``log=False``, ``normalized=True``) in numpy/librosa:
    reflection padding, right zero padding to full frames, power / window energy, HTK mel without norm."""
    librosa = pytest.importorskip("librosa")
    hop = n_fft // 4
    side = (n_fft - hop) // 2
    signal = np.pad(signal, [(0, 0)] * (signal.ndim - 1) + [(side, side)], mode="reflect")
    length = signal.shape[-1]
    frames = int(np.ceil((length - n_fft) / hop)) + 1
    signal = np.pad(signal, [(0, 0)] * (signal.ndim - 1) + [(0, (frames - 1) * hop + n_fft - length)])
    spectrum = librosa.stft(signal, n_fft=n_fft, hop_length=hop, win_length=n_fft, window="hann", center=False)
    assert spectrum.shape[-1] == frames
    window = librosa.filters.get_window("hann", n_fft, fftbins=True)
    power = np.abs(spectrum) ** 2 / (window**2).sum()
    mels = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=64, fmin=f_min, fmax=None, htk=True, norm=None, dtype=np.float64)
    return np.einsum("mf,...ft->...mt", mels, power)


def _reference_multiscale_mel(prediction: np.ndarray, target: np.ndarray, sample_rate: int, scales, f_min: float) -> float:
    """audiocraft's ``MultiScaleMelSpectrogramLoss`` (``normalized=True``, ``alphas=False``, floor 1e-5)."""
    total = 0.0
    for i in scales:
        mel_prediction, mel_target = (_reference_mel(signal, sample_rate, 2**i, f_min) for signal in (prediction, target))
        total += np.abs(mel_prediction - mel_target).mean()
        total += ((np.log10(1e-5 + mel_prediction) - np.log10(1e-5 + mel_target)) ** 2).mean()
    return total / (2 * len(scales))


@pytest.mark.parametrize("shape", [(2, 1, 3000), (1, 2, 2500)])
@pytest.mark.parametrize("scales, f_min", [(range(5, 12), 64.0), (range(6, 11), 0.0)])
def test_multiscale_mel_equals_audiocraft_procedure(shape, scales, f_min):
    """Measured relative difference: below 1e-9 in float64 (our filterbank is rounded to float32), below
    1e-7 in float32."""
    prediction, target = _pair(shape)
    expected = _reference_multiscale_mel(prediction.double().numpy(), target.double().numpy(), 24_000, list(scales), f_min)
    loss = MultiScaleMelLoss(24_000, scales=scales, f_min=f_min)
    assert loss(prediction.double(), target.double()).item() == pytest.approx(expected, rel=1e-8)
    assert loss(prediction, target).item() == pytest.approx(expected, rel=1e-6)


def test_multiscale_mel_defaults_are_encodecs():
    """Paper sec. 3.4: windows 2^5 .. 2^11, 64 bins; audiocraft's msspec: f_min 64 Hz."""
    loss = MultiScaleMelLoss(24_000)
    assert loss.n_ffts == [32, 64, 128, 256, 512, 1024, 2048]
    mels = loss.mel_2048
    assert mels.shape == (64, 1025)
    first_bin_used = int(mels.sum(0).nonzero()[0])
    assert (first_bin_used - 1) * 24_000 / 2048 < 64.0 < first_bin_used * 24_000 / 2048


@pytest.mark.parametrize("shape", [(2, 1, 4000), (2, 2, 3000)])
def test_multiresolution_stft_equals_auraloss(shape):
    """Measured relative difference: up to 1.1e-7 in float32, up to 6e-9 in float64 (auraloss's window stays float32)."""
    auraloss = pytest.importorskip("auraloss")
    prediction, target = _pair(shape, seed=1)
    reference = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=[1024, 2048, 512], hop_sizes=[120, 240, 50], win_lengths=[600, 1200, 240], eps=1e-7
    )
    ours = MultiResolutionSTFTLoss()
    assert ours(prediction, target).item() == pytest.approx(reference(prediction, target).item(), rel=1e-6)
    # float64: auraloss keeps its window in float32
    assert ours(prediction.double(), target.double()).item() == pytest.approx(
        reference(prediction.double(), target.double()).item(), rel=5e-8
    )
    resolutions = [(512, 128, 512), (1024, 256, 1024), (2048, 512, 2048)]
    reference = auraloss.freq.MultiResolutionSTFTLoss(*map(list, zip(*resolutions)), eps=1e-7)
    assert MultiResolutionSTFTLoss(resolutions)(prediction, target).item() == pytest.approx(reference(prediction, target).item(), rel=1e-6)


@pytest.mark.parametrize("loss", [MultiScaleMelLoss(16_000), MultiResolutionSTFTLoss()], ids=["mel", "stft"])
def test_losses_are_differentiable_and_zero_at_the_target(loss):
    prediction, target = _pair((2, 1, 3000), seed=2)
    assert loss(target, target).item() == 0.0
    prediction.requires_grad_()
    value = loss(prediction, target)
    assert value.ndim == 0 and value.item() > 0
    value.backward()
    assert torch.isfinite(prediction.grad).all() and prediction.grad.abs().sum() > 0
