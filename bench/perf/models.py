"""Tokenizer speed and memory: encode + decode of every full-size tokenizer, against the official code
where it installs from PyPI, with the same weights and inputs, in one process.

What one measurement is: a call of ``decode(encode(x))`` under ``torch.no_grad`` on a batch ``x`` of
random inputs in [-1, 1] (images ``(B, 3, H, W)``, audio ``(B, C, samples)``), the models in eval
mode with random weights (speed does not depend on their values): ours is the registered tokenizer's
``encode`` (input -> integer codes) then ``decode`` (codes -> reconstruction); the official side does
the same through its own code:

* ``vqgan_taming_f16_1024`` vs taming-transformers (PyPI 0.0.1): its ``Encoder``, ``Decoder``,
  ``VectorQuantizer`` and 1x1 convolutions built from the same ``ddconfig`` and assembled as
  ``VQModel`` does (whose module PyPI's package cannot import with current Lightning); encode is
  ``VQModel.encode`` keeping the indices, decode ``quantize.get_codebook_entry`` then ``VQModel.decode``
  (as ``Net2NetTransformer.decode_to_img``);
* ``dalle_dvae`` vs DALL-E (PyPI 0.1) ``dall_e.Encoder`` / ``dall_e.Decoder``, as its notebook: argmax
  of the encoder's logits, one-hot into the decoder, ``unmap_pixels(sigmoid(mu))``. Its convolutions
  run in float16 on CUDA by default; here they run at ``--precision`` like ours (``use_float16`` off);
* ``encodec_24khz`` vs encodec (PyPI 0.1.1) ``EncodecModel.encodec_model_24khz(pretrained=False)``,
  ``encode`` then ``decode``, both at 6 kbps (8 levels).

The official model is built with random weights (seed 0; its codebooks spread so that codes vary),
its state dict converted by our registered key map and loaded into ours strictly. ``codes_equal`` is
the fraction of our codes equal to the official ones on the same input (1.0 in fp32). Every other
full-size tokenizer (every registered name without ``tiny``) is measured alone; a tokenizer without
a decoder (vq-wav2vec) is timed on ``encode`` only.

Per row: batch, input shape, median ms per call over ``--repeats`` calls after one warm-up call
(ours and the official alternate, in turn first), items/s, peak memory of one more call (CUDA:
``max_memory_allocated`` above what was allocated before the call; CPU: the peak resident-memory
increase of `measure.peak_memory_mb`, measured after every timing with glibc's heap pinned by
`measure.pin_malloc`, so that freed tensors leave the resident set), and ``ratio = official ms / ours
ms`` (> 1: ours is faster). ``--precision bf16`` runs both sides under bf16 autocast; on CUDA both
models and inputs of images are channels-last.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from implementations import create_tokenizer, list_tokenizers, tokenizer_entry

from .measure import interleaved, peak_memory_mb, pin_malloc

QUICK_MODELS = ("vqgan_taming_f16_1024", "dalle_dvae", "encodec_24khz")
QUICK_IMAGE_SIZE = 128


@dataclass
class Peer:
    """An official model: ``module`` holds the official state dict; ``encode`` gives codes in our layout."""

    label: str
    module: nn.Module
    encode: Callable[[Tensor], Tensor]
    decode: Callable[[Tensor], Tensor]


class TamingVQModel(nn.Module):
    """taming's ``VQModel`` without Lightning and its loss: the same modules, keys and calls."""

    def __init__(self, ddconfig: dict, n_embed: int, embed_dim: int):
        super().__init__()
        from taming.modules.diffusionmodules.model import Decoder, Encoder
        from taming.modules.vqvae.quantize import VectorQuantizer

        self.encoder, self.decoder = Encoder(**ddconfig), Decoder(**ddconfig)
        self.quantize = VectorQuantizer(n_embed, embed_dim, beta=0.25)
        self.quant_conv = nn.Conv2d(ddconfig["z_channels"], embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, ddconfig["z_channels"], 1)

    def encode(self, x: Tensor) -> Tensor:
        quant, _, (_, _, indices) = self.quantize(self.quant_conv(self.encoder(x)))
        return indices.view(quant.shape[0], *quant.shape[2:], 1)

    def decode(self, codes: Tensor) -> Tensor:
        quant = self.quantize.get_codebook_entry(codes.reshape(-1), (*codes.shape[:3], self.quantize.e_dim))
        return self.decoder(self.post_quant_conv(quant))


