"""DALL-E's discrete VAE (Ramesh et al. 2021, "Zero-Shot Text-to-Image Generation",
https://arxiv.org/abs/2102.12092), with the network of openai/DALL-E (``dall_e/encoder.py``,
``dall_e/decoder.py``, ``dall_e/utils.py``; PyPI ``DALL-E`` 0.1).

Encoder: a 7x7 convolution to ``n_hid`` channels, four groups of ``n_blk_per_group`` bottleneck blocks
at widths ``n_hid * (1, 2, 4, 8)`` with 2x2 max-pooling after the first three (f8), ReLU and a 1x1
convolution to ``vocab_size`` logits per position. Decoder: a 1x1 convolution from the one-hot
(``vocab_size`` channels) to ``n_init``, four groups at widths ``n_hid * (8, 4, 2, 1)`` with
nearest-neighbour 2x upsampling after the first three, ReLU and a 1x1 convolution to 6 channels: the
logit-Laplace location ``mu`` and log-scale of each of R, G, B. A block is
``id_path(x) + post_gain * res_path(x)``, ``post_gain = 1 / (4 * n_blk_per_group) ** 2``, ``res_path``
four (ReLU, convolution) pairs through ``n_out / 4`` channels (encoder kernels 3, 3, 3, 1; decoder
1, 3, 3, 3) and ``id_path`` a 1x1 convolution when the width changes.

Quantization is the shared `GumbelQuantizer` with ``one_hot=True``: the encoder's output is the logits,
the decoder's first convolution takes the one-hot (that convolution is the codebook). Training uses
the soft Gumbel-softmax relaxation in the forward and backward passes (A. Ramesh, openai/DALL-E
issue #1) and a KL term to the uniform prior; evaluation takes the argmax, as the official notebook.

Pixels: the official model reads ``map_pixels(x) = (1 - 2 eps) x + eps`` of images ``x`` in [0, 1]
(eps 0.1, the logit-Laplace distribution's margin, paper section A.3) and reconstructs
``unmap_pixels(sigmoid(mu)) = clamp((sigmoid(mu) - eps) / (1 - 2 eps), 0, 1)``
(``notebooks/usage.ipynb``). Our protocol's images are in [-1, 1]: the tokenizer maps ``x -> (x + 1) / 2``
before ``map_pixels`` and returns ``2 * unmap_pixels(...) - 1``. The log-scale channels are used only
by the logit-Laplace likelihood of training, not by the reconstruction.

The official convolutions run in float16 on CUDA (all but the encoder's last and the decoder's first);
here every layer runs in the model's dtype (float32 unless the harness autocasts).

Released weights: ``encoder.pkl`` and ``decoder.pkl`` are whole pickled modules, which only an unpickler
that may run code can read. They are never loaded by default: ``python -m implementations.image.dalle
convert --trust-pickle encoder.pkl decoder.pkl dalle_dvae.safetensors`` (needs the ``DALL-E`` package)
writes their tensors once to a safetensors file, which `dalle_state_dict` maps onto this module tree.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from ...arguments import require_positive
from ...checkpoints import WeightFile
from ...registry import create_quantizer, register_tokenizer
from ..autoencoder import ImageAutoencoderTokenizer

LOGIT_LAPLACE_EPS = 0.1


def map_pixels(x: Tensor) -> Tensor:
    """Images in [0, 1] -> [eps, 1 - eps], the logit-Laplace support (``dall_e.utils.map_pixels``)."""
    return (1 - 2 * LOGIT_LAPLACE_EPS) * x + LOGIT_LAPLACE_EPS


def unmap_pixels(x: Tensor) -> Tensor:
    """The inverse of `map_pixels`, clamped to [0, 1] (``dall_e.utils.unmap_pixels``)."""
    return ((x - LOGIT_LAPLACE_EPS) / (1 - 2 * LOGIT_LAPLACE_EPS)).clamp(0, 1)


def _conv(n_in: int, n_out: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, kernel, padding=(kernel - 1) // 2)


class Block(nn.Module):
    """``(B, n_in, H, W) -> (B, n_out, H, W)``: ``id_path(x) + post_gain * res_path(x)``."""

    def __init__(self, n_in: int, n_out: int, post_gain: float, kernels: tuple[int, int, int, int]):
        super().__init__()
        widths = (n_in, n_out // 4, n_out // 4, n_out // 4, n_out)
        self.id_path = _conv(n_in, n_out, 1) if n_in != n_out else nn.Identity()
        layers = OrderedDict()
        for i, kernel in enumerate(kernels):
            layers[f"relu_{i + 1}"] = nn.ReLU()
            layers[f"conv_{i + 1}"] = _conv(widths[i], widths[i + 1], kernel)
        self.res_path = nn.Sequential(layers)
        self.post_gain = post_gain

    def forward(self, x: Tensor) -> Tensor:
        return self.id_path(x) + self.post_gain * self.res_path(x)


def _groups(first: int, widths: list[int], n_blk_per_group: int, kernels: tuple[int, int, int, int], resample: tuple[str, Callable[[], nn.Module]]
            ) -> list[tuple[str, nn.Module]]:  # fmt: skip
    """``group_1`` .. ``group_4``: blocks at ``widths[i]``, each group but the last ending in the
    ``(name, factory)`` resampling layer."""
    post_gain = 1 / (len(widths) * n_blk_per_group) ** 2
    groups, incoming = [], first
    for index, width in enumerate(widths):
        layers = OrderedDict()
        for j in range(n_blk_per_group):
            layers[f"block_{j + 1}"] = Block(incoming if j == 0 else width, width, post_gain, kernels)
        if index < len(widths) - 1:
            layers[resample[0]] = resample[1]()
        groups.append((f"group_{index + 1}", nn.Sequential(layers)))
        incoming = width
    return groups


def _output(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(relu=nn.ReLU(), conv=_conv(n_in, n_out, 1)))


class Encoder(nn.Module):
    """``(B, 3, H, W)`` mapped pixels -> logits ``(B, vocab_size, H/8, W/8)``."""

    def __init__(self, n_hid: int = 256, n_blk_per_group: int = 2, vocab_size: int = 8192, in_channels: int = 3):
        super().__init__()
        widths = [n_hid * m for m in (1, 2, 4, 8)]
        self.blocks = nn.Sequential(OrderedDict([
            ("input", _conv(in_channels, n_hid, 7)),
            *_groups(n_hid, widths, n_blk_per_group, (3, 3, 3, 1), ("pool", lambda: nn.MaxPool2d(2))),
            ("output", _output(widths[-1], vocab_size)),
        ]))  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


class Decoder(nn.Module):
    """one-hot ``(B, vocab_size, h, w)`` -> logit-Laplace parameters ``(B, 2 * out_channels, 8h, 8w)``
    (locations ``mu`` first, then log-scales)."""

    def __init__(self, n_init: int = 128, n_hid: int = 256, n_blk_per_group: int = 2, vocab_size: int = 8192, out_channels: int = 3):
        super().__init__()
        widths = [n_hid * m for m in (8, 4, 2, 1)]
        self.blocks = nn.Sequential(OrderedDict([
            ("input", _conv(vocab_size, n_init, 1)),
            *_groups(n_init, widths, n_blk_per_group, (1, 3, 3, 3), ("upsample", lambda: nn.Upsample(scale_factor=2, mode="nearest"))),
            ("output", _output(widths[-1], 2 * out_channels)),
        ]))  # fmt: skip

    def forward(self, z: Tensor) -> Tensor:
        return self.blocks(z)


class DalleDVAE(ImageAutoencoderTokenizer):
    """Images in [-1, 1] -> codes ``(B, H/8, W/8, 1)`` -> ``2 * unmap_pixels(sigmoid(mu)) - 1``."""

    family = "dVAE"
    paper = "Ramesh et al. 2021, https://arxiv.org/abs/2102.12092"

    def quantize(self, x: Tensor):
        return super().quantize(map_pixels((x + 1) / 2))

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """In eval, the argmax of the encoder's logits (the official notebook's codes) without the
        quantizer's one-hot and KL term, which only ``forward`` needs (they cost ~8% of encode on a CPU)."""
        if self.training:
            return super().encode(x)
        if x.ndim != 4:
            raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
        self.token_grid(tuple(x.shape[1:]))
        return self.quantizer.logits(self.encoder(map_pixels((x + 1) / 2)).permute(0, 2, 3, 1)).argmax(dim=-1)

    def decode_embeddings(self, quantized: Tensor) -> Tensor:
        mu = super().decode_embeddings(quantized)[:, :3]
        return 2 * unmap_pixels(torch.sigmoid(mu)) - 1


