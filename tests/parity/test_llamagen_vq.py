"""LlamaGen's VQ tokenizer against golden outputs of its official code (FoundationVision/LlamaGen is
not on PyPI), at reduced width.

How ``golden/llamagen_vq_tiny.safetensors`` was made (FoundationVision/LlamaGen at ce98ec4,
``tokenizer/tokenizer_image/vq_model.py`` copied into a scratch folder, torch 2.14.1, CPU)::

    torch.manual_seed(0)
    args = ModelArgs(codebook_size=64, codebook_embed_dim=8, encoder_ch_mult=[1, 2], decoder_ch_mult=[1, 2], z_channels=32)
    model = VQModel(args)
    # VQModel hard-codes ch=128 and two res-blocks: rebuild the parts at ch=32, one block
    model.encoder = Encoder(ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=32)
    model.decoder = Decoder(ch=32, ch_mult=(1, 2), num_res_blocks=1, z_channels=32)
    model.quant_conv, model.post_quant_conv = nn.Conv2d(32, 8, 1), nn.Conv2d(8, 32, 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)   # non-trivial norms and biases
    model.eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    quant, _, (_, _, codes) = model.encode(x); reconstruction = model.decode(quant)
    save_file({**{f"model.{k}": v for k, v in model.state_dict().items()}, "input": x,
               "codes": codes.view(2, 8, 8), "reconstruction": reconstruction}, path)

Full-size parameter counts from the same file: ``VQ_16()`` 71,883,403 and ``VQ_8()`` 70,109,835.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from implementations import create_tokenizer
from implementations.image.llamagen import llamagen_state_dict

GOLDEN = Path(__file__).parent / "golden" / "llamagen_vq_tiny.safetensors"
REFERENCE = dict(family="LlamaGen VQ", tokenizers=["llamagen_vq_16"], reference="FoundationVision/LlamaGen", version="ce98ec4",
                 golden=f"tests/parity/golden/{GOLDEN.name}")  # fmt: skip


def test_codes_and_reconstruction_equal_the_official_code(parity):
    case = parity.case("reduced", setup="width 32, one block per level, f2, 64 codes, 2 images 16x16", **REFERENCE)
    golden = load_file(GOLDEN)
    state = {key.removeprefix("model."): value for key, value in golden.items() if key.startswith("model.")}
    assert "quantize.codebook_used" in state  # a training statistic the key map drops by name
    ours = create_tokenizer("llamagen_vq_16", ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,), resolution=16, z_channels=32,
                            codebook_size=64).eval()  # fmt: skip
    ours.load_state_dict(llamagen_state_dict(state), strict=True)
    with torch.no_grad():
        out = ours(golden["input"])
    case.compare_codes(out.codes, golden["codes"].unsqueeze(-1), codebook_size=64)
    case.compare("reconstruction", out.recon, golden["reconstruction"], tolerance=1e-5)
    case.compare("decode", ours.decode(out.codes), golden["reconstruction"], tolerance=1e-5)


def test_parameter_counts_equal_the_official_models(parity):
    with torch.device("meta"):
        vq_16, vq_8 = create_tokenizer("llamagen_vq_16"), create_tokenizer("llamagen_vq_8")
    parity.size("llamagen_vq_16", sum(p.numel() for p in vq_16.parameters()), 71_883_403)
    assert sum(p.numel() for p in vq_8.parameters()) == 70_109_835  # an architecture without a configuration (no released weights registered)


def test_unplaced_keys_are_named():
    with pytest.raises(KeyError, match="extra.weight"):
        llamagen_state_dict({"encoder.conv_in.weight": torch.zeros(1), "extra.weight": torch.zeros(1)})
