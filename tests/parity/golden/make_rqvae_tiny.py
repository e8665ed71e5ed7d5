"""Make ``rqvae_tiny.safetensors``: RQ-VAE's official model at reduced width, random weights, on two
images, and one training step of its shared EMA codebook (the golden file of tests/parity/test_rqvae.py).

From a checkout of kakaobrain/rq-vae-transformer at 341395e562ac347f5eb62db9f5f08b9f2cc42a60:
``rqvae/models/interfaces.py`` and ``rqvae/models/rqvae/`` are imported, with empty stand-ins for
``rqvae/__init__.py`` and ``rqvae/models/__init__.py`` (the official ones import the transformer, EMA
and data code); torch 2.14.1, CPU::

    python tests/parity/golden/make_rqvae_tiny.py rq-vae-transformer tests/parity/golden/rqvae_tiny.safetensors

Restarts of unused codes are off only for the training step's determinism; evaluation does not use them.
"""

from __future__ import annotations

import importlib

import torch
from official import arguments, stand_in
from safetensors.torch import save_file


def make(official, out) -> None:
    stand_in("rqvae", official / "rqvae")
    stand_in("rqvae.models", official / "rqvae" / "models")
    RQVAE = importlib.import_module("rqvae.models.rqvae").RQVAE  # the official class
    torch.manual_seed(0)
    ddconfig = dict(double_z=False, z_channels=32, resolution=16, in_channels=3, out_ch=3, ch=32, ch_mult=[2, 1], num_res_blocks=1,
                    attn_resolutions=[8], dropout=0.0)  # fmt: skip
    model = RQVAE(embed_dim=16, n_embed=64, decay=0.99, latent_shape=[8, 8, 16], code_shape=[8, 8, 4], shared_codebook=True,
                  restart_unused_codes=False, ddconfig=ddconfig)  # fmt: skip
    codebook = model.quantizer.codebooks[0]
    with torch.no_grad():
        for p in model.parameters():  # the shared codebook once
            p.add_(torch.randn_like(p) * 0.05)  # non-trivial norms and biases
        codebook.cluster_size_ema.copy_(torch.rand(64) * 4)
        codebook.embed_ema.copy_(torch.randn(64, 16))
        for t in model.state_dict().values():
            t.copy_(t.half().float())  # float16-exact values: the file stores them as float16
    model.eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    state = {f"model.{k}": v.half().clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        z = model.encode(x)
        quantized, _, codes = model.quantizer(z)
        reconstruction = model.decode(quantized)
    # one training step of the bottleneck (EMA updates, no restarts), its loss and gradient
    model.quantizer.train()
    latent = z.clone().requires_grad_()
    train_quantized, loss, train_codes = model.quantizer(latent)
    loss.backward()
    tensors = {**state, "input": x, "codes": codes, "reconstruction": reconstruction, "train.latent": z, "train.codes": train_codes,
               "train.quantized": train_quantized.detach(), "train.loss": loss.detach(), "train.grad": latent.grad,
               "train.codebook": codebook.weight[:-1].clone(), "train.cluster_size_ema": codebook.cluster_size_ema.clone(),
               "train.embed_ema": codebook.embed_ema.clone()}  # fmt: skip
    save_file({key: value.detach().contiguous() for key, value in tensors.items()}, str(out))


if __name__ == "__main__":
    args = arguments(__doc__, "kakaobrain/rq-vae-transformer checkout at 341395e")
    make(args.official, args.out)
