"""VQGAN against taming-transformers (PyPI ``taming-transformers``, the official code), random weights:
taming's ``Encoder``/``Decoder``/``VectorQuantizer`` and 1x1 convolutions, assembled as its ``VQModel``
does, give a state dict that `taming_state_dict` maps onto ours (strict load); then the same input
gives identical codes and reconstructions within 1e-4, and taming's quantizer loss (legacy beta
placement) equals ours; at the tiny size and at the released f16 layout with width 32, the codebook
drawn from the spread of the encoder's outputs so that the codes vary. The released sizes (f16 with
1024 and 16384 codes) are checked on the meta device: same count, every tensor placed."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest
import torch
from torch import nn

from bench import checkpoints
from bench.errors import BenchError
from bench.run import run_one
from implementations import create_tokenizer
from implementations.checkpoints import sha256_of
from implementations.image.vqgan import taming_state_dict
from tests.conftest import TINY

taming_model = pytest.importorskip("taming.modules.diffusionmodules.model")
taming_quantize = pytest.importorskip("taming.modules.vqvae.quantize")


class TamingVQModel(nn.Module):
    """``taming.models.vqgan.VQModel`` without Lightning and its loss: the same modules and keys."""

    def __init__(self, ddconfig: dict, n_embed: int, embed_dim: int):
        super().__init__()
        self.encoder, self.decoder = taming_model.Encoder(**ddconfig), taming_model.Decoder(**ddconfig)
        self.quantize = taming_quantize.VectorQuantizer(n_embed, embed_dim, beta=0.25)
        self.quant_conv = nn.Conv2d(ddconfig["z_channels"], embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, ddconfig["z_channels"], 1)

    def forward(self, x):
        quant, loss, (_, _, codes) = self.quantize(self.quant_conv(self.encoder(x)))
        return self.decoder(self.post_quant_conv(quant)), loss, codes


def ddconfig(ch, ch_mult, num_res_blocks, attn_resolutions, resolution, z_channels):
    return dict(ch=ch, out_ch=3, ch_mult=list(ch_mult), num_res_blocks=num_res_blocks, attn_resolutions=list(attn_resolutions),
                dropout=0.0, in_channels=3, resolution=resolution, z_channels=z_channels, double_z=False)  # fmt: skip


F16 = ddconfig(128, (1, 1, 2, 2, 4), 2, (16,), 256, 256)  # the released ImageNet models
REFERENCE = dict(family="VQGAN (taming)", reference="taming-transformers", version=version("taming-transformers"), golden=None)
# case -> (configurations, our architecture, taming's ddconfig, n_embed, embed_dim, input size, our factory's overrides, setup)
CASES = {
    "tiny": (["vqgan_taming_tiny"], "vqgan_taming_tiny", ddconfig(32, (1, 2, 2), 1, (8,), 32, 32), 512, 32, 32, {},
             "tiny size, 2 images 32x32"),
    "f16": (["vqgan_taming_f16_1024", "vqgan_taming_f16_16384"], "vqgan_taming_f16_1024", ddconfig(32, (1, 1, 2, 2, 4), 2, (16,), 256, 32),
            64, 32, 64, dict(ch=32, z_channels=32, embed_dim=32, codebook_size=64), "f16 layout at width 32, 64 codes, 2 images 64x64"),
}  # fmt: skip


@pytest.mark.parametrize(("name", "n_embed", "count"), [("vqgan_taming_f16_1024", 1024, 72_141_699), ("vqgan_taming_f16_16384", 16384, 76_073_859)])
def test_full_size_key_map_places_every_tensor_and_counts_match(parity, name, n_embed, count):
    """The released f16 sizes on the meta device: every taming tensor has its place and shape in ours."""
    with torch.device("meta"):
        theirs = TamingVQModel(F16, n_embed, 256)
        ours = create_tokenizer(name)
    parity.size(name, sum(p.numel() for p in ours.parameters()), sum(p.numel() for p in theirs.parameters()))
    assert sum(p.numel() for p in theirs.parameters()) == count
    ours.load_state_dict(taming_state_dict(theirs.state_dict()), strict=True, assign=True)


@pytest.mark.parametrize("name", list(CASES))
def test_codes_and_reconstructions_equal_tamings(parity, name):
    tokenizers, arch, config, n_embed, embed_dim, size, overrides, setup = CASES[name]
    case = parity.case(name, tokenizers=tokenizers, setup=setup, **REFERENCE)
    torch.manual_seed(0)
    theirs = TamingVQModel(config, n_embed, embed_dim).eval()
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():  # taming initialises the codebook in (-1/K, 1/K): draw it from the spread of the encoder's outputs so codes vary
        latents = theirs.quant_conv(theirs.encoder(x)).permute(0, 2, 3, 1).reshape(-1, embed_dim)
        theirs.quantize.embedding.weight.copy_(latents.mean(0) + torch.randn(n_embed, embed_dim) * latents.std(0))
    ours = create_tokenizer(arch, **overrides).eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    ours.load_state_dict(taming_state_dict(theirs.state_dict()), strict=True)

    with torch.no_grad():
        recon, loss, codes = theirs(x)
        out = ours(x)
    grid = ours.token_grid((3, size, size))
    case.compare_codes(out.codes, codes.view(2, *grid, 1), codebook_size=n_embed)
    assert torch.equal(ours.encode(x), out.codes)
    case.compare("reconstruction", out.recon, recon, tolerance=1e-4)
    case.compare("decode", ours.decode(out.codes), recon, tolerance=1e-4)
    torch.testing.assert_close(out.loss, loss, rtol=1e-5, atol=1e-7)


def test_the_key_map_accounts_for_every_key():
    state = {"encoder.conv_in.weight": torch.zeros(1), "loss.discriminator.main.0.weight": torch.zeros(1), "quantize.embedding.weight": torch.zeros(1)}
    assert set(taming_state_dict(state)) == {"encoder.0.conv_in.weight", "quantizer.codebook"}
    with pytest.raises(KeyError, match="model_ema.decay"):
        taming_state_dict({**state, "model_ema.decay": torch.zeros(1)})


def test_bench_run_evaluates_an_official_lightning_checkpoint(compose_run, tmp_path):
    """A taming-format Lightning file (``state_dict`` with the loss module's entries, as released)
    loads through the key map and is evaluated; a file that does not fit is one line."""
    _, _, config, n_embed, embed_dim, _, _, _ = CASES["tiny"]
    torch.manual_seed(0)
    theirs = TamingVQModel(config, n_embed, embed_dim)
    state = {**theirs.state_dict(), "loss.discriminator.main.0.weight": torch.zeros(8, 3, 4, 4)}
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, "global_step": 123, "epoch": 4, "pytorch-lightning_version": "1.0.8"}, path)
    record = run_one(compose_run("tokenizer=vqgan_taming_f16_1024", "tokenizer.arch=vqgan_taming_tiny", "tokenizer.pretrained=false",
                                 f"tokenizer.checkpoint={path}", *TINY))  # fmt: skip
    record = json.loads(record.read_text())
    assert record["train"] == {"steps": 0, "source": "checkpoint"} and record["rate"]["token_grid"] == [8, 8]
    assert record["checkpoint_sha256"] == sha256_of(path)

    model = create_tokenizer("vqgan_taming_tiny")
    state["quantize.embedding.weight"] = torch.zeros(n_embed + 1, embed_dim)
    torch.save({"state_dict": state}, path)
    with pytest.raises(BenchError, match=r"does not fit VQGAN: 1 of another shape, file vs model \(quantizer.codebook \(513, 32\) vs \(512, 32\)\)"):
        checkpoints.load_weights(model, path, taming_state_dict)
    del state["quantize.embedding.weight"]
    torch.save({"state_dict": state}, path)
    with pytest.raises(BenchError, match=r"1 missing \(quantizer.codebook\)"):
        checkpoints.load_weights(model, path, taming_state_dict)
    torch.save([1, 2], path)
    with pytest.raises(BenchError, match="holds a list, not a state dict"):
        checkpoints.load_weights(model, path, taming_state_dict)
