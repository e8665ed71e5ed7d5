"""Training-step speed and memory: the VQGAN recipe in our trainer against the same step built from
taming-transformers' modules (the official code, PyPI), with the same weights, in one process.

Both sides train the same network, taming's own ``Encoder``/``Decoder``/``VectorQuantizer`` with its
1x1 convolutions (copied weights), on the same batch, with the same discriminator (taming's PatchGAN)
and LPIPS-VGG (random backbone weights: the ImageNet file cannot be downloaded here; speed does not
depend on the values). One step = the tokenizer's update (L1 + LPIPS + adaptive-weighted hinge GAN
term + codebook loss, Adam) and the discriminator's update (hinge, Adam).

* ours: `bench.objective.Objective` and the trainer's `Updater` (``bench.train``), fp32 and, on a
  GPU or a CPU with bf16 support, bf16 autocast;
* taming: ``VQLPIPSWithDiscriminator`` at ``optimizer_idx`` 0 then 1, the step ``VQModel.training_step``
  takes under Lightning (which runs ``training_step``, and so the tokenizer's forward pass, once per
  optimizer), with ``VQModel.configure_optimizers``' Adam (betas 0.5, 0.9), fp32.

Sizes: ``small`` (ch 32, ch_mult 1,2,2, one res-block, 64x64, batch 4) and ``paper`` (taming's f16
ImageNet model: ch 128, ch_mult 1,1,2,2,4, two res-blocks, attention at 16, z 256, 1024 codes;
256x256, batch 8 on a GPU, batch 1 on the CPU). Reported per row: median and min ms per step
after one warm-up (ours and taming alternate), peak memory of one step (CUDA: max allocated; CPU:
peak RSS increase), and ``ratio = taming_ms / ours_ms`` (> 1: ours is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import torch
from tabulate import tabulate
from torch import nn

from implementations.protocol import TokenizerOutput

from .measure import peak_memory_mb, timed_ms


@dataclass(frozen=True)
class Size:
    name: str
    ddconfig: dict
    n_embed: int
    embed_dim: int
    resolution: int
    batch_cpu: int
    batch_gpu: int
    disc_layers: int = 3


SIZES = {
    "small": Size("small", dict(ch=32, out_ch=3, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(), dropout=0.0, in_channels=3,
                                resolution=64, z_channels=64, double_z=False), 512, 64, 64, 4, 16, 2),  # fmt: skip
    "paper": Size("paper", dict(ch=128, out_ch=3, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2, attn_resolutions=(16,), dropout=0.0, in_channels=3,
                                resolution=256, z_channels=256, double_z=False), 1024, 256, 256, 1, 8),  # fmt: skip
}


class TamingNetwork(nn.Module):
    """taming's VQGAN network (``VQModel`` without Lightning): encoder, 1x1 conv, VQ, 1x1 conv, decoder."""

    def __init__(self, size: Size):
        super().__init__()
        from taming.modules.diffusionmodules.model import Decoder, Encoder
        from taming.modules.vqvae.quantize import VectorQuantizer

        self.encoder, self.decoder = Encoder(**size.ddconfig), Decoder(**size.ddconfig)
        self.quantize = VectorQuantizer(size.n_embed, size.embed_dim, beta=0.25)
        self.quant_conv = nn.Conv2d(size.ddconfig["z_channels"], size.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(size.embed_dim, size.ddconfig["z_channels"], 1)

    def forward(self, x):
        quant, codebook_loss, _ = self.quantize(self.quant_conv(self.encoder(x)))
        return self.decoder(self.post_quant_conv(quant)), codebook_loss


class AsTokenizer(nn.Module):
    """The same network seen through our protocol (what our trainer calls)."""

    modality = "image"

    def __init__(self, network: TamingNetwork):
        super().__init__()
        self.network = network

    def forward(self, x):
        recon, codebook_loss = self.network(x)
        return TokenizerOutput(recon, torch.empty(0, dtype=torch.long), codebook_loss, {})

    def last_layer_weight(self):
        return self.network.decoder.conv_out.weight


@contextlib.contextmanager
def taming_lpips_offline():
    """taming's LPIPS without its downloads: torchvision's VGG16 with random weights."""
    import torchvision
    from taming.modules.losses import lpips as taming_lpips

    vgg16 = torchvision.models.vgg16
    with mock.patch.object(taming_lpips.models, "vgg16", lambda pretrained=True: vgg16(weights=None)), \
         mock.patch.object(taming_lpips.LPIPS, "load_from_pretrained", lambda self, name="vgg_lpips": None):  # fmt: skip
        yield


def _slice(index: int) -> int:
    return 1 + sum(index >= start for start in (4, 9, 16, 23))


def build(size: Size, device: torch.device, folder: Path):
    """(ours, taming): each a dict with the step's parts, same weights on both sides."""
    from taming.modules.losses.vqperceptual import VQLPIPSWithDiscriminator

    from bench.config import compose
    from bench.objective import Objective
    from bench.train import Updater

    torch.manual_seed(0)
    network = TamingNetwork(size)
    with taming_lpips_offline():
        loss = VQLPIPSWithDiscriminator(disc_start=0, codebook_weight=1.0, pixelloss_weight=1.0, disc_num_layers=size.disc_layers, disc_in_channels=3,
                                        disc_weight=0.75, perceptual_weight=1.0, disc_loss="hinge")  # fmt: skip
    lpips = loss.perceptual_loss.state_dict()
    torch.save({f"features.{k.split('.')[2]}.{k.split('.')[3]}": v for k, v in lpips.items() if k.startswith("net.")}, folder / "backbone.pth")
    torch.save({k: v for k, v in lpips.items() if k.startswith("lin")}, folder / "linear.pth")
    prefix = "tokenizer.recipe"
    recipe = compose([
        "tokenizer=vqvae_tiny_vq_d4", f"{prefix}.l1_weight=1.0", f"{prefix}.l2_weight=0.0", f"{prefix}.perceptual.weight=1.0",
        f"{prefix}.perceptual.backbone_weights={folder / 'backbone.pth'}", f"{prefix}.perceptual.linear_weights={folder / 'linear.pth'}",
        f"{prefix}.adversarial.weight=0.75", f"{prefix}.adversarial.adaptive_weight=true",
        f"+{prefix}.adversarial.discriminator_kwargs.n_layers={size.disc_layers}",
        f"{prefix}.optimizer.betas=[0.5,0.9]", f"{prefix}.adversarial.optimizer.betas=[0.5,0.9]",
        f"{prefix}.optimizer.lr=4.5e-6", f"{prefix}.adversarial.optimizer.lr=4.5e-6",
    ]).tokenizer.recipe  # fmt: skip
    tokenizer = AsTokenizer(copy.deepcopy(network)).to(device)
    objective = Objective(recipe, tokenizer).to(device)
    objective.discriminator.load_state_dict(loss.discriminator.state_dict())
    ours = {"tokenizer": tokenizer, "objective": objective, "recipe": recipe, "device": device,
            "generator": Updater(tokenizer.parameters(), recipe.optimizer, recipe.schedule, 10**6, "fp32", None, device),
            "critic": Updater(objective.discriminator.parameters(), recipe.adversarial.optimizer, recipe.schedule, 10**6, "fp32", None, device)}  # fmt: skip
    network, loss = network.to(device), loss.to(device)
    theirs = {"network": network, "loss": loss,
              "opt_ae": torch.optim.Adam(network.parameters(), lr=4.5e-6, betas=(0.5, 0.9)),
              "opt_disc": torch.optim.Adam(loss.discriminator.parameters(), lr=4.5e-6, betas=(0.5, 0.9))}  # fmt: skip
    return ours, theirs


def ours_step(parts: dict, x: torch.Tensor, dtype: torch.dtype | None) -> None:
    device = parts["device"]

    def autocast():
        return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    tokenizer, objective = parts["tokenizer"], parts["objective"]
    with autocast():
        out = tokenizer(x)
        objective.generator_backward(x, out, 10**6, tokenizer.last_layer_weight(), 1.0, parts["generator"].backward)
    parts["generator"].step(measure_norm=False)
    objective.discriminator_backward(x, out.recon.detach(), 1.0, parts["critic"].backward, autocast)
    parts["critic"].step(measure_norm=False)


def taming_step(parts: dict, x: torch.Tensor) -> None:
    """``VQModel.training_step`` for optimizer 0 then 1, with Lightning's zero_grad/backward/step."""
    network, loss = parts["network"], parts["loss"]
    recon, codebook_loss = network(x)
    ae_loss, _ = loss(codebook_loss, x, recon, 0, 10**6, last_layer=network.decoder.conv_out.weight, split="train")
    parts["opt_ae"].zero_grad(set_to_none=True)
    ae_loss.backward()
    parts["opt_ae"].step()
    recon, codebook_loss = network(x)  # Lightning's second optimizer re-runs training_step
    disc_loss, _ = loss(codebook_loss, x, recon, 1, 10**6, last_layer=network.decoder.conv_out.weight, split="train")
    parts["opt_disc"].zero_grad(set_to_none=True)
    disc_loss.backward()
    parts["opt_disc"].step()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mb(step, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    return peak_memory_mb(step)


def run_size(size: Size, device: torch.device, repeats: int, bf16: bool) -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        ours, theirs = build(size, device, Path(folder))
    batch = size.batch_gpu if device.type == "cuda" else size.batch_cpu
    x = (torch.rand(batch, 3, size.resolution, size.resolution, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)
    variants = {"ours fp32": lambda: ours_step(ours, x, None), "taming fp32": lambda: taming_step(theirs, x)}
    if bf16:
        variants["ours bf16"] = lambda: ours_step(ours, x, torch.bfloat16)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for step in variants.values():  # warm-up (allocator, autotuning)
        step()
    _sync(device)
    for _ in range(repeats):
        for name, step in variants.items():
            times[name].append(timed_ms(lambda step=step: (step(), _sync(device))))
    rows = []
    peer = statistics.median(times["taming fp32"])
    for name, step in variants.items():
        median = statistics.median(times[name])
        rows.append({"size": size.name, "batch": batch, "resolution": size.resolution, "step": name, "median_ms": round(median, 1),
                     "min_ms": round(min(times[name]), 1), "peak_mb": round(peak_mb(step, device), 1),
                     "ratio": round(peer / median, 3)})  # fmt: skip
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="the small size only, 3 repeats")
    parser.add_argument("--sizes", default=None, help="comma-separated: small,paper (default: both; --quick: small)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per variant (default 5, --quick 3)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--json", action="store_true")


def main(args: argparse.Namespace) -> int:
    try:
        import taming  # noqa: F401
    except ImportError:
        print("error: bench.perf train compares with taming-transformers: pip install taming-transformers")
        return 2
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else "cpu" if args.device == "auto" else args.device)
    names = (args.sizes or ("small" if args.quick else "small,paper")).split(",")
    repeats = args.repeats or (3 if args.quick else 5)
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported() or device.type == "cpu" and torch.backends.mkldnn.is_available()
    rows = [row for name in names for row in run_size(SIZES[name], device, repeats, bf16)]
    info = SimpleNamespace(device=str(device), gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None, threads=torch.get_num_threads())
    if args.json:
        print(json.dumps({"machine": vars(info), "rows": rows}, indent=2))
    else:
        print(f"device {info.device}{' (' + info.gpu + ')' if info.gpu else ''}, {info.threads} threads; ratio = taming fp32 ms / this row's ms")
        print(tabulate(rows, headers="keys", tablefmt="github"))
    return 0
