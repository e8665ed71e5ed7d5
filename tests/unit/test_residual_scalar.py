"""Residual FSQ and residual LFQ (MARVEL-style multi-depth codes) through the generic ResidualQuantizer."""

from __future__ import annotations

import pytest
import torch

from implementations import create_quantizer, create_tokenizer


@pytest.mark.parametrize("inner, kwargs", [("fsq", {"levels": [8, 5, 5, 5]}), ("lfq", {"codebook_size": 2**4, "entropy_weight": 0.0})])
def test_residual_scalar_quantizers_round_trip(inner, kwargs):
    torch.manual_seed(0)
    quantizer = create_quantizer("residual", dim=4, depth=3, inner=inner, **kwargs).eval()
    z = torch.randn(2, 5, 4)
    out = quantizer(z)
    assert out.codes.shape == (2, 5, 3)
    torch.testing.assert_close(quantizer.codes_to_embeddings(out.codes), out.quantized)
    # each level quantizes what the previous ones left: three levels never do worse than one
    one = quantizer.codes_to_embeddings(out.codes[..., :1])
    assert (z - out.quantized).norm() <= (z - one).norm() + 1e-6


def test_tokenizer_with_residual_fsq_reports_depth_and_rate():
    model = create_tokenizer("vqvae_simplecnn", hidden_dim=16, quantizer="residual", depth=2, inner="fsq", levels=[8, 5, 5, 5])
    out = model(torch.rand(1, 3, 16, 16) * 2 - 1)
    assert out.codes.shape == (1, 4, 4, 2)
    assert model.num_codebooks == 2 and model.codebook_size == 1000
    assert model.bits_per_token == pytest.approx(2 * torch.log2(torch.tensor(1000.0)).item())
