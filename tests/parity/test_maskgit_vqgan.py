"""MaskGIT's VQGAN tokenizer against the official JAX code (google-research/maskgit as the PyPI
``maskgit`` package ships it, run with jax/flax on the CPU), random weights at reduced width: the
Flax parameters map onto ours (every one placed, every shape checked by a strict load); then the
same images give identical codes and reconstructions within 1e-4. The released configuration's
parameter shapes (``jax.eval_shape``, nothing computed) fit ours on the meta device, count included."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import pytest
import torch

from implementations import create_tokenizer
from implementations.image.maskgit import maskgit_flax_state_dict

jax = pytest.importorskip("jax")
vqgan_tokenizer = pytest.importorskip("maskgit.nets.vqgan_tokenizer")
vqgan_config = pytest.importorskip("maskgit.configs.vqgan_config")
REFERENCE = dict(family="MaskGIT VQGAN (JAX)", tokenizers=["maskgit_vqgan"], reference="maskgit", version=version("maskgit"), golden=None)


def official(filters, multipliers, blocks, dim, codes, size, shapes_only=False):
    """MaskGIT's ``VQVAE`` and its parameters (random; with ``shapes_only`` zeros of the shapes, from
    ``jax.eval_shape``: nothing is computed)."""
    config = vqgan_config.get_config()
    config.vqvae.update(filters=filters, channel_multipliers=list(multipliers), num_res_blocks=blocks, embedding_dim=dim, codebook_size=codes)
    model = vqgan_tokenizer.VQVAE(config=config, train=False)
    images = jax.numpy.zeros((1, size, size, 3))
    latent = jax.numpy.zeros((1, size // 2 ** (len(multipliers) - 1), size // 2 ** (len(multipliers) - 1), dim))
    # VQVAE.__call__ passes encode's (quantized, dict) tuple to the decoder, so initialise the halves apart
    halves = [(jax.random.PRNGKey(0), {"image": images}, model.encode), (jax.random.PRNGKey(3), latent, model.decode)]
    params = {}
    for key, inputs, method in halves:
        if shapes_only:
            shapes = jax.eval_shape(lambda k, i, m=method: model.init({"params": k}, i, method=m), key, inputs)["params"]
            params.update(jax.tree_util.tree_map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), shapes))
        else:
            params.update(model.init({"params": key}, inputs, method=method)["params"])
    if shapes_only:
        return model, params
    # non-trivial GroupNorm affines and biases
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    params = jax.tree_util.tree_unflatten(tree, [leaf + 0.05 * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)])
    return model, params


def test_codes_and_reconstructions_equal_the_official_jax_code(parity):
    case = parity.case("reduced", setup="width 32, multipliers 1-2, one block, 64 codes, 2 images 16x16", **REFERENCE)
    arch = dict(filters=32, channel_multipliers=(1, 2), num_res_blocks=1, embedding_dim=16, codebook_size=64)
    model, params = official(32, (1, 2), 1, 16, 64, 16)
    ours = create_tokenizer("maskgit_vqgan", **arch).eval()
    ours.load_state_dict(maskgit_flax_state_dict(params, num_res_blocks=1, num_levels=2), strict=True)

    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    images = jax.numpy.asarray(((x + 1) / 2).permute(0, 2, 3, 1).numpy())
    codes = model.apply({"params": params}, images, method=model.encode_to_indices)
    recon = model.apply({"params": params}, codes, method=model.decode_from_indices)
    with torch.no_grad():
        out = ours(x)
    case.compare_codes(out.codes, torch.from_numpy(np.asarray(codes)).long().unsqueeze(-1), codebook_size=64)
    expected = torch.from_numpy(np.asarray(recon)).permute(0, 3, 1, 2) * 2 - 1
    case.compare("reconstruction", out.recon, expected, tolerance=1e-4)
    case.compare("decode", ours.decode(out.codes), expected, tolerance=1e-4)


def test_full_size_parameter_count_equals_the_official_model(parity):
    """The released configuration's parameter shapes (jax.eval_shape) against ours on the meta device."""
    _, params = official(128, (1, 1, 2, 2, 4), 2, 256, 1024, 32, shapes_only=True)
    official_count = sum(np.asarray(leaf).size for leaf in jax.tree_util.tree_leaves(params))
    with torch.device("meta"):
        ours = create_tokenizer("maskgit_vqgan")
    parity.size("maskgit_vqgan", sum(p.numel() for p in ours.parameters()), official_count)
    ours.load_state_dict(maskgit_flax_state_dict(params, num_res_blocks=2, num_levels=5), strict=True, assign=True)  # every shape
