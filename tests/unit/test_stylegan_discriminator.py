"""The StyleGAN discriminator of MaskGIT (2-D) and MAGVIT-v2 (3-D).

2-D: against MaskGIT's official JAX code (``maskgit/nets/discriminator.py``, from the PyPI package
``maskgit``, run with jax/flax on CPU): its random weights copied in through an explicit key map,
logits compared; the full 256x256 configuration compared key by key and shape by shape (abstractly,
``jax.eval_shape``); its ``BlurPool2D`` compared with ours on odd and even sizes. The installed file
ends in a truncated line (``def squared_euclidean_distance`` without arguments, also in the GitHub
copy), so the module is compiled without that line.

3-D: the official MAGVIT-v2 discriminator lives in praxis (``praxis/layers/video/vqvae.py``,
``Discriminator``), whose PyPI release (1.4.0) predates it and does not install beside this
environment's jax: it cannot be run. Checked instead: the parameter count derived from that code, the
output shapes (including praxis' own residual-block shape test), the blur against the XLA convolution
praxis' ``BlurPool3D`` calls, gradients, and per-item independence.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import types

import numpy as np
import pytest
import torch

from implementations import create_discriminator
from implementations.modules.discriminators.stylegan import (
    BlurPool,
    ResidualBlock,
    StyleGANDiscriminator,
    binomial_filter,
)


def _parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------- MaskGIT's code


@pytest.fixture(scope="module")
def maskgit():
    """MaskGIT's ``maskgit.nets.discriminator`` module, compiled without its truncated last line."""
    pytest.importorskip("jax")
    pytest.importorskip("flax")
    pytest.importorskip("ml_collections")
    spec = importlib.util.find_spec("maskgit.nets.discriminator")
    if spec is None:
        pytest.skip("the maskgit package is not installed")
    with open(spec.origin) as file:
        source = file.read()
    stub = "\n\n\n  def squared_euclidean_distance\n"
    assert source.endswith(stub)  # the only line dropped
    module = types.ModuleType("maskgit_official_discriminator")
    sys.modules[module.__name__] = module  # Flax's dataclasses look their module up there
    try:
        exec(compile(source[: -len(stub)] + "\n", spec.origin, "exec"), module.__dict__)  # noqa: S102
        yield module
    finally:
        del sys.modules[module.__name__]


def _maskgit_model(maskgit, image_size: int):
    import ml_collections

    config = ml_collections.ConfigDict({"image_size": image_size, "discriminator": {"channel_multiplier": 1, "blur_resample": True}})
    return maskgit.Discriminator(config=config, train=False)


def _key_map(flax_params: dict, num_blocks: int) -> dict[str, tuple[str, ...]]:
    """Our state-dict key -> the path of the same tensor in MaskGIT's Flax parameters. In a Flax
    ``ResBlock`` ``Conv_0`` is the first 3x3 convolution, ``Conv_1`` the 1x1 residual one (built
    after the blur), ``Conv_2`` the second 3x3 convolution."""
    mapping = {
        "conv_first.weight": ("Conv_0", "kernel"),
        "conv_first.bias": ("Conv_0", "bias"),
        "conv_last.weight": ("Conv_1", "kernel"),
        "conv_last.bias": ("Conv_1", "bias"),
        "dense.weight": ("Dense_0", "kernel"),
        "dense.bias": ("Dense_0", "bias"),
        "logit.weight": ("Dense_1", "kernel"),
        "logit.bias": ("Dense_1", "bias"),
    }
    for i in range(num_blocks):
        mapping |= {
            f"blocks.{i}.conv_first.weight": (f"ResBlock_{i}", "Conv_0", "kernel"),
            f"blocks.{i}.conv_first.bias": (f"ResBlock_{i}", "Conv_0", "bias"),
            f"blocks.{i}.conv_residual.weight": (f"ResBlock_{i}", "Conv_1", "kernel"),
            f"blocks.{i}.conv_last.weight": (f"ResBlock_{i}", "Conv_2", "kernel"),
            f"blocks.{i}.conv_last.bias": (f"ResBlock_{i}", "Conv_2", "bias"),
        }
    flax_paths = set()

    def walk(tree, prefix=()):
        for name, value in tree.items():
            if isinstance(value, dict):
                walk(value, prefix + (name,))
            else:
                flax_paths.add(prefix + (name,))

    walk(flax_params)
    assert set(mapping.values()) == flax_paths  # every official tensor is used, once
    return mapping


