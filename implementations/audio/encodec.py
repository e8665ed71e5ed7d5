"""EnCodec (Defossez et al. 2022, "High Fidelity Neural Audio Compression", https://arxiv.org/abs/2210.13438)
as facebookresearch/encodec builds its two released models (``encodec/model.py``,
``EncodecModel.encodec_model_24khz`` / ``encodec_model_48khz``):

* 24 kHz mono: causal SEANet with weight norm, strides 2, 4, 5, 8 (320 samples, 75 frames/s), 128-dim
  latents, 32 levels of 1024 codes (10 bits): 1.5, 3, 6, 12, 24 kbps with 2, 4, 8, 16, 32 levels;
* 48 kHz stereo: non-causal SEANet with time group norm (150 frames/s), 16 levels: 3, 6, 12, 24 kbps with
  2, 4, 8, 16 levels; 1-second segments overlapping by 1 %, each normalised by its RMS (the scale is sent
  with the codes, see `implementations.audio.codec`). The official segmentation starts a segment every
  47,520 samples while any input is left, so one second of audio is a full segment plus a 480-sample one
  (150 + 2 frames): the 48 kHz rate is a little above the nominal bandwidth.

Levels per bandwidth as the official code: ``floor(bandwidth / (10 bits * ceil(rate / 320) / 1000))``.
The residual VQ is the shared `ResidualQuantizer` of `VectorQuantizer` levels as EnCodec trains them
(``encodec/quantization/core_vq.py``): EMA codebooks (decay 0.99, Laplace epsilon 1e-5), k-means
initialisation (50 iterations) on the first batch, dead codes (EMA size < 2) restarted from the batch,
commitment weight 1. Differences from the official training code: the shared quantizer sums the levels'
commitment losses (the paper's l_w; the official code averages them), and quantizer dropout draws any
number of levels in [1, depth] per batch (audiocraft's ``q_dropout``) rather than one of the target
bandwidths (``quantizer_dropout`` turns it off).

`encodec_state_dict` maps an official state dict (``encodec_24khz-d7cc33bc.th``,
``encodec_48khz-7e698e3e.th``) onto this module tree.
"""

from __future__ import annotations

import math
import re
from typing import ClassVar

from torch import Tensor

from ..arguments import require_at_least, require_positive
from ..checkpoints import WeightFile
from ..modules.seanet import SEANetDecoder, SEANetEncoder
from ..quantizers.residual import ResidualQuantizer
from ..registry import register_tokenizer
from .codec import AudioCodec


class EnCodec(AudioCodec):
    family = "EnCodec"
    paper = "Defossez et al. 2022, https://arxiv.org/abs/2210.13438"
    target_bandwidths: ClassVar[tuple[float, ...]] = ()

    @property
    def kbps_per_level(self) -> float:
        """Official ``get_bandwidth_per_quantizer``: bits per code times the (ceiled) frame rate."""
        return math.log2(self.codebook_size) * math.ceil(self.sample_rate / self.hop_length) / 1000

    @property
    def bandwidth(self) -> float:
        """The nominal kbps of the levels in use."""
        return self.num_levels * self.kbps_per_level

    def levels_for(self, bandwidth: float) -> int:
        if bandwidth not in self.target_bandwidths:
            raise ValueError(f"{type(self).__name__} runs at {', '.join(map(str, self.target_bandwidths))} kbps, not {bandwidth}")
        return max(1, math.floor(bandwidth / self.kbps_per_level))

    def set_bandwidth(self, bandwidth: float) -> None:
        """Encode with the levels of ``bandwidth`` kbps (official ``set_target_bandwidth``)."""
        self.num_levels = self.levels_for(bandwidth)


class EnCodec24kHz(EnCodec):
    sample_rate = 24_000
    target_bandwidths = (1.5, 3.0, 6.0, 12.0, 24.0)


class EnCodec48kHz(EnCodec):
    sample_rate = 48_000
    target_bandwidths = (3.0, 6.0, 12.0, 24.0)


# EnCodec's codebooks (core_vq.py defaults as vq.ResidualVectorQuantizer builds them).
_LEVEL = dict(codebook_size=1024, ema_decay=0.99, ema_epsilon=1e-5, kmeans_init=True, kmeans_iters=50, dead_code_threshold=2.0, beta=1.0)


