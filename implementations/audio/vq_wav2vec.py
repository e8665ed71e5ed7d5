"""vq-wav2vec (Baevski et al. 2020, "vq-wav2vec: Self-Supervised Learning of Discrete Speech
Representations", ICLR, https://arxiv.org/abs/1910.05453), as fairseq builds it
(``fairseq/models/wav2vec/wav2vec.py``, ``fairseq/modules/{gumbel,kmeans}_vector_quantizer.py``,
facebookresearch/fairseq at 3d262bb).

A speech tokenizer without a decoder (``reconstructs = False``): 16 kHz mono waveforms ``(B, 1, samples)``
go through fairseq's convolutional feature extractor, 8 layers of 512 channels with (kernel, stride)
(10, 5), (8, 4), (4, 2), (4, 2), (4, 2), (1, 1), (1, 1), (1, 1) (total stride 160: about 100 frames per
second), each convolution (no bias) -> GroupNorm with one group -> activation; then the quantizer emits
``G = 2`` codes of ``V = 320`` per frame, codes ``(B, frames, 2)`` (16.6 bits per frame, 1.7 kbps).

* Gumbel variant (``vq_wav2vec_gumbel``): logits from a two-layer MLP 512 -> 1024 -> 2 x 320 (fairseq
  ``vq_depth`` 2, ``weight_proj_factor`` 2), a straight-through hard Gumbel-softmax sample in training and
  the argmax in eval, each group's code selecting a 256-d vector, the two concatenated (the shared
  `GumbelQuantizer` with ``logits_hidden``). The temperature anneals as fairseq's ``set_num_updates``:
  ``max(2 * 0.999995 ** n, 0.5)`` with ``n`` the buffer ``num_updates``, which counts training forward
  passes (micro-batches under gradient accumulation). No quantizer loss (fairseq's wav2vec criterion
  adds none without ``--loss-weights``).
* k-means variant (``vq_wav2vec_kmeans``): features first go through fairseq's ``projection``, a 1x1
  convolution with 2 groups (no bias) and GroupNorm with 2 groups, then each 256-channel half takes its
  nearest of 320 codes (Euclidean), with the VQ-VAE loss ``|sg(z) - e|^2 + 0.25 |z - sg(e)|^2``
  (``gamma = 0.25``) averaged over groups and a straight-through gradient. Each group is the shared
  `VectorQuantizer` (``beta = 0.25``; its uniform codebook init differs from fairseq's ``0.01 * randn``,
  which only matters for training from scratch). The shared ``kmeans`` quantizer of this package is
  VideoBERT's offline hierarchical k-means, a different method.
* The aggregator (`context`): 12 causal convolutions of 512 channels, kernels 2 .. 13, stride 1, left
  replication padding of ``k - 1``, bias, GroupNorm with one group, activation, and skip connections
  ``(block(x) + x) * sqrt(0.5)``; it reads the quantized features. vq-wav2vec trains everything with
  wav2vec's contrastive loss on the aggregator's future-step predictions (fairseq
  ``Wav2VecPredictionsModel``); that loss and its ``project_to_steps`` head are not implemented here.

Options not fixed by the paper come from the README's vq-wav2vec training command
(``examples/wav2vec/README.md``): GELU activations, ``--skip-connections-agg``, ``--residual-scale 0.5``,
no ``--log-compression`` and no ``--skip-connections-feat`` (both off by default in the argparse version
that trained the released models, commit 3335de5f), dropout 0. The released checkpoints store their
true values in their ``args``, which were not available here: check them when a file is at hand (the
key map below cannot see them; ``log_compression``, ``skip_connections_feat`` and ``activation`` are
arguments of the factories).

`vq_wav2vec_state_dict` maps a fairseq checkpoint's ``model`` weights onto this module tree, every key
placed or named; its key list follows fairseq's module tree and was checked against the state dicts
of fairseq's own ``Wav2VecModel`` (fairseq-fixed 0.12.3.1 source, at reduced width; see
``tests/parity/test_vq_wav2vec.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..arguments import require_positive
from ..checkpoints import WeightFile
from ..protocol import Quantizer, QuantizerOutput, Tokenizer
from ..quantizers.gumbel import GumbelQuantizer, gumbel_temperature
from ..quantizers.vector import VectorQuantizer
from ..registry import register_tokenizer

FEATURE_LAYERS = ((512, 10, 5), (512, 8, 4), (512, 4, 2), (512, 4, 2), (512, 4, 2), (512, 1, 1), (512, 1, 1), (512, 1, 1))
AGGREGATOR_LAYERS = tuple((512, k, 1) for k in range(2, 14))
TEMPERATURE = (2.0, 0.5, 0.999995)  # fairseq vq_temp: start, end, decay per update
_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


class ConvBlock(nn.Module):
    """Convolution -> GroupNorm(1) -> activation on ``(B, C, T)``; ``causal`` pads ``kernel - 1`` frames
    on the left by replication first (fairseq's aggregator block)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, bias: bool, activation: str, causal: bool = False):
        super().__init__()
        self.causal_pad = kernel - 1 if causal else 0
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, bias=bias)
        self.norm = nn.GroupNorm(1, out_channels)
        self.activation = _ACTIVATIONS[activation]()

    def forward(self, x: Tensor) -> Tensor:
        if self.causal_pad:
            x = F.pad(x, (self.causal_pad, 0), mode="replicate")
        return self.activation(self.norm(self.conv(x)))