def _to_torch_layout(path: tuple[str, ...], array) -> torch.Tensor:
    """Flax conv kernels ``(kh, kw, in, out)`` -> ``(out, in, kh, kw)``; dense kernels ``(in, out)`` -> ``(out, in)``."""
    tensor = torch.from_numpy(np.array(array, dtype=np.float32))
    if path[-1] == "kernel":
        return tensor.permute(3, 2, 0, 1) if tensor.ndim == 4 else tensor.T
    return tensor


def _get(tree: dict, path: tuple[str, ...]):
    for name in path:
        tree = tree[name]
    return tree


def _ours_like_maskgit(image_size: int, device: str = "cpu") -> StyleGANDiscriminator:
    """MaskGIT's width table ``{4..32: 512, 64: 256, 128: 128, 256: 64}`` (channel_multiplier 1) as
    ``filters`` + ``channel_multipliers``: the stem has the input size's width, block ``i`` the width
    of half that size."""
    table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64}
    sizes = [image_size >> i for i in range(int(math.log2(image_size)) - 1)]  # image_size ... 4
    filters = table[image_size]
    multipliers = [table[size] // filters for size in sizes[1:]]
    with torch.device(device):
        return StyleGANDiscriminator(dims=2, filters=filters, channel_multipliers=multipliers, blur_size=4, resolution=image_size)


def test_defaults_are_maskgits_256_configuration_key_by_key(maskgit):
    """MaskGIT's ``vqgan_config`` (256x256, channel_multiplier 1, blur): every parameter of the official
    network, shapes taken abstractly with ``jax.eval_shape`` (nothing computed), equals ours under the
    key map; both count 23,998,017."""
    import jax

    image = jax.ShapeDtypeStruct((1, 256, 256, 3), np.float32)
    official = jax.eval_shape(_maskgit_model(maskgit, 256).init, jax.random.PRNGKey(0), image)["params"]
    with torch.device("meta"):
        ours = StyleGANDiscriminator(dims=2)
    assert ours.modality == "image"
    assert _ours_like_maskgit(256, "meta").state_dict().keys() == ours.state_dict().keys()
    state = ours.state_dict()
    mapping = _key_map(official, num_blocks=6)
    assert mapping.keys() == state.keys()
    for key, path in mapping.items():
        shape = _get(official, path).shape
        expected = (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else tuple(reversed(shape))
        assert tuple(state[key].shape) == expected, key
    official_count = sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(official))
    assert _parameters(ours) == official_count == 23_998_017


def test_logits_equal_maskgits_with_its_random_weights(maskgit):
    """64x64 (four blocks, a 256 -> 512 width change). The official network's parameter shapes come
    from ``jax.eval_shape`` (its ``init`` takes seconds on CPU); its random weights are drawn here:
    kernels Xavier-uniform like its initialiser, biases N(0, 0.05^2) rather than its zeros, so that
    every bias is tested. Copied into ours, the logits agree within 1e-5 (float32 on both sides)."""
    import jax

    image_size = 64
    official = _maskgit_model(maskgit, image_size)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(2, image_size, image_size, 3)).astype(np.float32)
    shapes = jax.eval_shape(official.init, jax.random.PRNGKey(0), x)["params"]

    def draw(leaf):
        if len(leaf.shape) == 1:
            return (0.05 * rng.standard_normal(leaf.shape)).astype(np.float32)
        receptive = math.prod(leaf.shape[:-2])
        bound = math.sqrt(6 / (receptive * (leaf.shape[-2] + leaf.shape[-1])))
        return rng.uniform(-bound, bound, leaf.shape).astype(np.float32)

    params = jax.tree_util.tree_map(draw, shapes)
    expected = torch.from_numpy(np.array(official.apply({"params": params}, x)))

    ours = _ours_like_maskgit(image_size)
    mapping = _key_map(params, num_blocks=len(ours.blocks))
    state = {key: _to_torch_layout(path, _get(params, path)) for key, path in mapping.items()}
    for key, value in ours.state_dict().items():
        assert state[key].shape == value.shape, key
    ours.load_state_dict(state, strict=True)
    with torch.no_grad():
        logits = ours(torch.from_numpy(x).permute(0, 3, 1, 2)).logits[0]
    assert logits.shape == expected.shape == (2, 1)
    assert expected.abs().min() > 1e-3  # a real signal, not two zeros
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("filter_size", [3, 4])
@pytest.mark.parametrize("size", [(8, 8), (7, 10), (5, 1)])
def test_blur_pool_2d_equals_maskgits(maskgit, filter_size, size):
    import jax

    x = np.random.default_rng(1).standard_normal((2, *size, 5)).astype(np.float32)
    official = maskgit.BlurPool2D(filter_size=filter_size)
    expected = torch.from_numpy(np.array(official.apply({}, x))).permute(0, 3, 1, 2)
    ours = BlurPool(dims=2, channels=5, size=filter_size)(torch.from_numpy(x).permute(0, 3, 1, 2))
    assert ours.shape == expected.shape == (2, 5, -(-size[0] // 2), -(-size[1] // 2))
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    assert jax is not None


@pytest.mark.parametrize("size", [(5, 8, 8), (17, 7, 10), (1, 4, 4), (2, 3, 1)])
def test_blur_pool_3d_equals_the_xla_convolution_praxis_calls(size):
    """praxis' ``BlurPool3D`` (``enc_dec_3dcnn.py``) is ``jax.lax.conv_general_dilated`` of the
    normalised ``[1, 2, 1]`` outer product, strides (2, 2, 2), padding "SAME", one group per channel."""
    jax = pytest.importorskip("jax")
    channels = 4
    x = np.random.default_rng(2).standard_normal((2, *size, channels)).astype(np.float32)
    row = np.array([1.0, 2.0, 1.0], dtype=np.float32)
    kernel = np.einsum("i,j,k->ijk", row, row, row)
    kernel = np.tile((kernel / kernel.sum())[..., None, None], (1, 1, 1, 1, channels))
    numbers = jax.lax.ConvDimensionNumbers((0, 4, 1, 2, 3), (4, 3, 0, 1, 2), (0, 4, 1, 2, 3))
    expected = jax.lax.conv_general_dilated(x, kernel, (2, 2, 2), "SAME", feature_group_count=channels, dimension_numbers=numbers)
    expected = torch.from_numpy(np.array(expected)).permute(0, 4, 1, 2, 3)
    ours = BlurPool(dims=3, channels=channels, size=3)(torch.from_numpy(x).permute(0, 4, 1, 2, 3))
    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- MAGVIT-v2 (praxis)


def test_magvit2_defaults_count_the_praxis_configuration():
    """Parameters of praxis' MAGVIT-v2 ``Discriminator`` (``vqvae.py``; filters 128, channel_multipliers
    (2, 4, 4, 4), in 3; convolutions 3x3x3 with a bias, ``DiscriminatorResBlock``'s residual 1x1x1
    without; ``proj``: an ``MLPBlock`` of two ``FeedForward`` layers with biases), derived by hand:

    * ``conv_first`` 27*3*128 + 128 = 10,496;
    * a block ``c -> o``: ``conv_first`` 27 c^2 + c, ``conv_residual`` c o, ``conv_last`` 27 c o + o:
      128 -> 256: 442,496 + 32,768 + 884,992 = 1,360,256; 256 -> 512: 1,769,728 + 131,072 + 3,539,456
      = 5,440,256; 512 -> 512 (twice): 7,078,400 + 262,144 + 7,078,400 = 14,418,944;
    * ``conv_last`` 27*512^2 + 512 = 7,078,400; convolutions in all 42,727,296;
    * ``proj``: 512 T' H' W' * 512 + 512, then 512 + 1, where each block maps n -> ceil(n / 2):
      17x128x128 -> 2x8x8 (T: 17, 9, 5, 3, 2): 65,536 * 512 + 512 + 513 = 33,555,457, total 76,282,753;
      praxis' own defaults (num_frames 1, 256x256) -> 1x16x16: 131,072 * 512 + 1,025, total 109,837,185.
    """
    with torch.device("meta"):
        video = StyleGANDiscriminator(dims=3)
        single_frame = StyleGANDiscriminator(dims=3, frames=1, resolution=256)
    convolutions = 10_496 + 1_360_256 + 5_440_256 + 2 * 14_418_944 + 7_078_400
    assert convolutions == 42_727_296
    assert _parameters(video) == convolutions + 65_536 * 512 + 512 + 513 == 76_282_753
    assert _parameters(single_frame) == convolutions + 131_072 * 512 + 512 + 513 == 109_837_185
    assert video.input_size == (17, 128, 128) and video.dense.in_features == 512 * 2 * 8 * 8
    assert [block.conv_last.out_channels for block in video.blocks] == [256, 512, 512, 512]
    assert all(block.conv_residual.bias is None and block.blur.size == 3 for block in video.blocks)


def test_modality_per_instance_and_registry():
    video = create_discriminator("stylegan", dims=3, filters=2, channel_multipliers=[1], resolution=8, frames=3)
    image = create_discriminator("stylegan", dims=2, filters=2, channel_multipliers=[1], resolution=8)
    assert isinstance(video, StyleGANDiscriminator) and video.modality == "video" and image.modality == "image"
    assert StyleGANDiscriminator.modality == "image"
    with pytest.raises(ValueError, match="dims must be 2"):
        StyleGANDiscriminator(dims=1)
    with pytest.raises(ValueError, match="expected inputs of size"):
        image(torch.zeros(1, 3, 16, 16))


# ----------------------------------------------------------------------------- both


def test_blur_filter_is_the_normalised_binomial_outer_product():
    row = torch.tensor([1.0, 3.0, 3.0, 1.0])
    torch.testing.assert_close(binomial_filter(4, 2), torch.outer(row, row) / 64, rtol=0, atol=0)
    small = torch.tensor([1.0, 2.0, 1.0])
    torch.testing.assert_close(binomial_filter(3, 3), torch.einsum("i,j,k->ijk", small, small, small) / 64, rtol=0, atol=0)
    pool = BlurPool(dims=2, channels=3, size=4)
    assert pool.kernel.shape == (3, 1, 4, 4) and "kernel" not in pool.state_dict()
    assert all(torch.equal(pool.kernel[c, 0], binomial_filter(4, 2)) for c in range(3))


def test_blur_pool_same_padding_by_hand():
    """On ones, each output is the kernel's weight over the window's real (unpadded) cells, per axis
    (the kernel is an outer product). XLA's "SAME" pads ``max((ceil(n/2) - 1) * 2 + k - n, 0)``
    zeros, the smaller half first: k=3, n=1 -> (1, 1): [2]/4; n=4 -> (0, 1): [4, 3]/4;
    n=5 -> (1, 1): [3, 4, 3]/4; k=4, n=5 -> (1, 2): [7, 8, 4]/8."""
    out = BlurPool(dims=3, channels=1, size=3)(torch.ones(1, 1, 1, 4, 5))[0, 0]
    t, h, w = torch.tensor([2.0]) / 4, torch.tensor([4.0, 3.0]) / 4, torch.tensor([3.0, 4.0, 3.0]) / 4
    torch.testing.assert_close(out, torch.einsum("i,j,k->ijk", t, h, w), rtol=0, atol=1e-7)
    out = BlurPool(dims=2, channels=1, size=4)(torch.ones(1, 1, 5, 5))[0, 0]
    row = torch.tensor([7.0, 8.0, 4.0]) / 8
    torch.testing.assert_close(out, torch.outer(row, row), rtol=0, atol=1e-7)


@pytest.mark.parametrize("value", [1.0, -1.0])
def test_residual_block_closed_form(value):
    """Identity convolutions (centre tap 1, biases 0) on a constant ``c``, away from the borders:
    ``x = lrelu(blur(lrelu(c)))``, ``residual = blur(c) = c``, output ``(x + c) / sqrt(2)``:
    ``sqrt(2) c`` for ``c > 0``, ``(0.2^2 + 1) c / sqrt(2)`` for ``c < 0``."""
    block = ResidualBlock(dims=2, in_channels=1, out_channels=1, blur_size=4)
    with torch.no_grad():
        for conv in (block.conv_first, block.conv_last):
            conv.weight.zero_()[0, 0, 1, 1] = 1
            conv.bias.zero_()
        block.conv_residual.weight.fill_(1)
        out = block(torch.full((1, 1, 8, 8), value))[0, 0, 1:3, 1:3]  # the outputs whose windows see no padding
    expected = (1 + (1 if value > 0 else 0.2**2)) * value / math.sqrt(2)
    torch.testing.assert_close(out, torch.full((2, 2), expected), rtol=0, atol=1e-6)


def test_output_and_feature_shapes():
    for size in (64, 256):
        model = StyleGANDiscriminator(dims=2, filters=2, channel_multipliers=(1, 2, 2, 2, 2, 2), resolution=size)
        out = model(torch.rand(2, 3, size, size) * 2 - 1)
        assert out.logits[0].shape == (2, 1) and len(out.logits) == len(out.features) == 1
        sides = [size >> i for i in range(7)] + [size >> 6]
        assert [tuple(f.shape) for f in out.features[0]] == [(2, w, s, s) for w, s in zip([2, 2, 4, 4, 4, 4, 4, 4], sides)]
    model = StyleGANDiscriminator(dims=3, filters=2, channel_multipliers=(1, 2, 2, 2), resolution=64, frames=17)
    out = model(torch.rand(2, 3, 17, 64, 64) * 2 - 1)
    assert out.logits[0].shape == (2, 1)
    grids = [(17, 64), (9, 32), (5, 16), (3, 8), (2, 4), (2, 4)]
    assert [tuple(f.shape) for f in out.features[0]] == [(2, w, t, s, s) for w, (t, s) in zip([2, 2, 4, 4, 4, 4], grids)]
    # praxis' test_discriminator_res_block: (1, 17, 256, 257, 32) -> (1, 9, 128, 129, 32), channel-last there
    block = ResidualBlock(dims=3, in_channels=1, out_channels=1, blur_size=3)
    with torch.no_grad():
        assert block(torch.zeros(1, 1, 17, 256, 257)).shape == (1, 1, 9, 128, 129)


@pytest.mark.parametrize("dims", [2, 3])
def test_gradients_reach_the_input_and_every_parameter(dims):
    torch.manual_seed(0)
    shape = (2, 3, 16, 16) if dims == 2 else (2, 3, 5, 16, 16)
    model = StyleGANDiscriminator(dims=dims, filters=4, channel_multipliers=(1, 2), resolution=16, frames=5 if dims == 3 else None)
    x = torch.randn(shape, requires_grad=True)
    model(x).logits[0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("dims", [2, 3])
def test_each_item_is_scored_independently(dims):
    torch.manual_seed(0)
    shape = (2, 3, 16, 16) if dims == 2 else (2, 3, 5, 16, 16)
    model = StyleGANDiscriminator(dims=dims, filters=4, channel_multipliers=(1, 2), resolution=16, frames=5 if dims == 3 else None)
    x = torch.randn(shape)
    with torch.no_grad():
        together = model(x)
        alone = [model(x[i : i + 1]) for i in range(2)]
    torch.testing.assert_close(together.logits[0], torch.cat([a.logits[0] for a in alone]), rtol=1e-5, atol=1e-5)
    for level, feature in enumerate(together.features[0]):
        torch.testing.assert_close(feature, torch.cat([a.features[0][level] for a in alone]), rtol=1e-5, atol=1e-5)