def build_encodec(family: type[EnCodec], *, channels: int, causal: bool, norm: str, normalize: bool, segment: float | None,
                  bandwidth: float, n_filters: int = 32, dimension: int = 128, lstm: int = 2, quantizer_dropout: bool = True) -> EnCodec:  # fmt: skip
    """An EnCodec with the official ``_get_model`` arguments; ``n_filters``, ``dimension`` and ``lstm`` shrink it."""
    require_positive(channels=channels, segment=segment, bandwidth=bandwidth, n_filters=n_filters, dimension=dimension)
    require_at_least(0, lstm=lstm)
    seanet = dict(channels=channels, dimension=dimension, n_filters=n_filters, lstm=lstm, norm=norm, causal=causal)
    encoder, decoder = SEANetEncoder(**seanet), SEANetDecoder(**seanet)
    kbps_per_level = math.log2(_LEVEL["codebook_size"]) * math.ceil(family.sample_rate / encoder.hop_length) / 1000
    depth = int(max(family.target_bandwidths) // kbps_per_level)
    quantizer = ResidualQuantizer(dimension, depth, "vq", quantizer_dropout=quantizer_dropout, **_LEVEL)
    model = family(encoder, quantizer, decoder, channels=channels, num_levels=depth, normalize=normalize, segment=segment)
    model.set_bandwidth(bandwidth)
    return model


# -- official state dict -> ours ---------------------------------------------------------------------------

_CONV_LEAVES = {"weight_g": "parametrizations.weight.original0", "weight_v": "parametrizations.weight.original1", "weight": "weight", "bias": "bias"}
_CODEBOOK_LEAVES = {"embed": "codebook", "embed_avg": "ema_sum", "cluster_size": "ema_cluster_size", "inited": "initialized"}
_LAYER_KINDS = {"conv": "conv", "convtr": "up", "block": "residual", "shortcut": "residual", "lstm": "lstm"}


def _conv_key(rest: str) -> str | None:
    """An official ``SConv1d`` / ``SConvTranspose1d`` suffix (``conv.conv.weight_g``, ``convtr.norm.bias``) -> ours."""
    match = re.fullmatch(r"(conv|convtr)\.(conv|convtr|norm)\.(\w+)", rest)
    if match is None:
        return None
    wrapper, inner, leaf = match.groups()
    if inner == "norm":
        return f"norm.{leaf}" if leaf in ("weight", "bias") else None
    return f"conv.{_CONV_LEAVES[leaf]}" if inner == wrapper and leaf in _CONV_LEAVES else None


def _layer_key(kind: str, rest: str) -> str | None:
    """The suffix of one official layer of ``kind`` -> ours, or None when it has no place."""
    if kind in ("conv", "up"):
        return _conv_key(rest)
    if kind == "lstm":
        return rest if re.fullmatch(r"lstm\.(weight|bias)_(ih|hh)_l\d+", rest) else None
    match = re.fullmatch(r"(block\.1|block\.3|shortcut)\.(.+)", rest)  # SEANetResnetBlock: [ELU, conv, ELU, conv]
    converted = match and _conv_key(match.group(2))
    return converted and {"block.1": "conv1", "block.3": "conv2", "shortcut": "shortcut"}[match.group(1)] + "." + converted


def _seanet_paths(state: dict[str, Tensor], side: str) -> dict[int, tuple[str, str]]:
    """Index in the official ``{side}.model`` Sequential -> (kind, our module path), read off the order of
    its layers: encoder ``conv, [residual..., conv]..., lstm, conv``; decoder ``conv, lstm, [up, residual...]..., conv``."""
    kinds = {}
    for key in state:
        if match := re.match(rf"{side}\.model\.(\d+)\.(\w+)\.", key):
            kinds[int(match.group(1))] = _LAYER_KINDS.get(match.group(2), "?")
    convs = [index for index in sorted(kinds) if kinds[index] == "conv"]
    paths, block, residual = {}, 0 if side == "encoder" else -1, 0
    for index in sorted(kinds):
        kind = kinds[index]
        if index == convs[0] or index == convs[-1]:
            paths[index] = (kind, "conv_in" if index == convs[0] else "conv_out")
        elif kind == "lstm":
            paths[index] = (kind, "lstm")
        elif kind == "residual" and block >= 0:
            paths[index] = (kind, f"blocks.{block}.residuals.{residual}")
            residual += 1
        elif kind == "conv" and side == "encoder":
            paths[index] = (kind, f"blocks.{block}.down")
            block, residual = block + 1, 0
        elif kind == "up" and side == "decoder":
            block, residual = block + 1, 0
            paths[index] = (kind, f"blocks.{block}.up")
    return paths


def _check_shapes(mapped: dict[str, Tensor]) -> None:
    """Weight-norm magnitudes fit their directions; every codebook's tensors agree."""
    for key, value in mapped.items():
        if key.endswith("original0"):
            direction = mapped.get(key[:-1] + "1")
            if direction is None or value.shape != (direction.shape[0],) + (1,) * (direction.ndim - 1):
                raise ValueError(f"{key}: weight_g {tuple(value.shape)} does not fit weight_v {None if direction is None else tuple(direction.shape)}")
        if key.endswith(".codebook"):
            level = key[: -len("codebook")]
            sizes, initialized = mapped[level + "ema_cluster_size"].shape, mapped[level + "initialized"]
            if value.ndim != 2 or mapped[level + "ema_sum"].shape != value.shape or sizes != value.shape[:1] or initialized.shape != ():
                raise ValueError(f"{level}: embed {tuple(value.shape)}, embed_avg, cluster_size {tuple(sizes)} and inited disagree")


def encodec_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official ``EncodecModel`` state dict -> ours. Weight norm's ``weight_g`` / ``weight_v`` (PyTorch's
    old hook) become the parametrization's ``original0`` / ``original1``; the codebooks' ``embed``,
    ``embed_avg``, ``cluster_size`` and ``inited`` (1-element float) become ``codebook``, ``ema_sum``,
    ``ema_cluster_size`` and ``initialized`` (bool). Raises ``KeyError`` naming every key it cannot place."""
    paths = {side: _seanet_paths(state, side) for side in ("encoder", "decoder")}
    mapped, unplaced = {}, []
    for key, value in state.items():
        new = None
        if match := re.fullmatch(r"(encoder|decoder)\.model\.(\d+)\.(.+)", key):
            side, index, rest = match.group(1), int(match.group(2)), match.group(3)
            kind, path = paths[side].get(index, (None, None))
            converted = path and _layer_key(kind, rest)
            new = converted and f"{side}.{path}.{converted}"
        elif (match := re.fullmatch(r"quantizer\.vq\.layers\.(\d+)\._codebook\.(\w+)", key)) and match.group(2) in _CODEBOOK_LEAVES:
            new = f"quantizer.levels.{match.group(1)}.{_CODEBOOK_LEAVES[match.group(2)]}"
            value = value.reshape(()).bool() if match.group(2) == "inited" else value
        if new is None or new in mapped:
            unplaced.append(key)
        else:
            mapped[new] = value
    if unplaced:
        raise KeyError(f"EnCodec state dict keys with no place in {EnCodec.__name__}: {', '.join(unplaced[:5])}" + (" ..." if len(unplaced) > 5 else ""))
    _check_shapes(mapped)
    return mapped


def _release(filename: str, description: str) -> WeightFile:
    return WeightFile(
        filename=filename, url=f"https://dl.fbaipublicfiles.com/encodec/v0/{filename}", sha256=filename.rsplit("-", 1)[1].split(".")[0],
        licence="MIT (facebookresearch/encodec)",
        notes=f"EnCodec {description}; torch.save of EncodecModel.state_dict() (weight norm as weight_g/weight_v); the encodec package "
              "downloads it into the torch hub checkpoints folder; inputs in [-1, 1]",
    )  # fmt: skip


_24KHZ = dict(channels=1, causal=True, norm="weight_norm", normalize=False, segment=None)
_48KHZ = dict(channels=2, causal=False, norm="time_group_norm", normalize=True, segment=1.0)


@register_tokenizer(input_shape=(1, 24_000), pretrained=(_release("encodec_24khz-d7cc33bc.th", "24 kHz mono, causal"),), convert=encodec_state_dict)
def encodec_24khz(bandwidth: float = 6.0, **overrides) -> EnCodec:
    """EnCodec 24 kHz mono at ``bandwidth`` kbps (1.5, 3, 6, 12, 24: 2 to 32 levels of 1024 codes at 75 Hz)."""
    return build_encodec(EnCodec24kHz, **{**_24KHZ, "bandwidth": bandwidth, **overrides})


@register_tokenizer(input_shape=(2, 48_000), pretrained=(_release("encodec_48khz-7e698e3e.th", "48 kHz stereo, non-causal"),), convert=encodec_state_dict)
def encodec_48khz(bandwidth: float = 6.0, **overrides) -> EnCodec:
    """EnCodec 48 kHz stereo at ``bandwidth`` kbps (3, 6, 12, 24: 2 to 16 levels at 150 Hz), in normalised
    1-second segments."""
    return build_encodec(EnCodec48kHz, **{**_48KHZ, "bandwidth": bandwidth, **overrides})


@register_tokenizer(input_shape=(1, 24_000), convert=encodec_state_dict)
def encodec_tiny(bandwidth: float = 6.0, **overrides) -> EnCodec:
    """EnCodec 24 kHz's architecture at CPU size: 4 base filters (64 at the LSTM), 32-dim latents, one LSTM
    layer; same strides, codebooks and bandwidths."""
    return build_encodec(EnCodec24kHz, **{**_24KHZ, "bandwidth": bandwidth, "n_filters": 4, "dimension": 32, "lstm": 1, **overrides})
