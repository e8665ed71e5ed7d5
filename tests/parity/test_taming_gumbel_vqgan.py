"""taming's Gumbel VQGAN (``GumbelVQ`` with ``GumbelQuantize``) against golden outputs of the official
code at reduced width. The PyPI ``taming-transformers`` 0.0.1 this suite installs predates
``GumbelQuantize``; ``taming-transformers-rom1504`` 0.0.6 republishes CompVis/taming-transformers as of
June 2021 with it (``GumbelQuantize`` identical to CompVis master 3ba01b2, the network's ``model.py``
identical to 0.0.1's) but installs the same ``taming`` package, so the two cannot sit in one environment.

``golden/taming_gumbel_tiny.safetensors`` was made by ``golden/make_taming_gumbel_tiny.py`` from the
taming-transformers-rom1504 0.0.6 sdist (the command is in the script's docstring): random weights,
width 32, two 16x16 images; the noiseless codes and reconstruction, a seeded Gumbel sample (taming's
eval) and its reconstruction, and the KL loss.

The released size, ``GumbelVQ`` built from the release's ``configs/model.yaml`` in the same environment
on the meta device, has 68,995,971 parameters.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from implementations import create_tokenizer
from implementations.image.vqgan import taming_state_dict

GOLDEN = Path(__file__).parent / "golden" / "taming_gumbel_tiny.safetensors"
REFERENCE = dict(family="VQGAN Gumbel (taming)", tokenizers=["vqgan_taming_gumbel_f8_8192"], reference="taming-transformers-rom1504",
                 version="0.0.6", golden=f"tests/parity/golden/{GOLDEN.name}")  # fmt: skip
TINY = dict(ch=32, ch_mult=(1, 1), num_res_blocks=1, attn_resolutions=(8,), resolution=16, z_channels=32, embed_dim=32, codebook_size=64)


def test_codes_and_reconstructions_equal_the_official_code(parity):
    case = parity.case("reduced", setup="width 32, multipliers 1-1, one block, 64 codes, 2 images 16x16", **REFERENCE)
    golden = load_file(GOLDEN)
    state = {key.removeprefix("model."): value for key, value in golden.items() if key.startswith("model.")}
    ours = create_tokenizer("vqgan_taming_gumbel_f8_8192", **TINY, kl_weight=1.0).eval()
    ours.load_state_dict(taming_state_dict(state), strict=True)
    with torch.no_grad():
        out = ours(golden["input"])
    case.compare_codes(out.codes, golden["codes"].unsqueeze(-1), codebook_size=64, min_distinct=20)  # ours: the argmax of taming's logits
    case.compare("reconstruction", out.recon, golden["reconstruction"], tolerance=1e-5)
    case.compare("decode", ours.decode(out.codes), golden["reconstruction"], tolerance=1e-5)
    # taming's own eval draws Gumbel noise: its sampled codes decode to its reconstruction here too
    case.compare("decode of taming's sampled codes", ours.decode(golden["sampled_codes"].unsqueeze(-1)), golden["sampled_reconstruction"], tolerance=1e-5)
    torch.testing.assert_close(out.loss, golden["loss"], rtol=1e-5, atol=1e-7)  # kl_weight * KL(softmax(logits) || uniform)

    ours.train()  # straight_through=True: the forward value is the sampled code's vector
    sample = ours.quantize(golden["input"])
    torch.testing.assert_close(sample.quantized, ours.quantizer.codebook[0][sample.codes[..., 0]], rtol=0, atol=1e-6)


def test_full_size_parameter_count_and_key_map(parity):
    """The release's size on the meta device: the installed taming network plus ``GumbelVQ``'s quantizer
    tensors (``proj``: 1x1 convolution 256 -> 8192, ``embed``: 8192 x 256) all have their place in ours."""
    taming_model = pytest.importorskip("taming.modules.diffusionmodules.model")
    ddconfig = dict(ch=128, out_ch=3, ch_mult=[1, 1, 2, 4], num_res_blocks=2, attn_resolutions=[32], dropout=0.0, in_channels=3,
                    resolution=256, z_channels=256, double_z=False)  # fmt: skip
    with torch.device("meta"):
        theirs = nn.ModuleDict(dict(encoder=taming_model.Encoder(**ddconfig), decoder=taming_model.Decoder(**ddconfig),
                                    quant_conv=nn.Conv2d(256, 256, 1), post_quant_conv=nn.Conv2d(256, 256, 1)))  # fmt: skip
        theirs["quantize"] = nn.ModuleDict(dict(proj=nn.Conv2d(256, 8192, 1), embed=nn.Embedding(8192, 256)))
        ours = create_tokenizer("vqgan_taming_gumbel_f8_8192")
    parity.size("vqgan_taming_gumbel_f8_8192", sum(p.numel() for p in ours.parameters()), sum(p.numel() for p in theirs.parameters()))
    assert sum(p.numel() for p in theirs.parameters()) == 68_995_971
    ours.load_state_dict(taming_state_dict(theirs.state_dict()), strict=True, assign=True)
    assert ours.token_grid((3, 256, 256)) == (32, 32) and ours.codebook_size == 8192
