"""vq-wav2vec against golden outputs of fairseq's own ``Wav2VecModel``, at reduced width, four option
sets (Gumbel and k-means, groups separate or combined): features, codes, quantized vectors and context
in evaluation, and a seeded Gumbel training sample.

fairseq does not install on this torch from PyPI without building its C++ extensions, so the golden
file ``golden/vq_wav2vec_tiny.safetensors`` was made from the fairseq-fixed 0.12.3.1 sdist (fairseq
0.12 with Python 3.11 fixes; its wav2vec model and quantizers are facebookresearch/fairseq's at 3d262bb)
imported from source, torch 2.14.1, CPU, by ``golden/make_vq_wav2vec_tiny.py`` (the command is in its
docstring). Its metadata holds the key names and shapes of the full-size models (the README's flags but
``--combine-groups``: 2 x 320 codes, each group its own codebook, as the registered configurations are;
a combined codebook is repeated by the key map, tested at reduced width).

Full-size parameter counts from the same code: 34,145,408 (Gumbel) and 33,096,192 (k-means), of which
the contrastive head ``wav2vec_predictions`` has 3,146,240; ours, without it: 30,999,168 and 29,949,952.
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
REFERENCE = dict(reference="fairseq-fixed", version="0.12.3.1", golden=f"tests/parity/golden/{GOLDEN.name}")
TINY = dict(
    feature_layers=[(32, 10, 5), (32, 8, 4), (32, 4, 2), (32, 4, 2), (32, 4, 2), (32, 1, 1), (32, 1, 1), (32, 1, 1)],
    aggregator_layers=[(32, 2, 1), (32, 3, 1), (48, 4, 1)],
    codebook_size=16,
)


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    return load_file(GOLDEN)


def _case(parity, name: str, key: str, what: str):
    quantizer, combined = name.split("_")[0], "combined groups" if name.endswith("combined") else "separate groups"
    return parity.case(key, family=f"vq-wav2vec ({quantizer}, {combined})", tokenizers=[f"vq_wav2vec_{quantizer}"],
                       setup=f"width 32, 16 codes x 2 groups, 2 clips of 8000 samples; {what}", **REFERENCE)  # fmt: skip


def _load(golden, name):
    state = {key.removeprefix(f"{name}.model."): value for key, value in golden.items() if key.startswith(f"{name}.model.")}
    assert set(TRAINING_ONLY) <= set(state)  # the contrastive head the key map drops by name
    model = build_vq_wav2vec(**OPTIONS[name], **TINY)
    model.load_state_dict(vq_wav2vec_state_dict(state), strict=True)
    return model, golden[f"{name}.input"].unsqueeze(1)


@pytest.mark.parametrize("name", list(OPTIONS))
def test_codes_features_and_context_equal_fairseq(parity, golden, name):
    case = _case(parity, name, name, "eval, no decoder")
    model, x = _load(golden, name)
    model.eval()
    with torch.no_grad():
        case.compare("features", model.encoder(x[:, 0]), golden[f"{name}.features"], tolerance=1e-5)
        out = model(x)
        codes = golden[f"{name}.codes"]
        case.compare_codes(out.codes, codes, codebook_size=16, min_distinct=8)  # half the codebook: 96 frames, 16 codes
        assert torch.equal(model.encode(x), codes)
        torch.testing.assert_close(out.metrics["quantization_error"], (model.quantize(x).quantized - model.features(x)).square().mean())
        case.compare("quantized", model.quantize(x).quantized.transpose(1, 2), golden[f"{name}.quantized"], tolerance=1e-5)
        case.compare("context", model.context(x).transpose(1, 2), golden[f"{name}.context"], tolerance=1e-5)
    if name.startswith("kmeans"):
        torch.testing.assert_close(out.loss, golden[f"{name}.kmeans_loss"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["gumbel", "gumbel_combined"])
def test_gumbel_training_sample_equals_fairseq(parity, golden, name):
    """Same seed, same draws: our hard Gumbel sample at temperature 2 (update 0) is fairseq's."""
    case = _case(parity, name, f"{name}_training_sample", "a seeded training sample")
    model, x = _load(golden, name)
    model.train()
    torch.manual_seed(3)
    q = model.quantize(x)
    case.compare_codes(q.codes, golden[f"{name}.train_codes"], codebook_size=16, min_distinct=8)
    assert not torch.equal(q.codes, golden[f"{name}.codes"])
    case.compare("quantized", q.quantized.transpose(1, 2), golden[f"{name}.train_quantized"], tolerance=1e-5)
    assert float(q.metrics["temperature"]) == 2.0 and int(model.num_updates) == 1


def test_temperature_anneals_per_training_forward():
    model = create_tokenizer("vq_wav2vec_tiny_gumbel").train()
    model.num_updates.fill_(100_000)
    out = model(torch.zeros(1, 1, 1600))
    assert float(out.metrics["temperature"]) == pytest.approx(2.0 * 0.999995**100_000)
    model.eval()
    model(torch.zeros(1, 1, 1600))
    assert int(model.num_updates) == 100_001  # eval passes do not count


@pytest.mark.parametrize(("variant", "count"), [("gumbel", 30_999_168), ("kmeans", 29_949_952)])
def test_full_size_fairseq_keys_all_find_their_place(parity, variant, count):
    """Every key of fairseq's full-size model, at its shape, lands on a key of ours of the same shape;
    the counts differ by fairseq's contrastive head."""
    with safe_open(GOLDEN, "pt") as handle:
        shapes = json.loads(handle.metadata()["full_size_shapes"])[variant]
    official = {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}
    converted = vq_wav2vec_state_dict(official)
    with torch.device("meta"):
        model = create_tokenizer(f"vq_wav2vec_{variant}")
    assert {key: tuple(value.shape) for key, value in converted.items()} == {key: tuple(value.shape) for key, value in model.state_dict().items()}
    parity.size(f"vq_wav2vec_{variant}", sum(p.numel() for p in model.parameters()), sum(value.numel() for value in official.values()),
                excluded=sum(official[key].numel() for key in TRAINING_ONLY), note="the contrastive head, training only")  # fmt: skip
    assert sum(p.numel() for p in model.parameters()) == count


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