def taming_peer(**overrides) -> Peer:
    from implementations.image.vqgan import IMAGENET_F16

    c = {**IMAGENET_F16, "embed_dim": 256, "codebook_size": 1024, **overrides}
    ddconfig = {"ch": c["ch"], "out_ch": 3, "ch_mult": list(c["ch_mult"]), "num_res_blocks": c["num_res_blocks"], "attn_resolutions": list(c["attn_resolutions"]),
                "dropout": 0.0, "in_channels": 3, "resolution": c["resolution"], "z_channels": c["z_channels"], "double_z": False}  # fmt: skip
    model = TamingVQModel(ddconfig, c["codebook_size"], c["embed_dim"])
    with torch.no_grad():  # taming draws the codebook in (-1/K, 1/K): spread it so that codes vary
        model.quantize.embedding.weight.normal_()
    return Peer(f"taming-transformers {metadata.version('taming-transformers')}", model, model.encode, model.decode)


def dalle_peer(n_hid: int = 256, n_blk_per_group: int = 2, vocab_size: int = 8192, n_init: int = 128) -> Peer:
    import dall_e

    model = nn.Module()
    model.encoder = dall_e.Encoder(n_hid=n_hid, n_blk_per_group=n_blk_per_group, vocab_size=vocab_size)
    model.decoder = dall_e.Decoder(n_init=n_init, n_hid=n_hid, n_blk_per_group=n_blk_per_group, vocab_size=vocab_size)
    for module in model.modules():
        if isinstance(module, dall_e.utils.Conv2d):
            module.use_float16 = False

    def encode(x: Tensor) -> Tensor:
        return model.encoder(dall_e.map_pixels((x + 1) / 2)).argmax(dim=1).unsqueeze(-1)

    def decode(codes: Tensor) -> Tensor:
        one_hot = F.one_hot(codes[..., 0], num_classes=vocab_size).permute(0, 3, 1, 2).float()
        return 2 * dall_e.unmap_pixels(torch.sigmoid(model.decoder(one_hot)[:, :3].float())) - 1

    return Peer(f"DALL-E {metadata.version('DALL-E')}", model, encode, decode)


def encodec_peer(bandwidth: float = 6.0) -> Peer:
    from encodec import EncodecModel

    model = EncodecModel.encodec_model_24khz(pretrained=False)
    model.set_target_bandwidth(bandwidth)
    with torch.no_grad():  # k-means-initialised codebooks start at zero: draw them
        for layer in model.quantizer.vq.layers:
            layer._codebook.embed.normal_()
            layer._codebook.embed_avg.copy_(layer._codebook.embed)
            layer._codebook.inited.fill_(1.0)

    def encode(x: Tensor) -> Tensor:
        return model.encode(x)[0][0].transpose(1, 2)

    def decode(codes: Tensor) -> Tensor:
        return model.decode([(codes.transpose(1, 2), None)])

    return Peer(f"encodec {metadata.version('encodec')}", model, encode, decode)


PEERS: dict[str, Callable[..., Peer]] = {"vqgan_taming_f16_1024": taming_peer, "dalle_dvae": dalle_peer, "encodec_24khz": encodec_peer}


def full_size_models() -> list[str]:
    return [name for name in list_tokenizers() if "tiny" not in name]


@dataclass
class Spec:
    """One row: the registered tokenizer ``name`` (built with ``overrides``) on inputs of ``input_shape``."""

    name: str
    input_shape: tuple[int, ...]
    overrides: dict = field(default_factory=dict)


@dataclass
class Prepared:
    batch: int
    steps: dict[str, Callable[[], object]]  # "ours" and, where there is one, "official"
    row: dict


