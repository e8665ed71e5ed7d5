"""Open-MAGVIT2's tokenizer against golden outputs of its official code (TencentARC/SEED-Voken is not on
PyPI), at reduced width: identical codes, reconstructions within 1e-5, the LFQ's training terms.

``golden/open_magvit2_tiny.safetensors`` was made by ``golden/make_open_magvit2_tiny.py`` from
TencentARC/SEED-Voken at b9a17eac8e2c0779c12a5429b0bfd6c502788484 (whose model files equal
TencentARC/Open-MAGVIT2 at 3c58097; the command is in the script's docstring): random raw and EMA
weights, width 32, two 16x16 images, the LFQ's training terms. The raw weights are left out to keep the
file under 1 MB; the test puts zeros in their place, so the codes and reconstruction only match if the
key map takes the EMA weights.

Full-size parameter counts from the same code and ``configs/Open-MAGVIT2/gpu/imagenet_lfqgan_{256,128}_L.yaml``
(encoder + decoder; the LFQ has none): 115,127,829 and 112,021,653.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bench.checkpoints import load_weights
from bench.errors import BenchError
from implementations import create_tokenizer, tokenizer_entry
from implementations.image.open_magvit2 import open_magvit2_state_dict

GOLDEN = Path(__file__).parent / "golden" / "open_magvit2_tiny.safetensors"
TINY = dict(ch=32, ch_mult=(2, 1), num_res_blocks=1)
REFERENCE = dict(family="Open-MAGVIT2 (EMA weights)", tokenizers=["open_magvit2_256", "open_magvit2_128"], reference="TencentARC/SEED-Voken",
                 version="b9a17ea", golden=f"tests/parity/golden/{GOLDEN.name}")  # fmt: skip


def checkpoint(golden: dict, model) -> dict:
    """The golden state dict with zeros for the raw (non-EMA) weights, under the official names."""
    state = {key.removeprefix("model."): value.float() if value.is_floating_point() else value for key, value in golden.items() if key.startswith("model.")}
    return {**{key: torch.zeros_like(value) for key, value in model.state_dict().items()}, **state}


def test_codes_and_reconstruction_equal_the_official_code(parity):
    case = parity.case("reduced", setup="width 32, multipliers 2-1, one block, 2^18 codes, 2 images 16x16", **REFERENCE)
    golden = load_file(GOLDEN)
    ours = create_tokenizer("open_magvit2_256", **TINY).eval()
    state = checkpoint(golden, ours)
    assert {"loss.discriminator.weight", "model_ema.lossdiscriminatorweight", "model_ema.num_updates"} <= set(state)  # dropped by name
    ours.load_state_dict(open_magvit2_state_dict(state), strict=True)
    with torch.no_grad():
        out = ours(golden["input"])
    case.compare_codes(out.codes, golden["codes"].unsqueeze(-1), codebook_size=2**18, min_distinct=128)
    case.compare("reconstruction", out.recon, golden["reconstruction"], tolerance=1e-5)
    case.compare("decode", ours.decode(out.codes), golden["reconstruction"], tolerance=1e-5)


def test_lfq_training_terms_equal_the_official_code():
    """Per-sample entropy and commitment as the official LFQ computes them in training. Its codebook
    entropy adds 1e-5 inside the log (``-sum p log(p + 1e-5)``), so it lies a little below ours, which is
    exact over all 2^18 codes."""
    golden = load_file(GOLDEN)
    ours = create_tokenizer("open_magvit2_256", **TINY).eval()
    ours.load_state_dict(open_magvit2_state_dict(checkpoint(golden, ours)), strict=True)
    with torch.no_grad():
        metrics = ours.quantizer.train()(ours.encoder(golden["input"]).permute(0, 2, 3, 1)).metrics
    torch.testing.assert_close(metrics["per_sample_entropy"], golden["train.per_sample_entropy"], rtol=1e-4, atol=0)
    torch.testing.assert_close(metrics["commitment"], golden["train.commitment"], rtol=1e-5, atol=0)
    assert 0 < metrics["codebook_entropy"] - golden["train.codebook_entropy"] < 5e-3


@pytest.mark.parametrize(("name", "count"), [("open_magvit2_256", 115_127_829), ("open_magvit2_128", 112_021_653)])
def test_parameter_counts_equal_the_official_models(parity, name, count):
    with torch.device("meta"):
        model = create_tokenizer(name)
    parity.size(name, sum(p.numel() for p in model.parameters()), count)
    assert model.codebook_size == 2**18 and model.token_grid(tokenizer_entry(name).input_shape) == (16, 16)


def test_unknown_and_missing_keys_are_named(tmp_path):
    with pytest.raises(KeyError, match="extra.weight"):
        open_magvit2_state_dict({"encoder.conv_in.weight": torch.zeros(1), "extra.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="model_ema.encoderextraweight"):
        open_magvit2_state_dict({"encoder.conv_in.weight": torch.zeros(1), "model_ema.encoderextraweight": torch.zeros(1)})
    ours = create_tokenizer("open_magvit2_256", **TINY)
    state = checkpoint(load_file(GOLDEN), ours)
    del state["decoder.adaptive.1.gamma.weight"], state["model_ema.decoderadaptive1gammaweight"]
    torch.save({"epoch": 1, "state_dict": state}, tmp_path / "imagenet_256_L.ckpt")
    with pytest.raises(BenchError, match=r"1 missing \(decoder\.adaptive\.1\.gamma\.weight\)"):
        load_weights(ours, tmp_path / "imagenet_256_L.ckpt", convert=open_magvit2_state_dict)
