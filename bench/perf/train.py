"""Training-step speed and memory: our trainer running taming's VQGAN recipe
(``bench/conf/recipe/taming_vqgan.yaml``) against the same step built from taming-transformers' modules
(the official code, PyPI), with the same weights, in one process.

Both sides train the same network, taming's own ``Encoder``/``Decoder``/``VectorQuantizer`` with its
1x1 convolutions (copied weights), on the same batch, with the same discriminator (taming's PatchGAN)
and LPIPS-VGG (random backbone weights: the ImageNet file cannot be downloaded here; speed does not
depend on the values). One step = the tokenizer's update (L1 + LPIPS + adaptive-weighted hinge GAN
term + codebook loss, Adam) and the discriminator's update (hinge, Adam), with the GAN terms active.

* ours: `bench.objective.Objective` and the trainer's `Updater` (``bench.train``) with the recipe;
* taming: ``VQLPIPSWithDiscriminator`` at ``optimizer_idx`` 0 then 1 as ``VQModel.training_step``
  calls it under Lightning, with ``VQModel.configure_optimizers``' Adam. Every value comes from our
  recipe (weights, discriminator, GAN loss, learning rates, betas), and so does the step's shape:
  with ``discriminator_input: recompute`` the tokenizer's forward runs again before the
  discriminator's update (Lightning runs ``training_step`` once per optimizer), with ``reuse`` the
  discriminator sees the generator step's reconstruction; taming's LPIPS dropout is on (its module
  in training mode, as Lightning leaves it) exactly when the recipe's perceptual dropout is.

Each precision is compared like for like: fp32 against fp32 and, on a GPU or a CPU with bf16
support, ours in bf16 autocast against taming's step in bf16 autocast (its forward and losses, as
Lightning's ``bf16-mixed``). All the steps of a size are timed by `measure.interleaved`: one warm-up
each, then the same number of timed steps each, the order reversed every other round.

Sizes: ``small`` (ch 32, ch_mult 1,2,2, one res-block, 64x64, batch 4) and ``paper`` (taming's f16
ImageNet model: ch 128, ch_mult 1,1,2,2,4, two res-blocks, attention at 16, z 256, 1024 codes;
256x256, batch 8 on a GPU, batch 1 on the CPU). Reported per size and precision: median and min ms
per step of each side, peak memory of one step (CUDA: max allocated; CPU: peak RSS increase), and
``ratio = taming_ms / ours_ms`` (> 1: ours is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import torch
from tabulate import tabulate
from torch import nn

from bench.config import compose
from implementations.protocol import TokenizerOutput

from .measure import interleaved, peak_memory_mb


@dataclass(frozen=True)
class Size:
    name: str
    ddconfig: dict
    n_embed: int
    embed_dim: int
    resolution: int
    batch_cpu: int
    batch_gpu: int


SIZES = {
    "small": Size("small", dict(ch=32, out_ch=3, ch_mult=(1, 2, 2), num_res_blocks=1, attn_resolutions=(), dropout=0.0, in_channels=3,
                                resolution=64, z_channels=64, double_z=False), 512, 64, 64, 4, 16),  # fmt: skip
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


def compose_recipe(name: str):
    """The recipe ``bench/conf/recipe/<name>.yaml`` as the trainer receives it (``tokenizer.recipe``)."""
    carrier = "tokenizer=vqvae_tiny_vq_d4"  # any tokenizer with a recipe: only its recipe is used
    return compose([carrier, f"recipe@tokenizer.recipe={name}"]).tokenizer.recipe


def taming_loss_kwargs(recipe) -> dict:
    """``VQLPIPSWithDiscriminator``'s arguments for our recipe; what taming's loss cannot express fails."""
    adversarial = recipe.adversarial
    expressible = {"l1_weight 1": recipe.l1_weight == 1.0, "l2_weight 0": recipe.l2_weight == 0.0,
                   "adaptive_weight, at most 1e4": adversarial.adaptive_weight and adversarial.adaptive_weight_max == 1.0e4,
                   "discriminator patchgan": adversarial.discriminator == "patchgan", "loss hinge": adversarial.loss == "hinge",
                   "generator_loss null": adversarial.generator_loss is None, "no LeCAM, R1 or feature matching":
                   not (adversarial.lecam_weight or adversarial.r1_weight or adversarial.feature_matching_weight), "grad_clip null": recipe.grad_clip is None}  # fmt: skip
    missing = [name for name, holds in expressible.items() if not holds]
    if missing:
        raise ValueError(f"taming's VQLPIPSWithDiscriminator cannot follow recipe {recipe.name}: it needs {', '.join(missing)}")
    kwargs = adversarial.discriminator_kwargs
    return {"disc_start": adversarial.start_step, "codebook_weight": recipe.quantizer_weight, "disc_weight": adversarial.weight,
            "perceptual_weight": recipe.perceptual.weight, "disc_num_layers": kwargs.get("n_layers", 3), "disc_in_channels": kwargs.get("in_channels", 3),
            "disc_ndf": kwargs.get("base_channels", 64), "disc_loss": "hinge"}  # fmt: skip


def adam(parameters, cfg) -> torch.optim.Adam:
    """``VQModel.configure_optimizers``' optimizer, at the recipe's values."""
    return torch.optim.Adam(parameters, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)


def build(size: Size, device: torch.device, folder: Path, recipe):
    """(ours, taming): each a dict with the step's parts, same weights and ``recipe`` (`compose_recipe`) on
    both sides; the recipe's LPIPS weight files are pointed at copies of taming's, written into ``folder``."""
    from taming.modules.losses.vqperceptual import VQLPIPSWithDiscriminator

    from bench.objective import Objective
    from bench.train import Updater

    recipe = copy.deepcopy(recipe)
    torch.manual_seed(0)
    with taming_lpips_offline(), contextlib.redirect_stdout(io.StringIO()):  # taming prints its shapes and loss
        network, loss = TamingNetwork(size), VQLPIPSWithDiscriminator(**taming_loss_kwargs(recipe))
    loss.perceptual_loss.train(recipe.perceptual.dropout)  # Lightning's model.train() turns its dropout on
    lpips = loss.perceptual_loss.state_dict()  # our LPIPS gets the same weights, through the recipe's files
    recipe.perceptual.backbone_weights, recipe.perceptual.linear_weights = str(folder / "backbone.pth"), str(folder / "linear.pth")
    torch.save({f"features.{k.split('.')[2]}.{k.split('.')[3]}": v for k, v in lpips.items() if k.startswith("net.")}, recipe.perceptual.backbone_weights)
    torch.save({k: v for k, v in lpips.items() if k.startswith("lin")}, recipe.perceptual.linear_weights)
    tokenizer = AsTokenizer(copy.deepcopy(network)).to(device)
    objective = Objective(recipe, tokenizer).to(device)
    objective.discriminator.load_state_dict(loss.discriminator.state_dict())
    ours = {"tokenizer": tokenizer, "objective": objective, "recipe": recipe, "device": device,
            "generator": Updater(tokenizer.parameters(), recipe.optimizer, recipe.schedule, 10**6, "fp32", recipe.grad_clip, device),
            "critic": Updater(objective.discriminator.parameters(), recipe.adversarial.optimizer, recipe.schedule, 10**6, "fp32", recipe.grad_clip, device)}  # fmt: skip
    network, loss = network.to(device), loss.to(device)
    theirs = {"network": network, "loss": loss, "device": device, "recompute": recipe.adversarial.discriminator_input == "recompute",
              "opt_ae": adam(network.parameters(), recipe.optimizer), "opt_disc": adam(loss.discriminator.parameters(), recipe.adversarial.optimizer)}  # fmt: skip
    return ours, theirs


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def ours_step(parts: dict, x: torch.Tensor, dtype: torch.dtype | None) -> None:
    """The trainer's step (``bench.train.train``, one micro-batch, GAN active) for the recipe."""
    device, tokenizer, objective = parts["device"], parts["tokenizer"], parts["objective"]
    with _autocast(device, dtype):
        out = tokenizer(x)
        objective.generator_backward(x, out, 10**6, tokenizer.last_layer_weight(), 1.0, parts["generator"].backward)
    parts["generator"].step(measure_norm=False)
    recon = out.recon.detach()
    if parts["recipe"].adversarial.discriminator_input == "recompute":
        with torch.no_grad(), _autocast(device, dtype):
            recon = tokenizer(x).recon
    objective.discriminator_backward(x, recon, 1.0, parts["critic"].backward, lambda: _autocast(device, dtype))
    parts["critic"].step(measure_norm=False)


