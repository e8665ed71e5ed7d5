"""MaskGIT's VQGAN in the PyTorch form its released weights are used in (bytedance/1d-tokenizer's port,
whose ``maskgit-vqgan-imagenet-f16-256.bin`` on Hugging Face ``fun-research/TiTok`` is TiTok's stage-1
teacher) against golden outputs of that port, at reduced width, through `titok_maskgit_state_dict`.
(tests/parity/test_maskgit_vqgan.py holds the same module tree to google-research/maskgit's JAX code.)

``golden/maskgit_titok_tiny.safetensors`` was made by ``golden/make_maskgit_titok_tiny.py`` from
bytedance/1d-tokenizer at 942a96f (``modeling/modules/maskgit_vqgan.py``; the command is in the script's
docstring): random float16-exact weights, width 32, two 16x16 images, and in its metadata the released
configuration's key names and shapes.

Ranges: the port, like the JAX code, takes images in [0, 1] and gives reconstructions in about [0, 1]
(TiTok feeds ``ToTensor()`` images; ``PretrainedTokenizer.decode`` clamps to [0, 1]); ours takes and
gives [-1, 1], so the golden input goes in as ``2 x - 1`` and our output is compared with
``2 reconstruction - 1``. The reconstruction differs in the last digits (float32 summation order: the
port pads by ``F.pad`` then convolves).
The file's metadata lists the released configuration's key names and shapes (54,515,587 parameters),
which must all map onto the full-size ``maskgit_vqgan`` (two blocks per level, five levels).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from implementations import create_tokenizer
from implementations.image.maskgit import titok_maskgit_state_dict
from implementations.registry import tokenizer_entry

GOLDEN = Path(__file__).parent / "golden" / "maskgit_titok_tiny.safetensors"
TINY = dict(filters=32, channel_multipliers=(1, 1, 2), num_res_blocks=1, embedding_dim=16, codebook_size=64)
REFERENCE = dict(family="MaskGIT VQGAN, TiTok's PyTorch port (the released weights)", tokenizers=["maskgit_vqgan"], reference="bytedance/1d-tokenizer",
                 version="942a96f", golden=f"tests/parity/golden/{GOLDEN.name}")  # fmt: skip


def golden_state() -> tuple[dict, dict[str, torch.Tensor]]:
    golden = load_file(GOLDEN)
    return golden, {key.removeprefix("model."): value for key, value in golden.items() if key.startswith("model.")}


def released_shapes() -> dict[str, torch.Tensor]:
    with safe_open(str(GOLDEN), "pt") as handle:
        shapes = json.loads(handle.metadata()["released_shapes"])
    return {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}


def test_codes_and_reconstruction_equal_the_titok_port(parity):
    case = parity.case("reduced", setup="width 32, multipliers 1-1-2, one block, 64 codes, 2 images 16x16", **REFERENCE)
    golden, state = golden_state()
    ours = create_tokenizer("maskgit_vqgan", **TINY).eval()
    ours.load_state_dict(titok_maskgit_state_dict(state), strict=True)
    with torch.no_grad():
        out = ours(golden["input"] * 2 - 1)
    case.compare_codes(out.codes, golden["codes"].unsqueeze(-1), codebook_size=64)
    expected = golden["reconstruction"] * 2 - 1
    case.compare("reconstruction", out.recon, expected, tolerance=1e-4)
    case.compare("decode", ours.decode(out.codes), expected, tolerance=1e-4)


def test_released_configuration_maps_onto_the_full_size_model():
    """The port's key layout at the released size; the count is recorded by test_maskgit_vqgan.py (the JAX model's)."""
    state = released_shapes()
    assert sum(value.numel() for value in state.values()) == 54_515_587
    with torch.device("meta"):
        ours = create_tokenizer("maskgit_vqgan")
    ours.load_state_dict(titok_maskgit_state_dict(state), strict=True, assign=True)  # every key, every shape


def test_registered_release_and_key_map():
    entry = tokenizer_entry("maskgit_vqgan")
    assert entry.convert is titok_maskgit_state_dict
    (release,) = entry.pretrained
    assert (release.hf_repo, release.filename) == ("fun-research/TiTok", "maskgit-vqgan-imagenet-f16-256.bin")


def test_unplaced_missing_and_misshapen_keys_are_named():
    _, state = golden_state()
    with pytest.raises(KeyError, match=r"extra\.weight"):
        titok_maskgit_state_dict({**state, "extra.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match=r"decoder\.up\.0\.upsample_conv\.weight"):  # the port has no upsampling after its last level
        titok_maskgit_state_dict({**state, "decoder.up.0.upsample_conv.weight": torch.zeros(32, 32, 3, 3)})
    with pytest.raises(KeyError, match=r"encoder\.levels\.2\.0\.shortcut\.weight"):
        titok_maskgit_state_dict({k: v for k, v in state.items() if k != "encoder.down.2.block.0.nin_shortcut.weight"})
    with pytest.raises(KeyError, match=r"decoder\.up\.1\.upsample_conv\.weight"):
        titok_maskgit_state_dict({**state, "decoder.up.1.upsample_conv.weight": torch.zeros(32, 32, 1, 1)})
