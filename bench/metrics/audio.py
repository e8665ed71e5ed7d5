"""Audio reconstruction metrics: multi-scale mel and STFT distances, SI-SDR, PESQ and STOI.

Every metric takes waveforms ``(B, C, samples)`` in [-1, 1] at the ``sample_rate`` it was built
with, scores each clip (the mean over its channels of a per-channel score, or for the spectral
distances the mean over channels, bins and frames) and reports the mean over clips. States are a
float64 ``total`` and an int64 ``count`` (PESQ also counts ``skipped`` clips), so shards merge by
summing. ``update(real, fake)``: the reference first, the reconstruction second.

Conventions (recorded through each metric's ``protocol``):

* `MelDistance` follows descript-audio-codec (DAC, Kumar et al. 2023, "High-Fidelity Audio
  Compression with Improved RVQGAN", https://arxiv.org/abs/2306.06546), ``dac/nn/loss.py``
  ``MelSpectrogramLoss`` with the values of its ``conf/base.yml`` (descriptinc/descript-audio-codec
  at c7cfc5d): windows 32, 64, ..., 2048 with 5, 10, ..., 320 mel bands, hop = window / 4, f_min 0,
  f_max Nyquist, ``pow`` 1, ``clamp_eps`` 1e-5, ``mag_weight`` 0, ``log_weight`` 1; per scale the mean
  absolute difference of ``log10(clamp(mel, 1e-5) ** pow)``, summed over the scales. The spectrogram
  is audiotools' ``AudioSignal.mel_spectrogram`` (descriptinc/audiotools at 348ebf2) as DAC calls it:
  ``torch.stft`` centred with reflection padding, periodic Hann window of the window length (scipy's
  ``get_window("hann")``), magnitudes ``|STFT|`` (not power) through librosa's default mel filters
  (Slaney scale, Slaney area normalisation; here `implementations.losses.spectral.mel_filterbank`).
  Note that ``MelSpectrogramLoss``'s class defaults differ (windows 2048 and 512, 150 and 80 mels,
  ``pow`` 2, ``mag_weight`` 1): Codec-SUPERB (voidful/Codec-SUPERB ``SoundCodec/metrics.py``) and
  DAC's ``scripts/evaluate.py`` without a loaded config use those; ``CODEC_SUPERB_MEL`` holds them
  (``MelDistance(sr, **CODEC_SUPERB_MEL)``). DAC computes in float32; here float64 (the shared
  filterbank's float32 filters aside).
* `STFTDistance`: DAC's ``MultiScaleSTFTLoss`` at its defaults (also those of ``conf/base.yml`` and
  Codec-SUPERB): windows 2048 and 512, hop = window / 4, the same STFT, per scale the mean absolute
  difference of ``log10(clamp(|STFT|, 1e-5) ** 2)`` plus that of ``|STFT|``, summed over scales.
* `SISDR`: scale-invariant SDR (Le Roux et al. 2019, "SDR - half-baked or well done?",
  https://arxiv.org/abs/1811.02508) in dB, ``10 log10(|a s|^2 / |a s - s_hat|^2)`` with
  ``a = <s_hat, s> / |s|^2``, after removing each signal's mean (``zero_mean``, as DAC's ``SISDRLoss``
  and torchmetrics' ``zero_mean=True``), per channel, float64, torchmetrics' ``eps`` guards.
* `PESQ`: ITU-T P.862.2 wide band through the ``pesq`` package (ludlows/python-pesq) at 16 kHz;
  other rates are resampled to 16 kHz with ``soxr`` (quality "HQ") first. A clip on which PESQ finds
  no utterance (silence) is skipped and counted in ``skipped``.
* `STOI`: short-time objective intelligibility (Taal et al. 2011) through ``pystoi`` at the clip's
  own rate (pystoi resamples to 10 kHz itself); ``extended=True`` gives ESTOI (Jensen & Taal 2016).

ViSQOL is not provided: no package on PyPI brings Google's ViSQOL offline (``speequal`` ships an
sdist that builds with Bazel, which fetches its dependencies; ``pyvisqol`` downloads its native
library from ModelScope at import; ``audio-samples-qoe`` is an independent reimplementation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from implementations.losses.spectral import mel_filterbank

DAC_MEL = {
    "window_lengths": (32, 64, 128, 256, 512, 1024, 2048),
    "n_mels": (5, 10, 20, 40, 80, 160, 320),
    "pow": 1.0,
    "clamp_eps": 1e-5,
    "mag_weight": 0.0,
    "log_weight": 1.0,
}
CODEC_SUPERB_MEL = {"window_lengths": (2048, 512), "n_mels": (150, 80), "pow": 2.0, "clamp_eps": 1e-5, "mag_weight": 1.0, "log_weight": 1.0}


def _check_pair(real: Tensor, fake: Tensor) -> None:
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
    if real.ndim != 3:
        raise ValueError(f"audio metrics take (B, C, samples) waveforms, got {tuple(real.shape)}")


class _PerClipMean(Metric):
    """Mean over clips of a per-clip score; states ``total`` (float64) and ``count``."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, sample_rate: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sample_rate = int(sample_rate)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def per_clip(self, real: Tensor, fake: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Scores ``(B,)`` of float64 waveforms ``(B, C, samples)``."""
        raise NotImplementedError

    def update(self, real: Tensor, fake: Tensor) -> None:
        """``real``, ``fake``: waveforms in [-1, 1], ``(B, C, samples)``, at ``sample_rate``."""
        _check_pair(real, fake)
        scores = self.per_clip(real.detach().double(), fake.detach().double())
        self.total += scores.sum()
        self.count += scores.numel()

    def compute(self) -> Tensor:
        return self.total / self.count


