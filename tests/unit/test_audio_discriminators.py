"""The audio discriminators: EnCodec's MS-STFT discriminator (``ms_stft``) and MelGAN's multi-scale
waveform discriminator (``ms_waveform``).

Checked against the official networks through their parameter counts (derived by hand from the official
code below, and confirmed by building the official modules: audiocraft's ``msstftd.py`` at commit 896ec7c
with torchaudio 2.11, and melgan-neurips' ``mel2wav/modules.py``, in a scratch directory outside this
repository, where with copied weights their logits and features equalled ours exactly, max abs diff 0.0,
on 2 x 1 s of 24 kHz audio, mono and stereo); the STFT input against a numpy framing + FFT; MelGAN's
inter-scale pooling against numpy; output shapes for 1 s at 24 kHz computed from the layer arithmetic;
gradients; per-item independence.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from implementations import create_discriminator, list_discriminators
from implementations.modules.discriminators.audio import MultiScaleSTFTDiscriminator, MultiScaleWaveformDiscriminator


def _parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _audio(batch: int, channels: int, samples: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (0.3 * torch.randn(batch, channels, samples, generator=generator)).clamp(-1, 1)


def test_registered_as_audio_discriminators():
    assert {"ms_stft", "ms_waveform"} <= set(list_discriminators())
    assert isinstance(create_discriminator("ms_stft"), MultiScaleSTFTDiscriminator)
    assert isinstance(create_discriminator("ms_waveform", in_channels=2), MultiScaleWaveformDiscriminator)
    assert MultiScaleSTFTDiscriminator.modality == MultiScaleWaveformDiscriminator.modality == "audio"


def test_ms_stft_parameter_count_equals_audiocraft():
    """audiocraft ``MultiScaleSTFTDiscriminator(filters=32, n_ffts=[1024, 2048, 512, 256, 128], ...)``,
    ``DiscriminatorSTFT`` defaults (kernel 3x9, dilations 1, 2, 4, ``filters_scale=1``, norm weight_norm).
    Per scale, with ``C`` input channels (weight norm adds one gain per output channel):

    * ``convs.0``: Conv2d(2C, 32, 3x9) built WITHOUT weight norm (its ``NormConv2d`` gets no ``norm``):
      2C * 32 * 27 + 32 = 1728 C + 32;
    * ``convs.1..3``: Conv2d(32, 32, 3x9), weight norm: 32 * 32 * 27 + 32 (g) + 32 (bias) = 27,712 each, 83,136;
    * ``convs.4``: Conv2d(32, 32, 3x3), weight norm: 9,216 + 32 + 32 = 9,280;
    * ``conv_post``: Conv2d(32, 1, 3x3), weight norm: 288 + 1 + 1 = 290.

    Mono: 94,466 per scale, 472,330 for 5 scales; stereo: 96,194 per scale, 480,970 (both also counted
    on the official module built in a scratch directory).
    """
    assert _parameters(MultiScaleSTFTDiscriminator()) == 472_330
    assert _parameters(MultiScaleSTFTDiscriminator(in_channels=2)) == 480_970
    first, dilated = MultiScaleSTFTDiscriminator().discriminators[0].convs[:2]
    assert not hasattr(first, "parametrizations") and hasattr(dilated, "parametrizations")


def test_ms_waveform_parameter_count_equals_melgan():
    """melgan-neurips ``Discriminator(num_D=3, ndf=16, n_layers=4, downsampling_factor=4)`` (the defaults
    of its ``scripts/train.py``), every convolution weight-normed (``v``, one gain per output channel, bias).
    Per scale:

    * Conv1d(1, 16, 15): 240 + 16 + 16 = 272;
    * Conv1d(16, 64, 41, groups 4): 64 * 4 * 41 + 64 + 64 = 10,624;
    * Conv1d(64, 256, 41, groups 16): 256 * 4 * 41 + 512 = 42,496;
    * Conv1d(256, 1024, 41, groups 64): 1024 * 4 * 41 + 2048 = 169,984;
    * Conv1d(1024, 1024, 41, groups 256): 169,984;
    * Conv1d(1024, 1024, 5): 1024 * 1024 * 5 + 2048 = 5,244,928;
    * Conv1d(1024, 1, 3): 3,072 + 1 + 1 = 3,074.

    5,641,362 per scale, 16,924,086 for 3 (also counted on the official module in a scratch directory).
    """
    assert _parameters(MultiScaleWaveformDiscriminator()) == 16_924_086
    assert _parameters(MultiScaleWaveformDiscriminator().discriminators[0]) == 5_641_362


def test_ms_stft_shapes_for_one_second_at_24khz():
    """1 + (24000 - n_fft) // hop frames; n_fft // 2 + 1 bins halved (rounding up) by the three stride-2 convolutions."""
    discriminator = MultiScaleSTFTDiscriminator().eval()
    with torch.no_grad():
        out = discriminator(_audio(1, 1, 24_000))
    frames = {1024: 90, 2048: 43, 512: 184, 256: 372, 128: 747}
    bins = {1024: [513, 257, 129, 65], 2048: [1025, 513, 257, 129], 512: [257, 129, 65, 33], 256: [129, 65, 33, 17], 128: [65, 33, 17, 9]}
    assert len(out.logits) == len(out.features) == 5
    for n_fft, logits, features in zip((1024, 2048, 512, 256, 128), out.logits, out.features):
        widths = bins[n_fft]
        assert logits.shape == (1, 1, frames[n_fft], widths[-1])
        assert [tuple(f.shape) for f in features] == [(1, 32, frames[n_fft], w) for w in widths + [widths[-1]]]