class FeatureExtractor(nn.Module):
    """fairseq ``ConvFeatureExtractionModel``: waveforms ``(B, samples)`` -> features ``(B, C, frames)``.

    skip_connections: where a block keeps the channel count, add its input (subsampled to the block's
    frame rate) and scale by ``sqrt(residual_scale)``. log_compression: ``log(|x| + 1)`` at the end.
    """

    def __init__(self, layers: Sequence[tuple[int, int, int]], activation: str, log_compression: bool, skip_connections: bool, residual_scale: float):
        super().__init__()
        channels = [1] + [dim for dim, _, _ in layers]
        self.layers = nn.ModuleList(ConvBlock(channels[i], dim, k, s, False, activation) for i, (dim, k, s) in enumerate(layers))
        self.kernels_strides = [(k, s) for _, k, s in layers]
        self.log_compression = log_compression
        self.skip_connections = skip_connections
        self.residual_scale = math.sqrt(residual_scale)

    def frames(self, samples: int) -> int:
        for kernel, stride in self.kernels_strides:
            samples = (samples - kernel) // stride + 1
        return samples

    def forward(self, x: Tensor) -> Tensor:
        x = x.unsqueeze(1)
        for layer in self.layers:
            residual, x = x, layer(x)
            if self.skip_connections and x.shape[1] == residual.shape[1]:
                residual = residual[..., :: residual.shape[2] // x.shape[2]][..., : x.shape[2]]
                x = (x + residual) * self.residual_scale
        return (x.abs() + 1).log() if self.log_compression else x


class Aggregator(nn.Module):
    """fairseq ``ConvAggegator``: causal convolution blocks ``(B, C, T)`` -> ``(B, C', T)``, each with the
    skip connection ``(block(x) + residual(x)) * sqrt(residual_scale)``, ``residual`` a 1x1 convolution
    (no bias) where the channel count changes, else the identity."""

    def __init__(self, in_channels: int, layers: Sequence[tuple[int, int, int]], activation: str, skip_connections: bool, residual_scale: float):
        super().__init__()
        channels = [in_channels] + [dim for dim, _, _ in layers]
        self.layers = nn.ModuleList(ConvBlock(channels[i], dim, k, s, True, activation, causal=True) for i, (dim, k, s) in enumerate(layers))
        for i, layer in enumerate(self.layers):
            changes = skip_connections and channels[i] != channels[i + 1]
            layer.residual = nn.Conv1d(channels[i], channels[i + 1], 1, bias=False) if changes else nn.Identity()
        self.skip_connections = skip_connections
        self.residual_scale = math.sqrt(residual_scale)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            out = layer(x)
            if self.skip_connections:
                out = (out + layer.residual(x)) * self.residual_scale
            x = out
        return x


class GroupedVectorQuantizer(Quantizer):
    """vq-wav2vec's k-means quantizer: ``z`` ``(..., dim)`` split into ``groups`` equal parts, each
    quantized by its own `VectorQuantizer` (``codebook_size`` codes, VQ-VAE loss with commitment ``beta``);
    codes ``(..., groups)``, loss and metrics the mean over groups (fairseq averages over all channels)."""

    def __init__(self, dim: int, codebook_size: int, groups: int = 2, beta: float = 0.25):
        super().__init__()
        require_positive(dim=dim, codebook_size=codebook_size, groups=groups)
        if dim % groups:
            raise ValueError(f"dim {dim} is not divisible by groups {groups}")
        self.dim, self.codebook_size, self.num_codebooks = dim, codebook_size, groups
        self.quantizers = nn.ModuleList(VectorQuantizer(dim // groups, codebook_size, beta=beta) for _ in range(groups))

    def forward(self, z: Tensor) -> QuantizerOutput:
        outs = [q(part) for q, part in zip(self.quantizers, z.chunk(self.num_codebooks, dim=-1))]
        metrics = {name: torch.stack([o.metrics[name] for o in outs]).mean() for name in outs[0].metrics}
        loss = torch.stack([o.loss for o in outs]).mean()
        return QuantizerOutput(torch.cat([o.quantized for o in outs], -1), torch.cat([o.codes for o in outs], -1), loss, metrics)

    def codes_to_embeddings(self, codes: Tensor) -> Tensor:
        return torch.cat([q.codes_to_embeddings(codes[..., g : g + 1]) for g, q in enumerate(self.quantizers)], -1)


class VQWav2Vec(Tokenizer):
    """vq-wav2vec (see the module docstring): ``(B, 1, samples)`` at 16 kHz -> codes ``(B, frames, groups)``.

    ``forward(x).metrics`` adds ``quantization_error``: the mean squared distance between the features
    the quantizer reads ``(B, frames, dim)`` (after the k-means variant's projection) and their quantized
    values (for the k-means variant the commitment term; for the Gumbel variant the distance to the
    selected codebook vectors, which no term of the objective pulls together).
    """

    modality = "audio"
    family = "vq-wav2vec"
    paper = "Baevski et al. 2020, https://arxiv.org/abs/1910.05453"
    sample_rate = 16000
    reconstructs = False

    def __init__(self, encoder: FeatureExtractor, quantizer: Quantizer, aggregator: Aggregator, projection: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.projection = projection
        self.quantizer = quantizer
        self.aggregator = aggregator
        if isinstance(quantizer, GumbelQuantizer):
            self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def token_grid(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 2 or input_shape[0] != 1:
            raise ValueError(f"vq-wav2vec takes mono waveforms (1, samples), got {tuple(input_shape)}")
        frames = self.encoder.frames(input_shape[1])
        if frames < 1:
            raise ValueError(f"{input_shape[1]} samples are fewer than the encoder's receptive field")
        return (frames,)

    def features(self, x: Tensor) -> Tensor:
        """Waveforms ``(B, 1, samples)`` -> the features the quantizer reads, channel-last ``(B, frames, dim)``."""
        if x.ndim != 3 or x.shape[1] != 1:
            raise ValueError(f"vq-wav2vec takes mono waveforms (B, 1, samples), got {tuple(x.shape)}")
        self.token_grid(tuple(x.shape[1:]))
        z = self.encoder(x[:, 0])
        if self.projection is not None:
            z = self.projection(z)
        return z.transpose(1, 2)

    def quantize(self, x: Tensor) -> QuantizerOutput:
        z = self.features(x)
        if self.training and isinstance(self.quantizer, GumbelQuantizer):
            self.quantizer.temperature = gumbel_temperature(int(self.num_updates), *TEMPERATURE[:2], decay=TEMPERATURE[2])
            self.num_updates += 1
        q = self.quantizer(z)
        metrics = {**q.metrics, "quantization_error": (q.quantized.detach() - z.detach()).square().mean()}
        return QuantizerOutput(q.quantized, q.codes, q.loss, metrics)

    def context(self, x: Tensor) -> Tensor:
        """The aggregator's context representations ``(B, frames, C)`` of the quantized features of
        ``x`` ``(B, 1, samples)`` (fairseq ``feature_aggregator``; what the contrastive loss predicts from)."""
        return self.aggregator(self.quantize(x).quantized.transpose(1, 2)).transpose(1, 2)

    def decode_embeddings(self, quantized: Tensor) -> Tensor:
        raise NotImplementedError(
            "vq-wav2vec has no decoder: it is a self-supervised speech encoder whose codes feed a language model "
            "(Tokenizer.reconstructs is False); use encode() and the codebook metrics"
        )


def build_vq_wav2vec(
    quantizer: str = "gumbel",
    feature_layers: Sequence[tuple[int, int, int]] = FEATURE_LAYERS,
    aggregator_layers: Sequence[tuple[int, int, int]] = AGGREGATOR_LAYERS,
    codebook_size: int = 320,
    groups: int = 2,
    activation: str = "gelu",
    log_compression: bool = False,
    skip_connections_feat: bool = False,
    skip_connections_agg: bool = True,
    residual_scale: float = 0.5,
    gamma: float = 0.25,
) -> VQWav2Vec:
    """vq-wav2vec with fairseq's options (defaults: the README's vq-wav2vec command). quantizer:
    ``"gumbel"`` or ``"kmeans"``; layers as fairseq's ``(channels, kernel, stride)`` lists."""
    require_positive(feature_layers=feature_layers, aggregator_layers=aggregator_layers, codebook_size=codebook_size, groups=groups)
    feature_layers = [tuple(layer) for layer in feature_layers]
    aggregator_layers = [tuple(layer) for layer in aggregator_layers]
    dim = feature_layers[-1][0]
    encoder = FeatureExtractor(feature_layers, activation, log_compression, skip_connections_feat, residual_scale)
    aggregator = Aggregator(dim, aggregator_layers, activation, skip_connections_agg, residual_scale)
    if quantizer == "gumbel":
        vq = GumbelQuantizer(dim, codebook_size, groups=groups, temperature=TEMPERATURE[0], logits_hidden=2 * dim, logits_activation=activation)
        return VQWav2Vec(encoder, vq, aggregator)
    if quantizer == "kmeans":
        projection = nn.Sequential(nn.Conv1d(dim, dim, 1, groups=groups, bias=False), nn.GroupNorm(groups, dim))
        return VQWav2Vec(encoder, GroupedVectorQuantizer(dim, codebook_size, groups, beta=gamma), aggregator, projection)
    raise ValueError(f"quantizer must be 'gumbel' or 'kmeans', got {quantizer!r}")


# ---------------------------------------------------------------------------------------- key map

TRAINING_ONLY = ("wav2vec_predictions.project_to_steps.weight", "wav2vec_predictions.project_to_steps.bias")  # the contrastive head
_RENAMES = (
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.weight", r"encoder.layers.\1.conv.weight"),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.(weight|bias)", r"encoder.layers.\1.norm.\2"),
    (r"feature_aggregator\.conv_layers\.(\d+)\.1\.(weight|bias)", r"aggregator.layers.\1.conv.\2"),
    (r"feature_aggregator\.conv_layers\.(\d+)\.3\.(weight|bias)", r"aggregator.layers.\1.norm.\2"),
    (r"feature_aggregator\.residual_proj\.(\d+)\.weight", r"aggregator.layers.\1.residual.weight"),
    (r"vector_quantizer\.weight_proj\.(weight|bias)", r"quantizer.to_logits.\1"),  # vq_depth 1
    (r"vector_quantizer\.weight_proj\.0\.0\.(weight|bias)", r"quantizer.to_logits.0.\1"),  # vq_depth 2
    (r"vector_quantizer\.weight_proj\.1\.(weight|bias)", r"quantizer.to_logits.2.\1"),
    (r"vector_quantizer\.projection\.([01])\.(weight|bias)", r"projection.\1.\2"),  # k-means
)


def vq_wav2vec_state_dict(state: dict[str, Tensor], groups: int = 2) -> dict[str, Tensor]:
    """fairseq ``Wav2VecModel`` weights (a checkpoint's ``model``) -> ours; raises ``KeyError`` naming
    any key it cannot place. The contrastive head (``TRAINING_ONLY``) is dropped. Codebooks: Gumbel
    ``vector_quantizer.vars`` ``(1, G*V or V, d)`` -> ``quantizer.codebook`` ``(G, V, d)``; k-means
    ``vector_quantizer.embedding`` ``(V, G or 1, d)`` -> ``quantizer.quantizers.{g}.codebook`` ``(V, d)``;
    a codebook shared by the groups (``--combine-groups``) is copied to each. ``num_updates`` (the
    temperature schedule's counter, kept by fairseq's trainer, not its model) starts at 0."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key in TRAINING_ONLY:
            continue
        if key == "vector_quantizer.vars":
            codebook = value[0]
            if codebook.shape[0] != _gumbel_rows(state):  # --combine-groups: fairseq repeats it for every group
                codebook = codebook.repeat(groups, 1)
            out["quantizer.codebook"] = codebook.reshape(groups, -1, codebook.shape[-1])
            out["num_updates"] = torch.zeros((), dtype=torch.long)
            continue
        if key == "vector_quantizer.embedding":
            for g in range(groups):
                out[f"quantizer.quantizers.{g}.codebook"] = value[:, g if value.shape[1] == groups else 0].clone()
            continue
        for pattern, replacement in _RENAMES:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, replacement, key)] = value
                break
        else:
            raise KeyError(f"vq-wav2vec checkpoint key {key!r} has no place in this model")
    return out


def _gumbel_rows(state: dict[str, Tensor]) -> int:
    """``G * V``: the output width of the Gumbel logits layer."""
    last = state.get("vector_quantizer.weight_proj.1.weight", state.get("vector_quantizer.weight_proj.weight"))
    if last is None:
        raise KeyError("vq-wav2vec checkpoint has vector_quantizer.vars but no weight_proj (the Gumbel logits layer)")
    return last.shape[0]


# --------------------------------------------------------------------------------------- registry


def _release(filename: str, variant: str) -> WeightFile:
    return WeightFile(
        filename=filename, url=f"https://dl.fbaipublicfiles.com/fairseq/wav2vec/{filename}", licence="MIT (facebookresearch/fairseq)",
        notes=f"fairseq README's vq-wav2vec {variant} (LibriSpeech 960 h); torch.save dict, weights under 'model', training options "
              "under 'args' (an argparse.Namespace); input 16 kHz mono waveform, not normalised",
    )  # fmt: skip


@register_tokenizer(input_shape=(1, 16000), pretrained=(_release("vq-wav2vec.pt", "Gumbel"),), convert=vq_wav2vec_state_dict)
def vq_wav2vec_gumbel(**overrides) -> VQWav2Vec:
    """vq-wav2vec, Gumbel-softmax variant: 2 groups x 320 codes per 10 ms frame at 16 kHz."""
    return build_vq_wav2vec(**{"quantizer": "gumbel", **overrides})


@register_tokenizer(input_shape=(1, 16000), pretrained=(_release("vq-wav2vec_kmeans.pt", "K-means"),), convert=vq_wav2vec_state_dict)
def vq_wav2vec_kmeans(**overrides) -> VQWav2Vec:
    """vq-wav2vec, k-means variant: 2 groups x 320 codes per 10 ms frame at 16 kHz, gamma 0.25."""
    return build_vq_wav2vec(**{"quantizer": "kmeans", **overrides})


_TINY = dict(feature_layers=tuple((64, k, s) for _, k, s in FEATURE_LAYERS), aggregator_layers=tuple((64, k, 1) for k in range(2, 6)), codebook_size=32)


@register_tokenizer(input_shape=(1, 16000), convert=vq_wav2vec_state_dict)
def vq_wav2vec_tiny_gumbel(**overrides) -> VQWav2Vec:
    """vq-wav2vec's Gumbel variant at CPU size: 64 channels, 4 aggregator layers, 2 x 32 codes."""
    return build_vq_wav2vec(**{"quantizer": "gumbel", **_TINY, **overrides})


@register_tokenizer(input_shape=(1, 16000), convert=vq_wav2vec_state_dict)
def vq_wav2vec_tiny_kmeans(**overrides) -> VQWav2Vec:
    """vq-wav2vec's k-means variant at CPU size: 64 channels, 4 aggregator layers, 2 x 32 codes."""
    return build_vq_wav2vec(**{"quantizer": "kmeans", **_TINY, **overrides})
