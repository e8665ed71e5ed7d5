"""Make ``open_magvit2_tiny.safetensors``: Open-MAGVIT2's official tokenizer at reduced width, random
raw and EMA weights, on two images, with the LFQ's training terms (the golden file of
tests/parity/test_open_magvit2.py).

From a checkout of TencentARC/SEED-Voken at b9a17eac8e2c0779c12a5429b0bfd6c502788484 (whose model
files equal TencentARC/Open-MAGVIT2 at 3c58097): ``src/Open_MAGVIT2/models/lfqgan.py`` and the modules
it imports, with stand-ins for the rest of what ``lfqgan.py`` imports: ``lightning.LightningModule`` is
``nn.Module``, ``main`` holds only ``instantiate_from_config``, and ``stub_loss.StubLoss`` is an
``nn.Module`` whose ``discriminator`` is ``nn.Conv2d(3, 1, 1)`` (so that the file holds ``loss.*``
entries and their EMA as a released checkpoint does); torch 2.14.1, CPU::

    python tests/parity/golden/make_open_magvit2_tiny.py SEED-Voken tests/parity/golden/open_magvit2_tiny.safetensors

The raw weights are left out of the file to keep it under 1 MB (the test puts zeros in their place,
so the codes and reconstruction only match if the key map takes the EMA weights).
"""

from __future__ import annotations

import importlib
import sys

import torch
from official import arguments, instantiate_from_config, stand_in
from safetensors.torch import save_file
from torch import nn


class StubLoss(nn.Module):
    def __init__(self):
        super().__init__()
        self.discriminator = nn.Conv2d(3, 1, 1)


def make(official, out) -> None:
    stand_in("lightning", LightningModule=nn.Module)
    stand_in("main", instantiate_from_config=instantiate_from_config)
    stand_in("stub_loss", StubLoss=StubLoss)
    sys.path.insert(0, str(official))
    VQModel = importlib.import_module("src.Open_MAGVIT2.models.lfqgan").VQModel  # the official class
    torch.manual_seed(0)
    ddconfig = dict(double_z=False, z_channels=18, resolution=16, in_channels=3, out_ch=3, ch=32, ch_mult=[2, 1], num_res_blocks=1)
    model = VQModel(ddconfig=ddconfig, lossconfig={"target": "stub_loss.StubLoss"}, n_embed=2**18, embed_dim=18,
                    sample_minimization_weight=1.0, batch_maximization_weight=1.0, use_ema=True)  # fmt: skip
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # the raw weights
        for name, b in model.model_ema.named_buffers():
            if name not in ("decay", "num_updates"):
                b.add_(torch.randn_like(b) * 0.05)  # the EMA weights: other values, non-trivial norms and biases
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())  # float16-exact values: the file stores them as float16
    model.eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    # the checkpoint's state_dict without the raw encoder/decoder weights (the test puts zeros there)
    state = {f"model.{k}": (v.half() if v.is_floating_point() else v).clone() for k, v in model.state_dict().items()
             if not k.startswith(("encoder.", "decoder."))}  # fmt: skip
    with torch.no_grad(), model.ema_scope():  # as evaluation_image.py runs the released models
        quantized, _, codes, _ = model.encode(x)
        reconstruction = model.decode(quantized)
        latent = model.encoder(x)
        model.quantize.train()
        _, breakdown = model.quantize(latent, return_loss_breakdown=True)
    tensors = {**state, "input": x, "codes": codes.view(2, 8, 8), "reconstruction": reconstruction,
               "train.per_sample_entropy": breakdown.per_sample_entropy, "train.codebook_entropy": breakdown.codebook_entropy,
               "train.commitment": breakdown.commitment}  # fmt: skip
    save_file({key: value.contiguous() for key, value in tensors.items()}, str(out))


if __name__ == "__main__":
    args = arguments(__doc__, "TencentARC/SEED-Voken checkout at b9a17ea")
    make(args.official, args.out)