def test_ms_waveform_shapes_for_one_second_at_24khz():
    """Scales see 24000, 12000 and 6000 samples (pooling by 2); four stride-4 layers divide by 4, rounding up."""
    discriminator = MultiScaleWaveformDiscriminator().eval()
    with torch.no_grad():
        out = discriminator(_audio(1, 1, 24_000))
    lengths = [[24000, 6000, 1500, 375, 94], [12000, 3000, 750, 188, 47], [6000, 1500, 375, 94, 24]]
    assert len(out.logits) == len(out.features) == 3
    for scale_lengths, logits, features in zip(lengths, out.logits, out.features):
        assert logits.shape == (1, 1, scale_lengths[-1])
        widths = [16, 64, 256, 1024, 1024, 1024]
        assert [tuple(f.shape) for f in features] == [(1, w, n) for w, n in zip(widths, scale_lengths + [scale_lengths[-1]])]


@pytest.mark.parametrize("channels", [1, 2])
def test_stft_input_equals_numpy_normalised_stft(channels):
    """The 2-D network's input: frames of ``n_fft`` samples every ``hop`` (no centring) times a periodic
    Hann window, ``rfft``, divided by the window's L2 norm; real parts of every channel, then imaginary
    parts, laid out (frames, frequency)."""
    n_fft, hop = 256, 64
    discriminator = MultiScaleSTFTDiscriminator(in_channels=channels, n_ffts=[n_fft], hop_lengths=[hop], win_lengths=[n_fft])
    x = _audio(2, channels, 1000, seed=1).double()
    ours = discriminator.discriminators[0].spectrogram(x).numpy()
    signal = x.numpy()
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    starts = range(0, 1000 - n_fft + 1, hop)
    frames = np.stack([signal[..., s : s + n_fft] for s in starts], axis=-2)  # (B, C, frames, n_fft)
    spectrum = np.fft.rfft(frames * window, axis=-1) / np.sqrt((window**2).sum())
    expected = np.concatenate([spectrum.real, spectrum.imag], axis=1)
    assert ours.shape == expected.shape == (2, 2 * channels, len(starts), n_fft // 2 + 1)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-12)


def test_waveform_scales_see_the_average_pooled_signal():
    """With the same weights at every scale, scale ``i`` must equal scale 0 applied to the signal
    average-pooled ``i`` times (window 4, stride 2, padding 1, mean over the real samples only)."""
    discriminator = MultiScaleWaveformDiscriminator(num_layers=2).eval()
    for scale in discriminator.discriminators[1:]:
        scale.load_state_dict(discriminator.discriminators[0].state_dict())
    x = _audio(1, 1, 2000, seed=2)

    def pooled(signal: np.ndarray) -> np.ndarray:
        n = signal.shape[-1]
        return np.stack([signal[..., max(2 * i - 1, 0) : min(2 * i + 3, n)].mean(-1) for i in range(n // 2)], axis=-1)

    with torch.no_grad():
        out = discriminator(x)
        signal = x.numpy()
        for scale in range(3):
            expected, _ = discriminator.discriminators[0](torch.from_numpy(signal.copy()))
            torch.testing.assert_close(out.logits[scale], expected, rtol=1e-5, atol=1e-6)
            signal = pooled(signal)


@pytest.mark.parametrize("name", ["ms_stft", "ms_waveform"])
def test_gradients_reach_the_input(name):
    discriminator = create_discriminator(name, in_channels=2)
    x = _audio(1, 2, 4000, seed=3).requires_grad_()
    out = discriminator(x)
    (sum(logits.mean() for logits in out.logits) + sum(f.mean() for features in out.features for f in features)).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in discriminator.parameters())


@pytest.mark.parametrize("name", ["ms_stft", "ms_waveform"])
def test_batch_items_are_independent(name):
    discriminator = create_discriminator(name).eval()
    x = _audio(2, 1, 6000, seed=4)
    with torch.no_grad():
        batched = discriminator(x)
        singles = [discriminator(x[i : i + 1]) for i in range(2)]
    for k, logits in enumerate(batched.logits):
        for i in range(2):
            torch.testing.assert_close(logits[i : i + 1], singles[i].logits[k], rtol=1e-5, atol=1e-6)
            for feature, single in zip(batched.features[k], singles[i].features[k]):
                torch.testing.assert_close(feature[i : i + 1], single, rtol=1e-5, atol=1e-6)