def taming_step(parts: dict, x: torch.Tensor, dtype: torch.dtype | None) -> None:
    """``VQModel.training_step`` for optimizer 0 then 1, with Lightning's zero_grad/backward/step;
    ``parts["recompute"]``: the tokenizer's forward runs again for optimizer 1, as under Lightning."""
    network, loss, device = parts["network"], parts["loss"], parts["device"]
    with _autocast(device, dtype):
        recon, codebook_loss = network(x)
        ae_loss, _ = loss(codebook_loss, x, recon, 0, 10**6, last_layer=network.decoder.conv_out.weight, split="train")
    parts["opt_ae"].zero_grad(set_to_none=True)
    ae_loss.backward()
    parts["opt_ae"].step()
    with _autocast(device, dtype):
        if parts["recompute"]:
            recon, codebook_loss = network(x)
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


def run_size(size: Size, device: torch.device, repeats: int, precisions: dict[str, torch.dtype | None], recipe) -> list[dict]:
    """One row per precision: ours and taming at that precision, all steps of the size interleaved."""
    with tempfile.TemporaryDirectory() as folder:
        ours, theirs = build(size, device, Path(folder), recipe)
    batch = size.batch_gpu if device.type == "cuda" else size.batch_cpu
    x = (torch.rand(batch, 3, size.resolution, size.resolution, generator=torch.Generator().manual_seed(0)) * 2 - 1).to(device)
    steps = {}
    for precision, dtype in precisions.items():
        steps[("ours", precision)] = lambda dtype=dtype: ours_step(ours, x, dtype)
        steps[("taming", precision)] = lambda dtype=dtype: taming_step(theirs, x, dtype)
    timings = interleaved(steps, warmup=1, repeats=repeats, sync=lambda: _sync(device))
    rows = []
    for precision in precisions:
        row = {"size": size.name, "batch": batch, "resolution": size.resolution, "precision": precision}
        for side in ("ours", "taming"):
            row |= {f"{side}_ms": round(timings.median((side, precision)), 1), f"{side}_min_ms": round(timings.min((side, precision)), 1),
                    f"{side}_peak_mb": round(peak_mb(steps[(side, precision)], device), 1)}  # fmt: skip
        rows.append(row | {"ratio": round(row["taming_ms"] / row["ours_ms"], 3), "repeats": timings.repeats})
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="the small size only, 3 repeats")
    parser.add_argument("--sizes", default=None, help="comma-separated: small,paper (default: both; --quick: small)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per side and precision (default 5, --quick 3)")
    parser.add_argument("--recipe", default="taming_vqgan", help="our recipe (bench/conf/recipe/), which taming's step follows (default taming_vqgan)")
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
    precisions = {"fp32": None} | ({"bf16": torch.bfloat16} if bf16 else {})
    recipe = compose_recipe(args.recipe)
    rows = [row for name in names for row in run_size(SIZES[name], device, repeats, precisions, recipe)]
    info = SimpleNamespace(device=str(device), gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None, threads=torch.get_num_threads(),
                           recipe=args.recipe, discriminator_input=recipe.adversarial.discriminator_input,
                           perceptual_dropout=recipe.perceptual.dropout)  # fmt: skip
    if args.json:
        print(json.dumps({"machine": vars(info), "rows": rows}, indent=2))
    else:
        print(f"device {info.device}{' (' + info.gpu + ')' if info.gpu else ''}, {info.threads} threads; recipe {info.recipe} on both sides "
              f"(discriminator input: {info.discriminator_input}, LPIPS dropout: {'on' if info.perceptual_dropout else 'off'}); "
              "ratio = taming ms / ours ms at the same precision")  # fmt: skip
        print(tabulate(rows, headers="keys", tablefmt="github"))
    return 0
