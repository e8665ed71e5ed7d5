"""LlamaGen's VQ tokenizer against golden outputs of its official code (FoundationVision/LlamaGen is
not on PyPI), at reduced width.

``golden/llamagen_vq_tiny.safetensors`` was made by ``golden/make_llamagen_vq_tiny.py`` from
FoundationVision/LlamaGen at ce98ec4 (``tokenizer/tokenizer_image/vq_model.py``; the command is in the
script's docstring): random weights, ch=32, one block per level, 64 codes of dim 8, two 16x16 images.

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