def build_dalle_dvae(*, n_hid: int = 256, n_blk_per_group: int = 2, vocab_size: int = 8192, n_init: int = 128, **quantizer_kwargs) -> DalleDVAE:
    """The dVAE with the official constructor arguments (``Encoder``/``Decoder`` defaults: the released
    model) and the quantizer's options. Defaults: soft relaxation at temperature 1 (annealed to 1/16 by
    a training schedule), KL weight 6.6 / 192 (paper A.2: beta 6.6 with the loss divided by the 256 x
    256 x 3 pixels, so beta / 192 against a per-pixel reconstruction term and a per-position KL)."""
    require_positive(n_hid=n_hid, n_blk_per_group=n_blk_per_group, vocab_size=vocab_size, n_init=n_init)
    quantizer = create_quantizer("gumbel", **{"dim": vocab_size, "codebook_size": vocab_size, "one_hot": True, "hard": False,
                                              "temperature": 1.0, "kl_weight": 6.6 / 192, **quantizer_kwargs})  # fmt: skip
    encoder = Encoder(n_hid=n_hid, n_blk_per_group=n_blk_per_group, vocab_size=vocab_size)
    decoder = Decoder(n_init=n_init, n_hid=n_hid, n_blk_per_group=n_blk_per_group, vocab_size=vocab_size)
    return DalleDVAE(encoder, quantizer, decoder, downsample_factor=8)


