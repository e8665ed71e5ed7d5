"""Make ``maskgit_titok_tiny.safetensors``: the PyTorch port of MaskGIT's VQGAN in bytedance/1d-tokenizer
(the module tree of TiTok's released ``maskgit-vqgan-imagenet-f16-256.bin``) at reduced width, random
weights, on two images, and the released configuration's key names and shapes in its metadata (the
golden file of tests/parity/test_maskgit_titok.py).

From a checkout of bytedance/1d-tokenizer at 942a96f (only ``modeling/modules/maskgit_vqgan.py`` is
imported), torch 2.14.1, CPU::

    python tests/parity/golden/make_maskgit_titok_tiny.py 1d-tokenizer tests/parity/golden/maskgit_titok_tiny.safetensors
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import torch
from official import arguments, module_from_file
from safetensors.torch import save_file


def make(official, out) -> None:
    port = module_from_file(official / "modeling" / "modules" / "maskgit_vqgan.py", "maskgit_vqgan")

    def tokenizer(conf, codes, dim):  # modeling/titok.py PretrainedTokenizer's three children, its attribute names
        model = torch.nn.Module()
        model.encoder, model.decoder = port.Encoder(conf), port.Decoder(conf)
        model.quantize = port.VectorQuantizer(num_embeddings=codes, embedding_dim=dim, commitment_cost=0.25)
        return model

    torch.manual_seed(0)
    conf = SimpleNamespace(channel_mult=[1, 1, 2], num_resolutions=3, dropout=0.0, hidden_channels=32, num_channels=3,
                           num_res_blocks=1, resolution=16, z_channels=16)  # fmt: skip
    model = tokenizer(conf, 64, 16)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # non-trivial norms and biases (and a spread codebook)
            p.copy_(p.half().float())  # values float16 holds exactly: the file stores them in half the bytes
    model.eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))  # the port's inputs: [0, 1]
    with torch.no_grad():
        # PretrainedTokenizer.encode / .decode (float32), without decode's final clamp to [0, 1]
        codes = model.quantize(model.encoder(x))[1]
        reconstruction = model.decoder(model.quantize.get_codebook_entry(codes))
    full = SimpleNamespace(channel_mult=[1, 1, 2, 2, 4], num_resolutions=5, dropout=0.0, hidden_channels=128, num_channels=3,
                           num_res_blocks=2, resolution=256, z_channels=256)  # PretrainedTokenizer's own conf  # fmt: skip
    with torch.device("meta"):
        released = tokenizer(full, 1024, 256)
    shapes = {k: list(v.shape) for k, v in released.state_dict().items()}
    save_file({**{f"model.{k}": v.half().contiguous() for k, v in model.state_dict().items()}, "input": x,
               "codes": codes.view(2, 4, 4).contiguous(), "reconstruction": reconstruction.contiguous()},
              str(out), metadata={"released_shapes": json.dumps(shapes)})  # fmt: skip


if __name__ == "__main__":
    args = arguments(__doc__, "bytedance/1d-tokenizer checkout at 942a96f")
    make(args.official, args.out)
