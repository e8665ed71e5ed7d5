"""One parametrized test over every registered tokenizer (timm's pattern): the protocol holds."""

from __future__ import annotations

import math

import pytest
import torch

from implementations import Tokenizer, create_tokenizer, list_tokenizers, tokenizer_entry


FULL_SIZE = 5_000_000  # parameters: built on the meta device only; their numerics are the parity tests' (reduced width)


@pytest.mark.parametrize("name", list_tokenizers())
def test_protocol(name):
    shape = tokenizer_entry(name).input_shape
    with torch.device("meta"):
        full = create_tokenizer(name)
    assert isinstance(full, Tokenizer) and len(full.token_grid(shape)) == len(shape) - 1
    if sum(p.numel() for p in full.parameters()) > FULL_SIZE:
        return  # the forward pass of a full-size model is its parity test's, at reduced width
    torch.manual_seed(0)
    model = create_tokenizer(name)
    x = torch.rand(2, *shape) * 2 - 1

    out = model(x)
    if model.reconstructs:
        assert out.recon.shape == x.shape
    else:  # no decoder (vq-wav2vec): forward gives codes and the quantizer's loss only
        assert out.recon is None
    grid = model.token_grid(shape)
    assert out.codes.shape == (2, *grid, model.num_codebooks)
    assert out.codes.dtype == torch.long
    used = out.codes
    if "num_levels" in out.metrics:  # residual quantizers code the levels that quantizer dropout skipped -1
        used = used[..., : int(out.metrics["num_levels"]) * model.quantizer.codes_per_level]
    assert int(used.min()) >= 0 and int(out.codes.max()) < model.codebook_size
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    if model.reconstructs or out.loss.requires_grad:  # a non-reconstructing tokenizer may have no loss of its own (Gumbel vq-wav2vec)
        out.loss.backward()  # the quantizer loss reaches the parameters

    model.eval()
    codes = model.encode(x)
    if model.reconstructs:
        torch.testing.assert_close(model.decode(codes), model(x).recon)
    else:
        assert torch.equal(codes, model(x).codes)
        with pytest.raises(NotImplementedError, match="no decoder"):
            model.decode(codes)
    assert model.bits_per_token == pytest.approx(model.num_codebooks * math.log2(model.codebook_size))


def test_wrong_input_shape_is_a_clear_error():
    model = create_tokenizer("vqvae_simplecnn")
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.zeros(1, 3, 30, 30))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model(torch.zeros(3, 32, 32))