def dalle_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The official modules' tensors (``encoder.<key>``, ``decoder.<key>``, as `convert_pickles` writes
    them) -> ours: ``dall_e.utils.Conv2d`` names its tensors ``w`` and ``b``, ``nn.Conv2d`` ``weight``
    and ``bias``; raises ``KeyError`` naming any key it cannot place."""
    mapped, unplaced = {}, []
    for key, value in state.items():
        if not key.startswith(("encoder.blocks.", "decoder.blocks.")) or not key.endswith((".w", ".b")):
            unplaced.append(key)
            continue
        mapped[key[:-1] + ("weight" if key.endswith(".w") else "bias")] = value
    if unplaced:
        raise KeyError(f"DALL-E dVAE keys with no place: {unplaced[:5]}")
    return mapped


TRUST_NOTE = (
    "encoder.pkl and decoder.pkl are whole pickled Python modules: reading them runs whatever code the "
    "pickle names, so only convert files you downloaded yourself from cdn.openai.com"
)


def convert_pickles(encoder_pkl: str | Path, decoder_pkl: str | Path, out: str | Path, *, trust_pickle: bool = False) -> Path:
    """Read the released pickled ``dall_e.Encoder`` / ``dall_e.Decoder`` (needs the ``DALL-E`` package,
    whose classes the pickles name) and write their tensors, keyed ``encoder.<key>`` / ``decoder.<key>``,
    to the safetensors file ``out``. Refuses unless ``trust_pickle`` (see `TRUST_NOTE`)."""
    if not trust_pickle:
        raise PermissionError(f"{TRUST_NOTE}; pass trust_pickle=True (--trust-pickle) to convert them once")
    from safetensors.torch import save_file

    state = {}
    for prefix, path in (("encoder", encoder_pkl), ("decoder", decoder_pkl)):
        module = torch.load(path, map_location="cpu", weights_only=False)  # the trusted, opted-in path
        if not isinstance(module, nn.Module):
            raise TypeError(f"{path} holds a {type(module).__name__}, not the pickled dall_e module")
        state.update({f"{prefix}.{key}": value.contiguous() for key, value in module.state_dict().items()})
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata={"source": "https://cdn.openai.com/dall-e/encoder.pkl, decoder.pkl"})
    return Path(out)


RELEASE = WeightFile(
    filename="dalle_dvae.safetensors",
    url="https://cdn.openai.com/dall-e/encoder.pkl + https://cdn.openai.com/dall-e/decoder.pkl, converted once by "
        "`python -m implementations.image.dalle convert --trust-pickle encoder.pkl decoder.pkl dalle_dvae.safetensors`",
    licence="Modified MIT (openai/DALL-E)",
    notes="openai/DALL-E's released dVAE, published as pickled modules (encoder.pkl, decoder.pkl; no sha256 published); "
          "the converted file holds their tensors under encoder.* / decoder.*; inputs RGB in [0, 1] through map_pixels "
          "(the tokenizer takes [-1, 1] and maps)",
)  # fmt: skip


@register_tokenizer(input_shape=(3, 256, 256), pretrained=(RELEASE,), convert=dalle_state_dict)
def dalle_dvae(**overrides) -> DalleDVAE:
    """DALL-E's dVAE: f8, 8192 codes (32x32 tokens at 256x256)."""
    return build_dalle_dvae(**overrides)


@register_tokenizer(input_shape=(3, 32, 32), convert=dalle_state_dict)
def dalle_dvae_tiny(**overrides) -> DalleDVAE:
    """The dVAE's architecture at CPU size: n_hid 16, one block per group, 512 codes (4x4 tokens at 32x32)."""
    return build_dalle_dvae(**{"n_hid": 16, "n_blk_per_group": 1, "vocab_size": 512, "n_init": 32, **overrides})
