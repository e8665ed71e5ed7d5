"""Audio discriminators: EnCodec's multi-scale STFT discriminator and MelGAN's multi-scale waveform
discriminator (which SoundStream adopts). Both take audio ``(B, C, samples)`` in [-1, 1]; every
convolution is weight-normalised (Salimans & Kingma 2016) with PyTorch's default initialisation.

* `MultiScaleSTFTDiscriminator` (MS-STFT-D; Défossez et al. 2022, "High Fidelity Neural Audio
  Compression", https://arxiv.org/abs/2210.13438, sec. 3.4): followed audiocraft's
  ``audiocraft/adversarial/discriminators/msstftd.py`` (github.com/facebookresearch/audiocraft, the same
  network as ``encodec/msstftd.py`` of github.com/facebookresearch/encodec) with the scales of
  ``config/solver/compression/default.yaml`` (``msstftd``: filters 32, FFT sizes 1024, 2048, 512, 256,
  128, hops of a quarter window). Per scale: a complex STFT (periodic Hann window, no centring, divided by
  the window's L2 norm as torchaudio's ``normalized=True``), its real and imaginary parts stacked as
  ``2 * in_channels`` input channels of a 2-D network over (frames, frequency): a 3x9 convolution, three
  3x9 convolutions with stride 2 along frequency and dilations 1, 2, 4 along time, a 3x3 convolution, each
  followed by LeakyReLU, then a 3x3 convolution to one logit per (frame, frequency) cell. All widths are
  ``filters`` (audiocraft's ``filters_scale=1``). As in audiocraft the first convolution has no weight
  norm (its ``NormConv2d`` is built without the ``norm`` argument). The LeakyReLU slope is 0.2, the
  network's default; audiocraft's EnCodec training config sets 0.3 (``negative_slope`` here).
* `MultiScaleWaveformDiscriminator` (Kumar et al. 2019, "MelGAN: Generative Adversarial Networks for
  Conditional Waveform Synthesis", https://arxiv.org/abs/1910.06711, sec. 2.2; used by SoundStream,
  Zeghidour et al. 2021, https://arxiv.org/abs/2107.03312, sec. III-E): followed ``mel2wav/modules.py``
  (``Discriminator``, ``NLayerDiscriminator``) of github.com/descriptinc/melgan-neurips with the defaults
  of its ``scripts/train.py`` (3 scales, ``ndf=16``, 4 layers, factor 4). Scales see the waveform, then
  the waveform average-pooled by 2 and by 4 (window 4, stride 2, padding 1, padding not counted). Per scale:
  a 15-tap convolution (reflection padding) to ``filters`` channels, ``num_layers`` grouped convolutions
  (groups of 4 input channels, kernel ``10 * factor + 1``, stride ``factor``) multiplying the width by
  ``factor`` up to ``max_filters``, a 5-tap convolution doubling it (capped), each followed by LeakyReLU
  0.2, and a 3-tap convolution to one logit per position. audiocraft's ``msd.py`` is the same network, but
  its forward discards the pooled signal (``self.downsample(x)`` is not assigned), so all its scales see
  the full-rate waveform; MelGAN's pooling is kept here. MelGAN's ``weights_init`` draws N(0, 0.02) into
  the weight-normed convolutions' derived ``weight``, which the weight-norm hook recomputes from ``g`` and
  ``v`` before every forward: its effective initialisation is PyTorch's default, as here.

``features`` are the activations after each LeakyReLU (the logits are not repeated there), the inputs of
feature matching (`implementations.losses.adversarial.feature_matching`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ...protocol import Discriminator, DiscriminatorOutput
from ...registry import register_discriminator


class STFTDiscriminator(nn.Module):
    """One STFT resolution of `MultiScaleSTFTDiscriminator`: ``(B, C, samples)`` -> logits
    ``(B, 1, frames, F')`` with ``frames = 1 + (samples - n_fft) // hop_length`` and ``F'`` the
    ``n_fft // 2 + 1`` frequency bins halved (rounding up) once per dilation; features: ``len(dilations) + 2``
    activations ``(B, filters, frames, ...)``."""

    def __init__(
        self,
        in_channels: int,
        filters: int,
        n_fft: int,
        hop_length: int,
        win_length: int,
        kernel_size: tuple[int, int] = (3, 9),
        dilations: Sequence[int] = (1, 2, 4),
        negative_slope: float = 0.2,
    ):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        time_kernel, freq_kernel = kernel_size
        square = (time_kernel, time_kernel)
        self.convs = nn.ModuleList([nn.Conv2d(2 * in_channels, filters, kernel_size, padding=_same(kernel_size))])
        for dilation in dilations:
            padding = ((time_kernel - 1) * dilation // 2, (freq_kernel - 1) // 2)
            self.convs.append(weight_norm(nn.Conv2d(filters, filters, kernel_size, stride=(1, 2), dilation=(dilation, 1), padding=padding)))
        self.convs.append(weight_norm(nn.Conv2d(filters, filters, square, padding=_same(square))))
        self.conv_post = weight_norm(nn.Conv2d(filters, 1, square, padding=_same(square)))
        self.activation = nn.LeakyReLU(negative_slope)

    def spectrogram(self, x: Tensor) -> Tensor:
        """``(B, C, samples)`` -> real and imaginary parts ``(B, 2C, frames, n_fft // 2 + 1)``, channels
        ordered ``[real of each channel, imaginary of each channel]``."""
        if x.dtype in (torch.float16, torch.bfloat16):  # no half-precision FFT kernels on CPU
            x = x.float()
        batch, channels, samples = x.shape
        window = torch.hann_window(self.win_length, dtype=x.dtype, device=x.device)
        spec = torch.stft(
            x.reshape(batch * channels, samples), self.n_fft, self.hop_length, self.win_length, window, center=False, return_complex=True
        )
        spec = spec / window.square().sum().sqrt()
        spec = spec.reshape(batch, channels, *spec.shape[-2:])
        return torch.cat([spec.real, spec.imag], dim=1).transpose(2, 3)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        z = self.spectrogram(x)
        features = []
        for conv in self.convs:
            z = self.activation(conv(z))
            features.append(z)
        return self.conv_post(z), features


@register_discriminator("ms_stft")
class MultiScaleSTFTDiscriminator(Discriminator):
    """EnCodec's MS-STFT discriminator: ``(B, in_channels, samples)`` -> one `STFTDiscriminator` per
    ``(n_fft, hop_length, win_length)``; logits ``[(B, 1, frames_i, F'_i)]``, features
    ``[[5 activations (B, filters, frames_i, ...)]]`` (with three dilations).

    Args:
        in_channels: audio channels (1 mono, 2 stereo); each contributes a real and an imaginary input channel.
        filters: width of every convolution.
        n_ffts, hop_lengths, win_lengths: one STFT resolution (one sub-discriminator) per position.
        kernel_size: (time, frequency) kernel of the first and the dilated convolutions; the last two are
            square (time x time).
        dilations: time dilation of each stride-2 (along frequency) convolution.
        negative_slope: of the LeakyReLUs (audiocraft's EnCodec config: 0.3).
    """

    modality = "audio"
    paper = "Défossez et al. 2022, https://arxiv.org/abs/2210.13438 (audiocraft's msstftd.py)"

    def __init__(
        self,
        in_channels: int = 1,
        filters: int = 32,
        n_ffts: Sequence[int] = (1024, 2048, 512, 256, 128),
        hop_lengths: Sequence[int] = (256, 512, 128, 64, 32),
        win_lengths: Sequence[int] = (1024, 2048, 512, 256, 128),
        kernel_size: tuple[int, int] = (3, 9),
        dilations: Sequence[int] = (1, 2, 4),
        negative_slope: float = 0.2,
    ):
        super().__init__()
        if not len(n_ffts) == len(hop_lengths) == len(win_lengths):
            raise ValueError(f"one hop and window length per FFT size: got {len(n_ffts)}, {len(hop_lengths)}, {len(win_lengths)}")
        self.discriminators = nn.ModuleList(
            STFTDiscriminator(in_channels, filters, n_fft, hop, win, tuple(kernel_size), dilations, negative_slope)
            for n_fft, hop, win in zip(n_ffts, hop_lengths, win_lengths)
        )

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        outputs = [discriminator(x) for discriminator in self.discriminators]
        return DiscriminatorOutput(logits=[logits for logits, _ in outputs], features=[features for _, features in outputs])


class WaveformDiscriminator(nn.Module):
    """One scale of `MultiScaleWaveformDiscriminator` (MelGAN's ``NLayerDiscriminator``): ``(B, C, samples)``
    -> logits ``(B, 1, samples')`` with ``samples'`` the input length divided by ``factor`` (rounding up)
    ``num_layers`` times; features: ``num_layers + 2`` activations."""

    def __init__(self, in_channels: int, filters: int, max_filters: int, num_layers: int, factor: int, negative_slope: float = 0.2):
        super().__init__()
        self.convs = nn.ModuleList([weight_norm(nn.Conv1d(in_channels, filters, 15, padding=7, padding_mode="reflect"))])
        width = filters
        for _ in range(num_layers):
            wider = min(width * factor, max_filters)
            self.convs.append(weight_norm(nn.Conv1d(width, wider, 10 * factor + 1, stride=factor, padding=5 * factor, groups=width // 4)))
            width = wider
        wider = min(width * 2, max_filters)
        self.convs.append(weight_norm(nn.Conv1d(width, wider, 5, padding=2)))
        self.conv_post = weight_norm(nn.Conv1d(wider, 1, 3, padding=1))
        self.activation = nn.LeakyReLU(negative_slope)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        features = []
        for conv in self.convs:
            x = self.activation(conv(x))
            features.append(x)
        return self.conv_post(x), features


@register_discriminator("ms_waveform")
class MultiScaleWaveformDiscriminator(Discriminator):
    """MelGAN's multi-scale waveform discriminator: ``(B, in_channels, samples)`` -> logits
    ``[(B, 1, samples_i)]`` for the waveform average-pooled ``i`` times by 2, features
    ``[[num_layers + 2 activations]]``.

    Args:
        in_channels: audio channels (1 mono, 2 stereo).
        num_scales: sub-discriminators, the ``i``-th on the waveform average-pooled ``i`` times.
        filters: width of the first convolution (a multiple of 4).
        max_filters: cap of the widths.
        num_layers: strided grouped convolutions, each multiplying the width by ``downsampling_factor``.
        downsampling_factor: their stride (kernel ``10 * factor + 1``).
        negative_slope: of the LeakyReLUs.
    """

    modality = "audio"
    paper = "Kumar et al. 2019, https://arxiv.org/abs/1910.06711 (melgan-neurips' Discriminator; SoundStream's wave discriminator)"

    def __init__(
        self,
        in_channels: int = 1,
        num_scales: int = 3,
        filters: int = 16,
        max_filters: int = 1024,
        num_layers: int = 4,
        downsampling_factor: int = 4,
        negative_slope: float = 0.2,
    ):
        super().__init__()
        if filters % 4:
            raise ValueError(f"filters must be a multiple of 4 (grouped convolutions of 4 channels), got {filters}")
        self.discriminators = nn.ModuleList(
            WaveformDiscriminator(in_channels, filters, max_filters, num_layers, downsampling_factor, negative_slope)
            for _ in range(num_scales)
        )

    def forward(self, x: Tensor) -> DiscriminatorOutput:
        logits, features = [], []
        for scale, discriminator in enumerate(self.discriminators):
            if scale:
                x = F.avg_pool1d(x, 4, stride=2, padding=1, count_include_pad=False)
            scale_logits, scale_features = discriminator(x)
            logits.append(scale_logits)
            features.append(scale_features)
        return DiscriminatorOutput(logits=logits, features=features)


def _same(kernel_size: tuple[int, int]) -> tuple[int, int]:
    return ((kernel_size[0] - 1) // 2, (kernel_size[1] - 1) // 2)
