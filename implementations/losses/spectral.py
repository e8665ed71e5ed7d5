"""Spectral reconstruction losses for audio tokenizers (SoundStream and EnCodec recipes), on
``torch.stft`` only. Inputs are ``(B, C, samples)``, prediction first and target second; each loss
returns a differentiable scalar.

* `mel_filterbank`: triangular mel filters on the STFT bin frequencies ``k * sample_rate / n_fft``, as
  ``librosa.filters.mel`` builds them (and torchaudio's ``melscale_fbanks``): the HTK mel scale
  (``2595 log10(1 + f / 700)``; torchaudio's default) or Slaney's (linear below 1 kHz, logarithmic above;
  librosa's default), without normalisation (torchaudio's default) or with Slaney's area normalisation
  (each filter scaled by ``2 / (upper - lower edge in Hz)``; librosa's default).
* `MultiScaleMelLoss`: EnCodec's frequency-domain loss (Défossez et al. 2022, "High Fidelity Neural Audio
  Compression", https://arxiv.org/abs/2210.13438, sec. 3.4): 64-bin mel spectrograms of a normalised STFT
  with windows ``2^i`` and hops ``2^i / 4`` for ``i = 5 .. 11``, an L1 and an L2 term per scale with
  ``alpha_i = 1``. What the paper leaves open follows audiocraft's ``MultiScaleMelSpectrogramLoss`` and
  ``MelSpectrogramWrapper`` (``audiocraft/losses/specloss.py``, github.com/facebookresearch/audiocraft)
  with the ``msspec`` settings of ``config/solver/compression/default.yaml``: the signal is reflection-padded
  by ``(n_fft - hop) // 2`` on both sides, then zero-padded on the right so that the last frame is full
  (``ceil`` frames, no centring); periodic Hann window; the power spectrogram divided by the window's
  energy (torchaudio's ``normalized=True``) goes through HTK filters without normalisation from ``f_min``
  64 Hz to Nyquist; the L1 term is the mean absolute difference of these mel powers, the L2 term the mean
  squared difference of ``log10(1e-5 + mel)``; the sum over scales is divided by ``sum_i (1 + alpha_i)``
  (audiocraft's ``normalized``). audiocraft's config uses the scales ``i = 6 .. 10`` (``range_start=6,
  range_end=11``): pass ``scales=range(6, 11)`` for that.
* `MultiResolutionSTFTLoss` (Yamamoto et al. 2020, "Parallel WaveGAN", https://arxiv.org/abs/1910.11480,
  sec. 2.3 and 4.1.2): per resolution, spectral convergence ``|| |Y| - |X| ||_F / || |Y| ||_F`` plus the
  mean absolute difference of log magnitudes, averaged over the resolutions (FFT size, hop, window) =
  (1024, 120, 600), (2048, 240, 1200), (512, 50, 240). Followed ``parallel_wavegan/losses/stft_loss.py`` of
  github.com/kan-bayashi/ParallelWaveGAN: centred STFT (reflection padding), periodic Hann window,
  magnitudes ``sqrt(max(|STFT|^2, 1e-7))``, the Frobenius norms taken over the whole batch, channels
  folded into the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def hz_to_mel(frequencies: Tensor, mel_scale: str = "htk") -> Tensor:
    """Frequencies in Hz -> mels on the ``htk`` or ``slaney`` scale."""
    if mel_scale == "htk":
        return 2595.0 * torch.log10(1.0 + frequencies / 700.0)
    if mel_scale == "slaney":  # linear (200/3 Hz per mel) up to 1 kHz = 15 mels, then 27 mels per factor 6.4
        log_step = math.log(6.4) / 27.0
        return torch.where(frequencies < 1000.0, frequencies * 3.0 / 200.0, 15.0 + torch.log(frequencies / 1000.0) / log_step)
    raise ValueError(f"mel_scale must be 'htk' or 'slaney', got {mel_scale!r}")


def mel_to_hz(mels: Tensor, mel_scale: str = "htk") -> Tensor:
    """The inverse of `hz_to_mel`."""
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    if mel_scale == "slaney":
        log_step = math.log(6.4) / 27.0
        return torch.where(mels < 15.0, mels * 200.0 / 3.0, 1000.0 * torch.exp(log_step * (mels - 15.0)))
    raise ValueError(f"mel_scale must be 'htk' or 'slaney', got {mel_scale!r}")


def mel_filterbank(
    sample_rate: float,
    n_fft: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    mel_scale: str = "htk",
    norm: str | None = None,
) -> Tensor:
    """Triangular mel filters ``(n_mels, n_fft // 2 + 1)`` (float32, computed in float64) to apply to a
    one-sided power or magnitude spectrum: filter ``m`` rises from edge ``m`` to ``m + 1`` and falls to
    ``m + 2`` of ``n_mels + 2`` edges equally spaced in mels between ``f_min`` and ``f_max`` (default
    Nyquist). ``norm="slaney"`` divides each filter by half its width in Hz (constant area)."""
    if norm not in (None, "slaney"):
        raise ValueError(f"norm must be None or 'slaney', got {norm!r}")
    f_max = sample_rate / 2 if f_max is None else f_max
    bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * (sample_rate / n_fft)
    mel_range = hz_to_mel(torch.tensor([f_min, f_max], dtype=torch.float64), mel_scale)
    edges = mel_to_hz(torch.linspace(mel_range[0].item(), mel_range[1].item(), n_mels + 2, dtype=torch.float64), mel_scale)
    widths = edges.diff()  # (n_mels + 1,)
    offsets = edges.unsqueeze(1) - bins  # (n_mels + 2, bins): edge minus bin frequency
    rising = -offsets[:-2] / widths[:-1].unsqueeze(1)
    falling = offsets[2:] / widths[1:].unsqueeze(1)
    filters = torch.minimum(rising, falling).clamp_min(0.0)
    if norm == "slaney":
        filters = filters * (2.0 / (edges[2:] - edges[:-2])).unsqueeze(1)
    return filters.float()


class MultiScaleMelLoss(nn.Module):
    """EnCodec's multi-scale mel loss (see the module docstring): ``forward(prediction, target)`` with
    ``(B, C, samples)`` inputs, ``samples`` above 3/8 of the largest window (the reflection padding) -> scalar.

    Args:
        sample_rate: of the inputs, in Hz.
        scales: exponents ``i`` of the window sizes ``2^i`` (hop ``2^i / 4``); the paper's 5 .. 11.
        n_mels: mel bins per scale.
        f_min, f_max: the filters' frequency range in Hz (``f_max`` None: Nyquist).
        floor: added to the mel powers before ``log10`` in the L2 term.
    """

    def __init__(
        self,
        sample_rate: float,
        scales: Sequence[int] = tuple(range(5, 12)),
        n_mels: int = 64,
        f_min: float = 64.0,
        f_max: float | None = None,
        floor: float = 1e-5,
    ):
        super().__init__()
        self.n_ffts = [2**i for i in scales]
        self.floor = floor
        for n_fft in self.n_ffts:
            self.register_buffer(f"mel_{n_fft}", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max), persistent=False)

    def mel_spectrogram(self, x: Tensor, n_fft: int) -> Tensor:
        """``(N, samples)`` -> mel powers ``(N, n_mels, ceil(samples / hop))`` at window ``n_fft``, hop ``n_fft // 4``."""
        hop = n_fft // 4
        side = (n_fft - hop) // 2
        x = F.pad(x.unsqueeze(1), (side, side), mode="reflect").squeeze(1)
        frames = 1 + max(-(-(x.shape[-1] - n_fft) // hop), 0)  # enough frames to cover every sample
        x = F.pad(x, (0, (frames - 1) * hop + n_fft - x.shape[-1]))
        window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
        spec = torch.stft(x, n_fft, hop, n_fft, window, center=False, return_complex=True)
        power = (spec.real.square() + spec.imag.square()) / window.square().sum()
        return getattr(self, f"mel_{n_fft}").to(power.dtype) @ power

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        both = torch.cat([prediction, target]).flatten(0, 1)  # one STFT per scale for both signals
        loss = prediction.new_zeros(())
        for n_fft in self.n_ffts:
            mel_prediction, mel_target = self.mel_spectrogram(both, n_fft).chunk(2)
            l1 = F.l1_loss(mel_prediction, mel_target)
            l2 = F.mse_loss(torch.log10(self.floor + mel_prediction), torch.log10(self.floor + mel_target))
            loss = loss + l1 + l2
        return loss / (2 * len(self.n_ffts))


class MultiResolutionSTFTLoss(nn.Module):
    """Parallel WaveGAN's multi-resolution STFT loss (see the module docstring): ``forward(prediction,
    target)`` with ``(B, C, samples)`` inputs -> scalar, the mean over resolutions of spectral convergence
    plus log-magnitude L1.

    Args:
        resolutions: ``(n_fft, hop_length, win_length)`` per resolution.
        eps: lower bound of the squared magnitudes (keeps the log and its gradient finite).
    """

    def __init__(
        self, resolutions: Sequence[tuple[int, int, int]] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240)), eps: float = 1e-7
    ):
        super().__init__()
        self.resolutions = [tuple(resolution) for resolution in resolutions]
        self.eps = eps

    def magnitude(self, x: Tensor, n_fft: int, hop_length: int, win_length: int) -> Tensor:
        """``(N, samples)`` -> STFT magnitudes ``(N, n_fft // 2 + 1, 1 + samples // hop_length)``."""
        window = torch.hann_window(win_length, dtype=x.dtype, device=x.device)
        spec = torch.stft(x, n_fft, hop_length, win_length, window, return_complex=True)
        return (spec.real.square() + spec.imag.square()).clamp_min(self.eps).sqrt()

    def forward(self, prediction: Tensor, target: Tensor) -> Tensor:
        both = torch.cat([prediction, target]).flatten(0, 1)
        loss = prediction.new_zeros(())
        for resolution in self.resolutions:
            magnitude_prediction, magnitude_target = self.magnitude(both, *resolution).chunk(2)
            convergence = torch.linalg.vector_norm(magnitude_target - magnitude_prediction) / torch.linalg.vector_norm(magnitude_target)
            log_magnitude = F.l1_loss(magnitude_prediction.log(), magnitude_target.log())
            loss = loss + convergence + log_magnitude
        return loss / len(self.resolutions)
