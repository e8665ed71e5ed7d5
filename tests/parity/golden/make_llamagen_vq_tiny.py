"""Make ``llamagen_vq_tiny.safetensors``: LlamaGen's official VQ tokenizer at reduced width, random
weights, on two images (the golden file of tests/parity/test_llamagen_vq.py).

From a checkout of FoundationVision/LlamaGen at ce98ec4 (only ``tokenizer/tokenizer_image/vq_model.py``
is imported), torch 2.14.1, CPU::

    python tests/parity/golden/make_llamagen_vq_tiny.py LlamaGen tests/parity/golden/llamagen_vq_tiny.safetensors
"""

from __future__ import annotations

import torch
from official import arguments, module_from_file, perturb_and_image_input
from safetensors.torch import save_file
from torch import nn


def make(official, out) -> None:
    vq = module_from_file(official / "tokenizer" / "tokenizer_image" / "vq_model.py", "vq_model")
    torch.manual_seed(0)
    args = vq.ModelArgs(codebook_size=64, codebook_embed_dim=8, encoder_ch_mult=[1, 2], decoder_ch_mult=[1, 2], z_channels=32)
    model = vq.VQModel(args)
    # VQModel hard-codes ch=128 and two res-blocks: rebuild the parts at ch=32, one block
    model.encoder = vq.Encoder(ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=32)
    model.decoder = vq.Decoder(ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=32)
    model.quant_conv, model.post_quant_conv = nn.Conv2d(32, 8, 1), nn.Conv2d(8, 32, 1)
    x = perturb_and_image_input(model)
    with torch.no_grad():
        quant, _, (_, _, codes) = model.encode(x)
        reconstruction = model.decode(quant)
    save_file({**{f"model.{k}": v for k, v in model.state_dict().items()}, "input": x, "codes": codes.view(2, 8, 8),
               "reconstruction": reconstruction.contiguous()}, str(out))  # fmt: skip


if __name__ == "__main__":
    args = arguments(__doc__, "FoundationVision/LlamaGen checkout at ce98ec4")
    make(args.official, args.out)
