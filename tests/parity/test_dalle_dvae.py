"""DALL-E's dVAE against the official code (PyPI ``DALL-E`` 0.1, ``dall_e.Encoder`` / ``dall_e.Decoder``),
random weights at reduced width (n_hid 64, one block per group, 512 codes: the smallest the official
validators accept): its state dicts, mapped by `dalle_state_dict`, load strictly into ours; then the
same images give identical codes (the argmax of identical logits) and reconstructions within 1e-5, the
official notebook's ``unmap_pixels(sigmoid(mu))`` taken to [-1, 1]. The released size (97,616,006
parameters) is checked on the meta device: same count, every tensor placed. The released files are
pickled whole modules: the trusted, opt-in conversion reads such a file written by ``torch.save``."""

from __future__ import annotations

from importlib.metadata import version

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from bench import checkpoints
from implementations import create_tokenizer, tokenizer_entry
from implementations.image.dalle import convert_pickles, dalle_state_dict
from implementations.image.dalle.__main__ import main

dall_e = pytest.importorskip("dall_e")

REDUCED = dict(n_hid=64, n_blk_per_group=1, vocab_size=512)
REFERENCE = dict(family="DALL-E dVAE", tokenizers=["dalle_dvae"], reference="DALL-E", version=version("DALL-E"), golden=None)


def official(**size):
    """Random official modules. Their initialisation gives nearly the same logits at every position and
    nearly constant reconstructions, so the test spreads them: the encoder's output bias centres the
    logits of `images` (about 100 distinct codes of 128) and the decoder's input convolution (the
    codebook) is scaled 10x (reconstructions vary with the codes, none clamped)."""
    torch.manual_seed(0)
    encoder, decoder = dall_e.Encoder(**size).eval(), dall_e.Decoder(n_init=32, **size).eval()
    with torch.no_grad():
        features = torch.relu(encoder.blocks[:-1](dall_e.map_pixels((images() + 1) / 2))).mean((0, 2, 3))
        encoder.blocks.output.conv.b.copy_(-(encoder.blocks.output.conv.w[:, :, 0, 0] @ features))
        decoder.blocks.input.w.mul_(10)
    return encoder, decoder


def official_state(encoder, decoder) -> dict[str, torch.Tensor]:
    return {**{f"encoder.{k}": v for k, v in encoder.state_dict().items()}, **{f"decoder.{k}": v for k, v in decoder.state_dict().items()}}


def official_reconstruction(encoder, decoder, x):
    """The official notebook (notebooks/usage.ipynb) on images in [-1, 1]: codes and reconstruction in [-1, 1]."""
    logits = encoder(dall_e.map_pixels((x + 1) / 2))
    codes = logits.argmax(dim=1)
    stats = decoder(F.one_hot(codes, num_classes=encoder.vocab_size).permute(0, 3, 1, 2).float())
    return codes, 2 * dall_e.unmap_pixels(torch.sigmoid(stats[:, :3])) - 1


def images(size=64):
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_codes_and_reconstructions_equal_the_official_modules(parity):
    case = parity.case("reduced", setup="n_hid 64, one block per group, 512 codes, 2 images 64x64", **REFERENCE)
    encoder, decoder = official(**REDUCED)
    ours = create_tokenizer("dalle_dvae", n_init=32, **REDUCED).eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for m in (encoder, decoder) for p in m.parameters())
    ours.load_state_dict(dalle_state_dict(official_state(encoder, decoder)), strict=True)

    x = images()
    with torch.no_grad():
        codes, recon = official_reconstruction(encoder, decoder, x)
        out = ours(x)
    assert recon.std() > 0.1  # reconstructions vary
    case.compare_codes(out.codes, codes.unsqueeze(-1), codebook_size=512, min_distinct=80)
    assert torch.equal(ours.encode(x), out.codes)
    case.compare("reconstruction", out.recon, recon, tolerance=1e-5)
    case.compare("decode", ours.decode(out.codes), recon, tolerance=1e-5)

    # training: the decoder reads the relaxed one-hot as the official decoder would
    ours.train()
    with torch.no_grad():
        relaxed = ours.quantize(x).quantized.permute(0, 3, 1, 2)
        torch.testing.assert_close(ours.decoder(relaxed), decoder(relaxed), rtol=1e-5, atol=1e-5)
    assert not torch.equal(relaxed, F.one_hot(codes, 512).permute(0, 3, 1, 2).float())


def test_full_size_parameter_count_and_key_map(parity):
    """The released size on the meta device: every official tensor has its place and shape in ours."""
    meta = torch.device("meta")
    encoder, decoder = dall_e.Encoder(device=meta), dall_e.Decoder(device=meta)
    with meta:
        ours = create_tokenizer("dalle_dvae")
    theirs = sum(p.numel() for m in (encoder, decoder) for p in m.parameters())
    parity.size("dalle_dvae", sum(p.numel() for p in ours.parameters()), theirs)
    assert theirs == 97_616_006
    ours.load_state_dict(dalle_state_dict(official_state(encoder, decoder)), strict=True, assign=True)
    assert ours.token_grid((3, 256, 256)) == (32, 32) and ours.codebook_size == 8192


def test_pickled_official_modules_convert_only_when_trusted(tmp_path, capsys):
    encoder, decoder = official(**REDUCED)
    torch.save(encoder, tmp_path / "encoder.pkl")  # as released: whole modules, not state dicts
    torch.save(decoder, tmp_path / "decoder.pkl")
    out = tmp_path / "dalle_dvae.safetensors"
    with pytest.raises(PermissionError, match="pickled Python modules"):
        convert_pickles(tmp_path / "encoder.pkl", tmp_path / "decoder.pkl", out)
    with pytest.raises(SystemExit):
        main(["convert", str(tmp_path / "encoder.pkl"), str(tmp_path / "decoder.pkl"), str(out)])
    assert "--trust-pickle" in capsys.readouterr().err and not out.exists()

    main(["convert", "--trust-pickle", str(tmp_path / "encoder.pkl"), str(tmp_path / "decoder.pkl"), str(out)])
    assert set(load_file(out)) == set(official_state(encoder, decoder))
    model = create_tokenizer("dalle_dvae", n_init=32, **REDUCED).eval()
    checkpoints.load_weights(model, out, tokenizer_entry("dalle_dvae").convert)  # what tokenizer.pretrained does with the file
    x = images(32)
    with torch.no_grad():
        codes, recon = official_reconstruction(encoder, decoder, x)
        result = model(x)
    assert torch.equal(result.codes[..., 0], codes)
    torch.testing.assert_close(result.recon, recon, rtol=1e-5, atol=1e-5)


def test_unplaced_keys_are_named():
    with pytest.raises(KeyError, match="encoder.extra"):
        dalle_state_dict({"encoder.blocks.input.w": torch.zeros(1), "encoder.extra": torch.zeros(1)})
