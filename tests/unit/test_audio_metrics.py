"""bench.metrics.audio on real speech (espeak-ng), degraded by noise, a low-pass filter and 8-bit
mu-law, against independent references: a librosa/numpy computation of DAC's mel and STFT distances,
the closed form and torchmetrics for SI-SDR, and the ``pesq`` and ``pystoi`` packages called directly."""

from __future__ import annotations

import shutil
import subprocess

import librosa
import numpy as np
import pesq
import pystoi
import pytest
import scipy.io.wavfile
import scipy.signal
import soxr
import torch
from torchmetrics.audio import ScaleInvariantSignalDistortionRatio

from bench.metrics import CodebookUsage
from bench.metrics.audio import CODEC_SUPERB_MEL, DAC_MEL, PESQ, SISDR, STOI, MelDistance, STFTDistance

SENTENCES = (
    "The quick brown fox jumps over the lazy dog, while seven bright stars watch quietly.",
    "Speech codecs are compared with objective measures of quality and intelligibility.",
)
SECONDS = 2.0


def _speak(text: str, path) -> tuple[np.ndarray, int]:
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    rate, samples = scipy.io.wavfile.read(path)
    return samples.astype(np.float64) / 32768.0, rate


@pytest.fixture(scope="module")
def speech_22k(tmp_path_factory) -> tuple[np.ndarray, int]:
    """Two sentences of espeak-ng speech, ``(2, samples)`` float64 in [-1, 1] at espeak-ng's 22,050 Hz."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (Debian: apt-get install espeak-ng): no real speech to test on")
    folder = tmp_path_factory.mktemp("speech")
    clips = [_speak(text, folder / f"{i}.wav") for i, text in enumerate(SENTENCES)]
    rate = clips[0][1]
    length = int(SECONDS * rate)
    return np.stack([np.pad(x, (0, max(0, length - len(x))))[:length] for x, _ in clips]), rate


def _degrade(clean: np.ndarray, rate: int) -> dict[str, np.ndarray]:
    """Three degraded versions of ``clean`` ``(N, samples)``: white noise at 10 dB SNR, a 4th-order
    Butterworth low-pass at 2 kHz, and 8-bit mu-law (mu = 255) companding."""
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(clean.shape) * np.sqrt((clean**2).mean(-1, keepdims=True) / 10.0)
    lowpass = scipy.signal.sosfilt(scipy.signal.butter(4, 2000, fs=rate, output="sos"), clean, axis=-1)
    mu = 255.0
    compressed = np.sign(clean) * np.log1p(mu * np.abs(clean)) / np.log1p(mu)
    levels = np.round((compressed + 1) / 2 * mu) / mu * 2 - 1
    mulaw = np.sign(levels) * np.expm1(np.abs(levels) * np.log1p(mu)) / mu
    return {"noise": clean + noise, "lowpass": lowpass, "mulaw": mulaw}


@pytest.fixture(scope="module")
def speech_16k(speech_22k) -> tuple[np.ndarray, int]:
    clean, rate = speech_22k
    return np.stack([soxr.resample(x, rate, 16000) for x in clean]), 16000


def _batch(x: np.ndarray) -> torch.Tensor:
    """``(N, samples)`` numpy -> ``(N, 1, samples)`` float32 tensor (what a tokenizer emits)."""
    return torch.from_numpy(x).float().unsqueeze(1)


def _as_evaluated(x: np.ndarray) -> np.ndarray:
    """The float32 waveform the metric sees, back in float64 for the references."""
    return x.astype(np.float32).astype(np.float64)


# ---------------------------------------------------------------- spectral distances vs librosa


def _reference_spectral(real: np.ndarray, fake: np.ndarray, rate: int, window_lengths, pow, clamp_eps, mag_weight, log_weight, n_mels=None) -> float:
    """DAC's loss on one clip, written from audiotools/DAC's procedure with librosa and numpy."""
    total = 0.0
    for i, window in enumerate(window_lengths):
        spectra = []
        for x in (real, fake):
            magnitude = np.abs(librosa.stft(x, n_fft=window, hop_length=window // 4, window="hann", center=True, pad_mode="reflect"))
            if n_mels is not None:
                magnitude = librosa.filters.mel(sr=rate, n_fft=window, n_mels=n_mels[i], dtype=np.float64) @ magnitude
            spectra.append(magnitude)
        s_real, s_fake = spectra
        log_real = np.log10(np.maximum(s_real, clamp_eps) ** pow)
        log_fake = np.log10(np.maximum(s_fake, clamp_eps) ** pow)
        total += log_weight * np.abs(log_fake - log_real).mean() + mag_weight * np.abs(s_fake - s_real).mean()
    return total


@pytest.mark.filterwarnings("ignore:Empty filters detected")  # 5 mel bands on a 32-point FFT at 16 kHz
@pytest.mark.parametrize("convention", ["dac", "codec_superb"])
def test_mel_distance_equals_librosa_reference(speech_16k, convention):
    clean, rate = speech_16k
    options = DAC_MEL if convention == "dac" else CODEC_SUPERB_MEL
    for name, fake in _degrade(clean, rate).items():
        metric = MelDistance(rate, **options)
        metric.update(_batch(clean), _batch(fake))
        expected = np.mean([_reference_spectral(_as_evaluated(r), _as_evaluated(f), rate, **options) for r, f in zip(clean, fake)])
        assert float(metric.compute()) == pytest.approx(expected, rel=1e-7), name  # measured 1e-10 .. 1e-9 (float32 filters)


def test_stft_distance_equals_librosa_reference(speech_16k):
    clean, rate = speech_16k
    options = dict(window_lengths=(2048, 512), pow=2.0, clamp_eps=1e-5, mag_weight=1.0, log_weight=1.0)
    for name, fake in _degrade(clean, rate).items():
        metric = STFTDistance(rate)
        metric.update(_batch(clean), _batch(fake))
        expected = np.mean([_reference_spectral(_as_evaluated(r), _as_evaluated(f), rate, **options) for r, f in zip(clean, fake)])
        assert float(metric.compute()) == pytest.approx(expected, rel=1e-12), name


def test_spectral_distances_order_the_degradations(speech_16k):
    clean, rate = speech_16k
    degraded = _degrade(clean, rate)
    for cls in (MelDistance, STFTDistance):
        scores = {}
        for name, fake in [("clean", clean), *degraded.items()]:
            metric = cls(rate)
            metric.update(_batch(clean), _batch(fake))
            scores[name] = float(metric.compute())
        assert scores["clean"] == 0.0
        assert 0 < scores["mulaw"] < scores["noise"]  # fine quantisation noise is closer than 10 dB white noise


# ---------------------------------------------------------------- SI-SDR


def test_si_sdr_closed_form(speech_16k):
    """fake = a s + n with n orthogonal to s (both zero-mean): SI-SDR = 10 log10(a^2 |s|^2 / |n|^2),
    whatever the gain a."""
    clean, rate = speech_16k
    s = clean - clean.mean(-1, keepdims=True)
    n = np.random.default_rng(1).standard_normal(s.shape)
    n -= n.mean(-1, keepdims=True)
    n -= (n * s).sum(-1, keepdims=True) / (s * s).sum(-1, keepdims=True) * s
    n *= np.array([[0.01], [0.05]])  # a different SNR per clip
    for gain in (0.3, 1.0, 2.5):
        fake = gain * s + n
        expected = 10 * np.log10(gain**2 * (s * s).sum(-1) / (n * n).sum(-1))
        metric = SISDR(rate)
        metric.update(torch.from_numpy(s).unsqueeze(1), torch.from_numpy(fake).unsqueeze(1))
        assert float(metric.compute()) == pytest.approx(expected.mean(), abs=1e-9)
        assert expected[0] != pytest.approx(expected[1], abs=0.5)  # the two clips score differently


@pytest.mark.parametrize("zero_mean", [True, False])
def test_si_sdr_equals_torchmetrics(speech_16k, zero_mean):
    clean, rate = speech_16k
    for name, fake in _degrade(clean, rate).items():
        metric = SISDR(rate, zero_mean=zero_mean)
        metric.update(_batch(clean), _batch(fake))
        reference = ScaleInvariantSignalDistortionRatio(zero_mean=zero_mean)
        reference.update(_batch(fake).double(), _batch(clean).double())  # torchmetrics: (preds, target)
        assert float(metric.compute()) == pytest.approx(float(reference.compute()), abs=1e-5), name  # torchmetrics sums in float32


# ---------------------------------------------------------------- PESQ and STOI


def test_pesq_at_16k_equals_the_pesq_package(speech_16k):
    clean, rate = speech_16k
    scores = {}
    for name, fake in _degrade(clean, rate).items():
        metric = PESQ(rate)
        metric.update(_batch(clean), _batch(fake))
        expected = np.mean([pesq.pesq(16000, _as_evaluated(r), _as_evaluated(f), "wb") for r, f in zip(clean, fake)])
        scores[name] = float(metric.compute())
        assert scores[name] == pytest.approx(expected, abs=1e-6), name
    assert scores["noise"] < scores["mulaw"]  # 10 dB white noise is heard as worse than fine quantisation


def test_pesq_resamples_other_rates_with_soxr(speech_22k):
    clean, rate = speech_22k
    fake = _degrade(clean, rate)["lowpass"]
    metric = PESQ(rate)
    metric.update(_batch(clean), _batch(fake))
    ours = float(metric.compute())
    to16 = lambda x: soxr.resample(_as_evaluated(x), rate, 16000, quality="HQ")  # noqa: E731
    assert ours == pytest.approx(np.mean([pesq.pesq(16000, to16(r), to16(f), "wb") for r, f in zip(clean, fake)]), abs=1e-6)
    # Another resampler gives nearly the same score: the number is PESQ's, not soxr's.
    poly = lambda x: scipy.signal.resample_poly(_as_evaluated(x), 320, 441)  # noqa: E731
    assert ours == pytest.approx(np.mean([pesq.pesq(16000, poly(r), poly(f), "wb") for r, f in zip(clean, fake)]), abs=0.05)


def test_pesq_skips_silent_clips(speech_16k):
    clean, rate = speech_16k
    real = np.concatenate([clean[:1], np.zeros_like(clean[:1])])
    metric = PESQ(rate)
    with np.errstate(invalid="ignore"):  # pesq divides the silent clip by its zero peak
        metric.update(_batch(real), _batch(real))
    assert int(metric.skipped) == 1 and int(metric.count) == 1
    assert float(metric.compute()) == pytest.approx(pesq.pesq(16000, _as_evaluated(clean[0]), _as_evaluated(clean[0]), "wb"))


@pytest.mark.parametrize("extended", [False, True])
def test_stoi_equals_pystoi(speech_22k, extended):
    clean, rate = speech_22k
    scores = {}
    for name, fake in _degrade(clean, rate).items():
        metric = STOI(rate, extended=extended)
        metric.update(_batch(clean), _batch(fake))
        expected = np.mean([pystoi.stoi(_as_evaluated(r), _as_evaluated(f), rate, extended=extended) for r, f in zip(clean, fake)])
        scores[name] = float(metric.compute())
        assert scores[name] == pytest.approx(expected, abs=1e-9), name
    assert scores["noise"] < scores["mulaw"] <= 1.0


# ---------------------------------------------------------------- shards, channels, errors


@pytest.mark.parametrize("make", [MelDistance, STFTDistance, SISDR, PESQ, STOI])
def test_shards_merge_to_the_whole(speech_16k, make):
    clean, rate = speech_16k
    fake = _degrade(clean, rate)["noise"]
    whole, first, second = make(rate), make(rate), make(rate)
    whole.update(_batch(clean), _batch(fake))
    first.update(_batch(clean[:1]), _batch(fake[:1]))
    second.update(_batch(clean[1:]), _batch(fake[1:]))
    first.merge_state(second)
    assert float(first.compute()) == pytest.approx(float(whole.compute()), rel=1e-12)


def test_stereo_clip_is_the_mean_of_its_channels(speech_16k):
    clean, rate = speech_16k
    fake = _degrade(clean, rate)["lowpass"]
    stereo_real, stereo_fake = _batch(clean).transpose(0, 1), _batch(fake).transpose(0, 1)  # one clip, 2 channels
    for make in (MelDistance, SISDR, PESQ):
        stereo, mono = make(rate), make(rate)
        stereo.update(stereo_real, stereo_fake)
        mono.update(_batch(clean), _batch(fake))
        assert int(stereo.count) == 1
        assert float(stereo.compute()) == pytest.approx(float(mono.compute()), rel=1e-12)


def test_shape_errors_are_clear():
    metric = SISDR(16000)
    with pytest.raises(ValueError, match="differ in shape"):
        metric.update(torch.zeros(1, 1, 100), torch.zeros(1, 1, 90))
    with pytest.raises(ValueError, match=r"\(B, C, samples\)"):
        metric.update(torch.zeros(1, 100), torch.zeros(1, 100))


# ---------------------------------------------------------------- RVQ codes: per-level usage


def test_rvq_codes_get_per_level_usage_and_perplexity():
    """RVQ codes ``(B, frames, levels)``: level 0 uses all 8 codes uniformly, level 1 two codes, level 2
    one code; CodebookUsage reports each level and their mean."""
    frames = torch.arange(16)
    codes = torch.stack([frames % 8, frames % 2, torch.zeros_like(frames)], dim=-1).view(2, 8, 3)
    metric = CodebookUsage(codebook_size=8, num_codebooks=3)
    metric.update(codes)
    out = metric.compute()
    assert out["usage_per_codebook"] == [1.0, 0.25, 0.125]
    assert out["perplexity_per_codebook"] == pytest.approx([8.0, 2.0, 1.0])
    assert out["usage"] == pytest.approx((1.0 + 0.25 + 0.125) / 3)
    assert out["perplexity"] == pytest.approx(11.0 / 3)
