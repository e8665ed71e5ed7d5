"""A size of 0 (or another argument out of range) is one error naming the keyword, in every registered
quantizer and architecture, and one line naming the config key in a run."""

from __future__ import annotations

import pytest
import torch

from bench.config import compose
from bench.errors import BenchError
from bench.run import build_tokenizer
from implementations import create_quantizer, create_tokenizer, list_quantizers, list_tokenizers
from implementations.arguments import ArgumentError

BAD_QUANTIZERS = [  # (quantizer, its arguments, the one out of range)
    ("vq", dict(dim=8, codebook_size=0), "codebook_size"),
    ("vq", dict(dim=8, codebook_size=16, codebook_dim=0), "codebook_dim"),
    ("vq", dict(dim=0, codebook_size=16), "dim"),
    ("gumbel", dict(dim=8, codebook_size=16, groups=0), "groups"),
    ("gumbel", dict(dim=8, codebook_size=16, temperature=0.0), "temperature"),
    ("gumbel", dict(dim=8, codebook_size=16, logits_hidden=16, logits_activation="tanh"), "logits_activation"),
    ("residual", dict(dim=8, depth=0, codebook_size=16), "depth"),
    ("residual", dict(dim=8, depth=2, codebook_size=0), "codebook_size"),
    ("lfq", dict(dim=8, codebook_size=0), "codebook_size"),
    ("lfq", dict(dim=8, codebook_size=12), "codebook_size"),
    ("lfq", dict(dim=8, codebook_size=16, num_codebooks=0), "num_codebooks"),
    ("fsq", dict(dim=4, levels=[]), "levels"),
    ("fsq", dict(dim=4, levels=[8, 0]), "levels"),
    ("kmeans", dict(dim=4, codebook_size=0), "codebook_size"),
    ("kmeans", dict(dim=4, depth=0), "depth"),
]

BAD_TOKENIZERS = [  # (architecture, one keyword out of range)
    ("vqvae_simplecnn", dict(hidden_dim=0)),
    ("vqvae_simplecnn", dict(codebook_size=0)),
    ("vqgan_taming_tiny", dict(ch_mult=(1, 0, 2))),
    ("vqgan_taming_tiny", dict(embed_dim=0)),
    ("llamagen_vq_8", dict(z_channels=0)),
    ("rqvae_tiny", dict(depth=0)),
    ("open_magvit2_tiny", dict(ch=0)),
    ("maskgit_vqgan", dict(channel_multipliers=())),
    ("dalle_dvae_tiny", dict(vocab_size=0)),
    ("encodec_tiny", dict(n_filters=0)),
    ("soundstream_tiny", dict(dimension=0)),
    ("vq_wav2vec_tiny_gumbel", dict(feature_layers=[(64, 10, 0)])),
    ("vq_wav2vec_tiny_kmeans", dict(groups=0)),
]


def test_every_quantizer_is_covered():
    assert {name for name, _, _ in BAD_QUANTIZERS} == set(list_quantizers())


@pytest.mark.parametrize("name, kwargs, argument", BAD_QUANTIZERS)
def test_a_quantizer_names_the_argument_out_of_range(name, kwargs, argument):
    with pytest.raises(ArgumentError, match=rf"^{argument} must be ") as caught:
        create_quantizer(name, **kwargs)
    assert caught.value.argument == argument


def test_every_architecture_family_is_covered():
    families = {name.split("_")[0] for name in list_tokenizers()}
    assert {arch.split("_")[0] for arch, _ in BAD_TOKENIZERS} == families


@pytest.mark.parametrize("arch, kwargs", BAD_TOKENIZERS)
def test_an_architecture_names_the_argument_out_of_range(arch, kwargs):
    (argument,) = kwargs
    with torch.device("meta"), pytest.raises(ArgumentError) as caught:
        create_tokenizer(arch, **kwargs)
    assert caught.value.argument == argument


def test_a_run_names_the_config_key_in_one_line():
    tokenizer = compose(["tokenizer=vqvae_tiny_vq_d4", "tokenizer.kwargs.codebook_size=0"]).tokenizer
    with pytest.raises(BenchError) as caught:
        build_tokenizer(tokenizer)
    assert str(caught.value) == "tokenizer.kwargs.codebook_size must be > 0, got 0"

    levels = compose(["tokenizer=vqvae_tiny_fsq_8555", "tokenizer.kwargs.levels=[8,2]"]).tokenizer
    with pytest.raises(BenchError, match=r"^tokenizer.kwargs.levels must be a non-empty list of numbers >= 3 \(FSQ\), got \[8, 2\]$"):
        build_tokenizer(levels)
