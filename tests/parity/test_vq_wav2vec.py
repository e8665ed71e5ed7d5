"""vq-wav2vec against golden outputs of fairseq's own ``Wav2VecModel``, at reduced width.

fairseq does not install on this torch from PyPI without building its C++ extensions, so the golden
file ``golden/vq_wav2vec_tiny.safetensors`` was made once from the fairseq-fixed 0.12.3.1 sdist
(fairseq 0.12 with Python 3.11 fixes; its ``fairseq/models/wav2vec/wav2vec.py`` and quantizers are
those of facebookresearch/fairseq at 3d262bb) imported from source, torch 2.14.1, CPU::

    FEAT = "[(32, 10, 5), (32, 8, 4), (32, 4, 2), (32, 4, 2), (32, 4, 2), (32, 1, 1), (32, 1, 1), (32, 1, 1)]"
    AGG = "[(32, 2, 1), (32, 3, 1), (48, 4, 1)]"          # the last block changes width: residual_proj
    VARIANTS = {  # each with skip_connections_agg=True, residual_scale=0.5, vq_vars=16, vq_groups=2, vq_depth=2
        "gumbel": dict(vq_type="gumbel", activation="gelu", log_compression=False, skip_connections_feat=False, combine_groups=False),
        "gumbel_combined": dict(vq_type="gumbel", activation="relu", log_compression=False, skip_connections_feat=False, combine_groups=True),
        "kmeans": dict(vq_type="kmeans", activation="gelu", log_compression=False, skip_connections_feat=False, combine_groups=False),
        "kmeans_combined": dict(vq_type="kmeans", activation="gelu", log_compression=True, skip_connections_feat=True, combine_groups=True),
    }
    for name, options in VARIANTS.items():
        torch.manual_seed(0)
        model = Wav2VecModel(Wav2VecConfig(conv_feature_layers=FEAT, conv_aggregator_layers=AGG, skip_connections_agg=True,
            residual_scale=0.5, vq_vars=16, vq_groups=2, vq_depth=2, vq_temp=(2.0, 0.5, 0.999995), vq_gamma=0.25,
            prediction_steps=3, num_negatives=2, offset="auto", infonce=False, **options))
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)   # non-trivial norms and biases
        t = torch.arange(4000) / 16000
        x = torch.stack([0.5 * torch.sin(2 * torch.pi * 220 * t), 0.3 * torch.sin(2 * torch.pi * 1300 * t)]) \
            + 0.1 * torch.randn(2, 4000, generator=torch.Generator().manual_seed(1))
        model.eval()
        with torch.no_grad():
            z = model.feature_extractor(x)
            res = model.vector_quantizer(z, produce_targets=True)
            context = model.feature_aggregator(res["x"])
            model.train(); torch.manual_seed(3)
            train = model.vector_quantizer(z, produce_targets=True)
        # saved under "<name>.": model.<key> (its state dict), input, features, quantized, codes (targets),
        # context, train_quantized, train_codes, and kmeans_loss for the k-means variants
    # metadata "full_size_shapes": {"gumbel" | "kmeans": {key: shape}} of the full-size models (README flags,
    # 512 channels, 12 aggregator layers, 2 x 320 codes, 12 prediction steps), built on the meta device

Full-size parameter counts from the same code (README flags, 12 prediction steps): 34,145,408 (Gumbel)
and 33,096,192 (k-means), of which the contrastive head ``wav2vec_predictions`` has 3,146,240; ours,
without it: 30,999,168 and 29,949,952.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from implementations import create_tokenizer
from implementations.audio.vq_wav2vec import TRAINING_ONLY, build_vq_wav2vec, vq_wav2vec_state_dict

GOLDEN = Path(__file__).parent / "golden" / "vq_wav2vec_tiny.safetensors"
OPTIONS = {
    "gumbel": dict(quantizer="gumbel", activation="gelu", log_compression=False, skip_connections_feat=False),
    "gumbel_combined": dict(quantizer="gumbel", activation="relu", log_compression=False, skip_connections_feat=False),
    "kmeans": dict(quantizer="kmeans", activation="gelu", log_compression=False, skip_connections_feat=False),
    "kmeans_combined": dict(quantizer="kmeans", activation="gelu", log_compression=True, skip_connections_feat=True),
}
TINY = dict(
    feature_layers=[(32, 10, 5), (32, 8, 4), (32, 4, 2), (32, 4, 2), (32, 4, 2), (32, 1, 1), (32, 1, 1), (32, 1, 1)],
    aggregator_layers=[(32, 2, 1), (32, 3, 1), (48, 4, 1)],
    codebook_size=16,
)


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    return load_file(GOLDEN)


def _load(golden, name):
    state = {key.removeprefix(f"{name}.model."): value for key, value in golden.items() if key.startswith(f"{name}.model.")}
    assert set(TRAINING_ONLY) <= set(state)  # the contrastive head the key map drops by name
    model = build_vq_wav2vec(**OPTIONS[name], **TINY)
    model.load_state_dict(vq_wav2vec_state_dict(state), strict=True)
    return model, golden[f"{name}.input"].unsqueeze(1)


@pytest.mark.parametrize("name", list(OPTIONS))
def test_codes_features_and_context_equal_fairseq(golden, name):
    model, x = _load(golden, name)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.encoder(x[:, 0]), golden[f"{name}.features"], rtol=1e-5, atol=1e-5)
        out = model(x)
        codes = golden[f"{name}.codes"]
        assert torch.equal(out.codes, codes) and codes.unique().numel() > 4
        assert torch.equal(model.encode(x), codes)
        torch.testing.assert_close(out.metrics["quantization_error"], (model.quantize(x).quantized - model.features(x)).square().mean())
        torch.testing.assert_close(model.quantize(x).quantized.transpose(1, 2), golden[f"{name}.quantized"], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(model.context(x).transpose(1, 2), golden[f"{name}.context"], rtol=1e-5, atol=1e-5)
    if name.startswith("kmeans"):
        torch.testing.assert_close(out.loss, golden[f"{name}.kmeans_loss"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["gumbel", "gumbel_combined"])
def test_gumbel_training_sample_equals_fairseq(golden, name):
    """Same seed, same draws: our hard Gumbel sample at temperature 2 (update 0) is fairseq's."""
    model, x = _load(golden, name)
    model.train()
    torch.manual_seed(3)
    q = model.quantize(x)
    assert torch.equal(q.codes, golden[f"{name}.train_codes"]) and not torch.equal(q.codes, golden[f"{name}.codes"])
    torch.testing.assert_close(q.quantized.transpose(1, 2), golden[f"{name}.train_quantized"], rtol=1e-5, atol=1e-5)
    assert float(q.metrics["temperature"]) == 2.0 and int(model.num_updates) == 1


