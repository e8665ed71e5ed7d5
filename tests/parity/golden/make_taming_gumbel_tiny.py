"""Make ``taming_gumbel_tiny.safetensors``: taming's ``GumbelVQ`` at reduced width, random weights, on
two images: noiseless codes and reconstruction, a seeded Gumbel sample and its reconstruction, and the
KL loss (the golden file of tests/parity/test_taming_gumbel_vqgan.py).

From the taming-transformers-rom1504 0.0.6 sdist unpacked (PyPI, sha256
73fe5fc1108accee4236ee6976e0987ab236afad0af06cb9f037641a908d2c32; CompVis/taming-transformers as of
June 2021, ``GumbelQuantize`` identical to CompVis master 3ba01b2), put first on ``sys.path``; its
``taming/main.py`` does not import under Lightning 2, so ``taming.main`` is a stand-in holding only
``instantiate_from_config``; torch 2.14.1, CPU::

    tar xzf taming-transformers-rom1504-0.0.6.tar.gz
    python tests/parity/golden/make_taming_gumbel_tiny.py taming-transformers-rom1504-0.0.6 tests/parity/golden/taming_gumbel_tiny.safetensors
"""

from __future__ import annotations

import importlib
import sys

import torch
from official import arguments, instantiate_from_config, perturb_and_image_input, stand_in
from safetensors.torch import save_file


def make(official, out) -> None:
    sys.path.insert(0, str(official))
    importlib.import_module("taming")
    stand_in("taming.main", instantiate_from_config=instantiate_from_config)
    GumbelVQ = importlib.import_module("taming.models.vqgan").GumbelVQ  # the official class
    torch.manual_seed(0)
    ddconfig = dict(double_z=False, z_channels=32, resolution=16, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 1], num_res_blocks=1,
                    attn_resolutions=[8], dropout=0.0)  # fmt: skip
    scheduler = {"target": "taming.lr_scheduler.LambdaWarmUpCosineScheduler",
                 "params": dict(warm_up_steps=0, max_decay_steps=1000001, lr_start=0.9, lr_max=0.9, lr_min=1.0e-6)}  # the release's  # fmt: skip
    model = GumbelVQ(ddconfig, {"target": "torch.nn.Identity"}, n_embed=64, embed_dim=32, temperature_scheduler_config=scheduler, kl_weight=1.0)
    x = perturb_and_image_input(model)
    with torch.no_grad():
        h = model.encode_to_prequant(x)
        torch.manual_seed(2)
        quant, loss, (_, _, sampled_codes) = model.quantize(h)  # taming's eval: a hard Gumbel sample
        sampled_reconstruction = model.decode(quant)
        codes = model.quantize(h, return_logits=True)[-1].argmax(dim=1)  # the noiseless mode
        reconstruction = model.decode(model.quantize.get_codebook_entry(codes.flatten(), (2, 8, 8, 32)))
    tensors = {**{f"model.{k}": v for k, v in model.state_dict().items()}, "input": x, "codes": codes, "reconstruction": reconstruction,
               "sampled_codes": sampled_codes, "sampled_reconstruction": sampled_reconstruction, "loss": loss}  # fmt: skip
    save_file({key: value.contiguous() for key, value in tensors.items()}, str(out))


if __name__ == "__main__":
    args = arguments(__doc__, "taming-transformers-rom1504 0.0.6 sdist, unpacked")
    make(args.official, args.out)