def stft_magnitude(x: Tensor, window_length: int) -> Tensor:
    """audiotools' STFT as DAC calls it: ``(..., samples)`` -> ``|STFT|`` ``(..., window_length // 2 + 1,
    1 + samples // hop)``, hop ``window_length // 4``, centred (reflection padding), periodic Hann."""
    window = torch.hann_window(window_length, periodic=True, dtype=x.dtype, device=x.device)
    flat = x.reshape(-1, x.shape[-1])
    spec = torch.stft(flat, window_length, window_length // 4, window=window, center=True, pad_mode="reflect", return_complex=True)
    return spec.abs().view(*x.shape[:-1], *spec.shape[-2:])


class _SpectralDistance(_PerClipMean):
    """Sum over scales of ``log_weight * mean|log10(clamp(S', eps)^pow) - log10(clamp(S, eps)^pow)| +
    mag_weight * mean|S' - S|`` per clip, ``S`` a magnitude or mel spectrogram."""

    higher_is_better = False

    def __init__(self, sample_rate: int, window_lengths: Sequence[int], pow: float, clamp_eps: float, mag_weight: float, log_weight: float, **kwargs) -> None:
        super().__init__(sample_rate, **kwargs)
        self.window_lengths = tuple(int(w) for w in window_lengths)
        self.pow, self.clamp_eps, self.mag_weight, self.log_weight = float(pow), float(clamp_eps), float(mag_weight), float(log_weight)

    def spectrogram(self, x: Tensor, scale: int) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def per_clip(self, real: Tensor, fake: Tensor) -> Tensor:
        score = real.new_zeros(real.shape[0])
        for scale in range(len(self.window_lengths)):
            s_real, s_fake = self.spectrogram(torch.cat([real, fake]), scale).chunk(2)
            log_real = s_real.clamp_min(self.clamp_eps).pow(self.pow).log10()
            log_fake = s_fake.clamp_min(self.clamp_eps).pow(self.pow).log10()
            score += self.log_weight * (log_fake - log_real).abs().flatten(1).mean(1)
            if self.mag_weight:
                score += self.mag_weight * (s_fake - s_real).abs().flatten(1).mean(1)
        return score


class MelDistance(_SpectralDistance):
    """Multi-scale mel distance (DAC ``MelSpectrogramLoss``; defaults: DAC's ``conf/base.yml``, see the
    module docstring). ``f_min`` / ``f_max`` apply to every scale (DAC: 0 and Nyquist)."""

    def __init__(
        self,
        sample_rate: int,
        window_lengths: Sequence[int] = DAC_MEL["window_lengths"],
        n_mels: Sequence[int] = DAC_MEL["n_mels"],
        pow: float = DAC_MEL["pow"],
        clamp_eps: float = DAC_MEL["clamp_eps"],
        mag_weight: float = DAC_MEL["mag_weight"],
        log_weight: float = DAC_MEL["log_weight"],
        f_min: float = 0.0,
        f_max: float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(sample_rate, window_lengths, pow, clamp_eps, mag_weight, log_weight, **kwargs)
        if len(n_mels) != len(self.window_lengths):
            raise ValueError(f"{len(n_mels)} mel band counts for {len(self.window_lengths)} windows")
        self.n_mels = tuple(int(n) for n in n_mels)
        self.filters = [
            mel_filterbank(sample_rate, w, n, f_min, f_max, mel_scale="slaney", norm="slaney").double() for w, n in zip(self.window_lengths, self.n_mels)
        ]
        self.protocol = (
            f"mel distance (DAC MelSpectrogramLoss): windows {list(self.window_lengths)}, mels {list(self.n_mels)}, hop window/4, "
            f"centred periodic-Hann |STFT|, librosa Slaney mel filters {f_min:g} Hz to {f_max or 'Nyquist'}, "
            f"sum over scales of {self.log_weight:g} * L1(log10(clamp(mel, {self.clamp_eps:g})^{self.pow:g}))"
            + (f" + {self.mag_weight:g} * L1(mel)" if self.mag_weight else "")
            + f", at {self.sample_rate} Hz, float64, per clip, mean over clips"
        )

    def spectrogram(self, x: Tensor, scale: int) -> Tensor:
        """``(B, C, samples)`` -> mel magnitudes ``(B, C, n_mels, frames)`` at scale ``scale``."""
        return self.filters[scale].to(x.device) @ stft_magnitude(x, self.window_lengths[scale])


class STFTDistance(_SpectralDistance):
    """Multi-scale STFT distance (DAC ``MultiScaleSTFTLoss`` at its defaults, see the module docstring)."""

    def __init__(
        self,
        sample_rate: int,
        window_lengths: Sequence[int] = (2048, 512),
        pow: float = 2.0,
        clamp_eps: float = 1e-5,
        mag_weight: float = 1.0,
        log_weight: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(sample_rate, window_lengths, pow, clamp_eps, mag_weight, log_weight, **kwargs)
        self.protocol = (
            f"STFT distance (DAC MultiScaleSTFTLoss): windows {list(self.window_lengths)}, hop window/4, centred periodic-Hann |STFT|, "
            f"sum over scales of {self.log_weight:g} * L1(log10(clamp(|STFT|, {self.clamp_eps:g})^{self.pow:g})) + {self.mag_weight:g} * L1(|STFT|), "
            f"at {self.sample_rate} Hz, float64, per clip, mean over clips"
        )

    def spectrogram(self, x: Tensor, scale: int) -> Tensor:
        return stft_magnitude(x, self.window_lengths[scale])


class SISDR(_PerClipMean):
    """Scale-invariant SDR in dB (Le Roux et al. 2019), per channel, mean over channels, then clips."""

    higher_is_better = True

    def __init__(self, sample_rate: int, zero_mean: bool = True, **kwargs) -> None:
        super().__init__(sample_rate, **kwargs)
        self.zero_mean = zero_mean
        self.protocol = f"SI-SDR (Le Roux et al. 2019), dB, zero_mean={zero_mean}, per channel, float64, mean over channels, then clips"

    def per_clip(self, real: Tensor, fake: Tensor) -> Tensor:
        if self.zero_mean:
            real, fake = real - real.mean(-1, keepdim=True), fake - fake.mean(-1, keepdim=True)
        eps = torch.finfo(real.dtype).eps
        alpha = ((fake * real).sum(-1, keepdim=True) + eps) / (real.square().sum(-1, keepdim=True) + eps)
        target = alpha * real
        ratio = (target.square().sum(-1) + eps) / ((fake - target).square().sum(-1) + eps)
        return (10 * ratio.log10()).mean(1)


class PESQ(_PerClipMean):
    """PESQ (P.862.2 wide band, MOS-LQO) through the ``pesq`` package at 16 kHz; inputs at another rate
    are resampled with ``soxr`` first. Silent clips (no utterance found) are skipped and counted."""

    higher_is_better = True
    rate = 16000

    def __init__(self, sample_rate: int, **kwargs) -> None:
        super().__init__(sample_rate, **kwargs)
        import pesq  # noqa: F401  (fail at build time, not mid-evaluation)
        import soxr  # noqa: F401

        self.add_state("skipped", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        resampled = f"resampled {self.sample_rate} -> 16000 Hz with soxr HQ, " if self.sample_rate != self.rate else ""
        self.protocol = f"PESQ wide band (ITU-T P.862.2, pesq package) at 16 kHz, {resampled}per channel, mean over channels, then clips; silent clips skipped"

    def to_rate(self, x: np.ndarray) -> np.ndarray:
        import soxr

        return x if self.sample_rate == self.rate else soxr.resample(x, self.sample_rate, self.rate, quality="HQ")

    def update(self, real: Tensor, fake: Tensor) -> None:
        from pesq import NoUtterancesError, pesq

        _check_pair(real, fake)
        real_np, fake_np = real.detach().double().cpu().numpy(), fake.detach().double().cpu().numpy()
        for clip_real, clip_fake in zip(real_np, fake_np):
            try:
                scores = [pesq(self.rate, self.to_rate(r), self.to_rate(f), "wb") for r, f in zip(clip_real, clip_fake)]
            except NoUtterancesError:
                self.skipped += 1
                continue
            self.total += float(np.mean(scores))
            self.count += 1


class STOI(_PerClipMean):
    """STOI (or ESTOI with ``extended=True``) through ``pystoi`` at the clip's own sample rate."""

    higher_is_better = True

    def __init__(self, sample_rate: int, extended: bool = False, **kwargs) -> None:
        super().__init__(sample_rate, **kwargs)
        import pystoi  # noqa: F401  (fail at build time, not mid-evaluation)

        self.extended = extended
        self.protocol = f"{'ESTOI' if extended else 'STOI'} (pystoi, resampled to 10 kHz by pystoi), per channel, mean over channels, then clips"

    def per_clip(self, real: Tensor, fake: Tensor) -> Tensor:
        from pystoi import stoi

        real_np, fake_np = real.cpu().numpy(), fake.cpu().numpy()
        scores = [np.mean([stoi(r, f, self.sample_rate, extended=self.extended) for r, f in zip(rc, fc)]) for rc, fc in zip(real_np, fake_np)]
        return torch.tensor(scores, dtype=torch.float64)


__all__ = ["CODEC_SUPERB_MEL", "DAC_MEL", "PESQ", "SISDR", "STOI", "MelDistance", "STFTDistance", "stft_magnitude"]