def test_temperature_anneals_per_training_forward():
    model = create_tokenizer("vq_wav2vec_tiny_gumbel").train()
    model.num_updates.fill_(100_000)
    out = model(torch.zeros(1, 1, 1600))
    assert float(out.metrics["temperature"]) == pytest.approx(2.0 * 0.999995**100_000)
    model.eval()
    model(torch.zeros(1, 1, 1600))
    assert int(model.num_updates) == 100_001  # eval passes do not count


@pytest.mark.parametrize(("name", "count"), [("vq_wav2vec_gumbel", 30_999_168), ("vq_wav2vec_kmeans", 29_949_952)])
def test_parameter_counts_equal_fairseq_without_the_contrastive_head(name, count):
    with torch.device("meta"):
        assert sum(p.numel() for p in create_tokenizer(name).parameters()) == count


@pytest.mark.parametrize("variant", ["gumbel", "kmeans"])
def test_full_size_fairseq_keys_all_find_their_place(variant):
    """Every key of fairseq's full-size model, at its shape, lands on a key of ours of the same shape."""
    with safe_open(GOLDEN, "pt") as handle:
        shapes = json.loads(handle.metadata()["full_size_shapes"])[variant]
    converted = vq_wav2vec_state_dict({key: torch.empty(shape, device="meta") for key, shape in shapes.items()})
    with torch.device("meta"):
        ours = create_tokenizer(f"vq_wav2vec_{variant}").state_dict()
    assert {key: tuple(value.shape) for key, value in converted.items()} == {key: tuple(value.shape) for key, value in ours.items()}


def test_unplaced_keys_are_named():
    with pytest.raises(KeyError, match="extra.weight"):
        vq_wav2vec_state_dict({"feature_extractor.conv_layers.0.0.weight": torch.zeros(1), "extra.weight": torch.zeros(1)})


def test_no_decoder_is_a_clear_error():
    model = create_tokenizer("vq_wav2vec_tiny_kmeans").eval()
    assert model.reconstructs is False and model(torch.zeros(1, 1, 1600)).recon is None
    with pytest.raises(NotImplementedError, match="no decoder"):
        model.decode(model.encode(torch.zeros(1, 1, 1600)))
    with pytest.raises(ValueError, match=r"mono waveforms \(B, 1, samples\)"):
        model(torch.zeros(1, 2, 1600))