def _autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def prepare(spec: Spec, batch: int, device: torch.device, precision: str) -> Prepared:
    """Build ours (and the official model with its weights loaded into ours) and their steps."""
    torch.manual_seed(0)
    ours = create_tokenizer(spec.name, **spec.overrides).eval()
    peer = None
    if spec.name in PEERS:
        try:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():  # taming prints, encodec's weight norm warns
                warnings.simplefilter("ignore", FutureWarning)
                peer = PEERS[spec.name](**spec.overrides)
        except ImportError as error:
            note = f"official code not installed ({error.name})"
        else:
            ours.load_state_dict(tokenizer_entry(spec.name).convert(peer.module.state_dict()), strict=True)
            peer.module.eval().to(device)
            note = ""
    else:
        note = "" if ours.reconstructs else "encode only (no decoder)"
    ours.to(device)
    x = (torch.rand(batch, *spec.input_shape, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)
    if device.type == "cuda" and ours.modality == "image":
        x = x.contiguous(memory_format=torch.channels_last)
        for model in [ours] + ([peer.module] if peer else []):
            model.to(memory_format=torch.channels_last)

    def step(encode, decode, reconstructs=True):
        def call():
            with torch.no_grad(), _autocast(device, precision):
                codes = encode(x)
                return decode(codes) if reconstructs else codes

        return call

    steps = {"ours": step(ours.encode, ours.decode, ours.reconstructs)}
    row = {"model": spec.name, "official": peer.label if peer else None, "batch": batch, "input": "x".join(map(str, spec.input_shape)),
           "precision": precision, "note": note}  # fmt: skip
    if peer is not None:
        steps["official"] = step(peer.encode, peer.decode)
        with torch.no_grad(), _autocast(device, precision):
            row["codes_equal"] = (ours.encode(x) == peer.encode(x)).double().mean().item()
    return Prepared(batch, steps, row)


def time_steps(prepared: Prepared, repeats: int, device: torch.device) -> None:
    """One warm-up call per side, then ``repeats`` timed calls per side, interleaved (`measure.interleaved`)."""
    timings = interleaved(prepared.steps, warmup=1, repeats=repeats, sync=lambda: _sync(device))
    for side in prepared.steps:
        median = timings.median(side)
        prefix = "" if side == "ours" else "official_"
        prepared.row[f"{prefix}ms"] = round(median, 1)
        prepared.row[f"{prefix}items_s"] = round(prepared.batch / median * 1e3, 3)
    if "official" in prepared.steps:
        prepared.row["ratio"] = round(prepared.row["official_ms"] / prepared.row["ms"], 3)


def peak_mb(step: Callable[[], object], device: torch.device) -> float:
    """Peak memory of one call above what was there before it (MiB): CUDA allocated, or CPU resident."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return peak_memory_mb(step)


def measure(specs: list[Spec], batch: int, repeats: int, device: torch.device, precision: str) -> list[dict]:
    """The rows of ``specs``: every timing first, then (on the CPU with glibc's heap pinned) the memory."""
    prepared = []
    for spec in specs:
        item = prepare(spec, batch, device, precision)
        time_steps(item, repeats, device)
        prepared.append(item)
    if device.type == "cpu":
        pin_malloc()  # after the timings: pinning makes every large allocation fault its pages in
    for item in prepared:
        for side, step in item.steps.items():
            item.row[("" if side == "ours" else "official_") + "peak_mb"] = round(peak_mb(step, device), 1)
    columns = ["model", "official", "batch", "input", "precision", "ms", "items_s", "peak_mb", "official_ms", "official_items_s",
               "official_peak_mb", "ratio", "codes_equal", "note"]  # fmt: skip
    return [{column: item.row.get(column) for column in columns} for item in prepared]


def specs_for(names: list[str], image_size: int | None, seconds: float) -> list[Spec]:
    specs = []
    for name in names:
        shape = tokenizer_entry(name).input_shape
        if len(shape) == 3:  # image (3, H, W)
            shape = (shape[0], image_size, image_size) if image_size else shape
        else:  # audio (C, samples) at the model's sample rate, which the registered shape holds for one second
            shape = (shape[0], round(shape[1] * seconds))
        specs.append(Spec(name, shape))
    return specs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help=f"{', '.join(QUICK_MODELS)} at {QUICK_IMAGE_SIZE}x{QUICK_IMAGE_SIZE}, batch 1, 1 repeat")
    parser.add_argument("--models", default=None, help="comma-separated registered names (default: every full-size tokenizer)")
    parser.add_argument("--batch", type=int, default=None, help="items per call (default 1 on the CPU, 8 on CUDA; --quick 1)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per side (default 3, --quick 1)")
    parser.add_argument("--image-size", type=int, default=None, help="square image side (default: the registered input shape, 256)")
    parser.add_argument("--seconds", type=float, default=1.0, help="audio length (default 1 s)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--json", action="store_true")


def main(args: argparse.Namespace) -> int:
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else "cpu" if args.device == "auto" else args.device)
    names = args.models.split(",") if args.models else list(QUICK_MODELS) if args.quick else full_size_models()
    unknown = sorted(set(names) - set(list_tokenizers()))
    if unknown:
        print(f"error: unknown tokenizer(s) {', '.join(unknown)}; python -m bench.tokenizers --archs lists them")
        return 2
    batch = args.batch or (1 if args.quick or device.type == "cpu" else 8)
    repeats = args.repeats or (1 if args.quick else 3)
    image_size = args.image_size or (QUICK_IMAGE_SIZE if args.quick else None)
    rows = measure(specs_for(names, image_size, args.seconds), batch, repeats, device, args.precision)
    machine = {"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
               "threads": torch.get_num_threads(), "torch": torch.__version__, "repeats": repeats}  # fmt: skip
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
    else:
        from tabulate import tabulate

        gpu = f" ({machine['gpu']})" if machine["gpu"] else ""
        print(f"device {device}{gpu}, {machine['threads']} threads, torch {machine['torch']}; median of {repeats} encode+decode calls "
              "after a warm-up; ratio = official ms / ours ms (> 1: ours faster)")  # fmt: skip
        print(tabulate(rows, headers="keys", tablefmt="github", missingval="-"))
    return 0
