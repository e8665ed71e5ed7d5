"""RQ-VAE against golden outputs of its official code (kakaobrain/rq-vae-transformer is not on PyPI), at
reduced width: identical codes, reconstructions within 1e-5, and one training step of the shared EMA
codebook (codes, buffers, loss and its gradient) equal to the official ``RQBottleneck``'s.

``golden/rqvae_tiny.safetensors`` was made by ``golden/make_rqvae_tiny.py`` from
kakaobrain/rq-vae-transformer at 341395e562ac347f5eb62db9f5f08b9f2cc42a60 (the command is in the
script's docstring): random float16-exact weights and EMA statistics, width 32, two 16x16 images, and
one training step of the bottleneck (restarts off, for determinism; evaluation does not use them).

Full-size parameter counts from the same code and ``configs/imagenet256/stage1/in256-rqvae-8x8x4.yaml``:
104,402,051 in all, 100,207,491 trainable (the rest is the EMA codebook, 16385 x 256 with its padding row).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bench.checkpoints import load_weights
from bench.config import compose
from bench.errors import BenchError
from implementations import create_tokenizer
from implementations.image.rqvae import rqvae_state_dict

GOLDEN = Path(__file__).parent / "golden" / "rqvae_tiny.safetensors"
REFERENCE = dict(family="RQ-VAE", tokenizers=["rqvae_8x8x4"], reference="kakaobrain/rq-vae-transformer", version="341395e",
                 golden=f"tests/parity/golden/{GOLDEN.name}")  # fmt: skip
TINY = dict(ch=32, ch_mult=(2, 1), num_res_blocks=1, attn_resolutions=(8,), resolution=16, z_channels=32, embed_dim=16, codebook_size=64)


def golden_state(golden: dict) -> dict:
    return {key.removeprefix("model."): value.float() for key, value in golden.items() if key.startswith("model.")}


def test_codes_and_reconstruction_equal_the_official_code(parity):
    case = parity.case("reduced", setup="width 32, multipliers 2-1, one block, 64 shared codes x 4 levels, 2 images 16x16", **REFERENCE)
    golden = load_file(GOLDEN)
    state = golden_state(golden)
    assert {f"quantizer.codebooks.{i}.weight" for i in range(4)} <= set(state)  # the shared codebook, under every level
    ours = create_tokenizer("rqvae_8x8x4", **TINY).eval()
    ours.load_state_dict(rqvae_state_dict(state), strict=True)
    with torch.no_grad():
        out = ours(golden["input"])
    case.compare_codes(out.codes, golden["codes"], codebook_size=64)
    case.compare("reconstruction", out.recon, golden["reconstruction"], tolerance=1e-5)
    case.compare("decode", ours.decode(out.codes), golden["reconstruction"], tolerance=1e-5)


def test_one_training_step_of_the_shared_ema_codebook_equals_the_official_code():
    """Each level searches the codebook the previous level's EMA step left; the loss, weighted as the
    recipe weights it (official: 0.25 x the mean over levels), and its gradient are the official ones."""
    golden = load_file(GOLDEN)
    ours = create_tokenizer("rqvae_8x8x4", **TINY, dead_code_threshold=0.0)
    ours.load_state_dict(rqvae_state_dict(golden_state(golden)), strict=True)
    quantizer_weight = compose(["tokenizer=rqvae_8x8x4"]).tokenizer.recipe.quantizer_weight
    latent = golden["train.latent"].clone().requires_grad_()
    out = ours.quantizer.train()(latent)
    (quantizer_weight * out.loss).backward()
    assert torch.equal(out.codes, golden["train.codes"]) and not torch.equal(out.codes, golden["codes"])
    torch.testing.assert_close(out.quantized, golden["train.quantized"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(quantizer_weight * out.loss, 0.25 * golden["train.loss"], rtol=1e-5, atol=0)
    torch.testing.assert_close(latent.grad, 0.25 * golden["train.grad"], rtol=1e-5, atol=1e-9)
    codebook = ours.quantizer.level(0)
    torch.testing.assert_close(codebook.codebook, golden["train.codebook"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(codebook.ema_cluster_size, golden["train.cluster_size_ema"], rtol=1e-6, atol=0)
    torch.testing.assert_close(codebook.ema_sum, golden["train.embed_ema"], rtol=1e-5, atol=1e-6)


def test_parameter_counts_equal_the_official_model(parity):
    with torch.device("meta"):
        model = create_tokenizer("rqvae_8x8x4")
    codebook = model.quantizer.level(0).codebook  # a buffer here, a frozen nn.Embedding weight with a padding row there
    parity.size("rqvae_8x8x4", sum(p.numel() for p in model.parameters()), 104_402_051, excluded=codebook.numel() + codebook.shape[1],
                note="the EMA codebook with its padding row: a frozen parameter there, a buffer here")  # fmt: skip
    assert model.token_grid((3, 256, 256)) == (8, 8) and model.num_codebooks == 4 and model.codebook_size == 16384


def test_unknown_and_missing_keys_are_named(tmp_path):
    with pytest.raises(KeyError, match="extra.weight"):
        rqvae_state_dict({"encoder.conv_in.weight": torch.zeros(1), "extra.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match=r"quantizer\.codebooks\.0\.scale"):
        rqvae_state_dict({"quantizer.codebooks.0.scale": torch.zeros(1)})
    state = golden_state(load_file(GOLDEN))
    del state["decoder.up.1.attn.0.q.weight"]
    torch.save({"epoch": 1, "state_dict": state}, tmp_path / "model.pt")
    with pytest.raises(BenchError, match=r"1 missing \(decoder\.1\.up\.1\.attn\.0\.q\.weight\)"):
        load_weights(create_tokenizer("rqvae_8x8x4", **TINY), tmp_path / "model.pt", convert=rqvae_state_dict)
