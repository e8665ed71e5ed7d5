"""EnCodec against the official code (facebookresearch/encodec, PyPI ``encodec`` 0.1.1), random weights.

Numerics at reduced width (the official ``SEANetEncoder`` / ``SEANetDecoder`` built with 4 base filters,
32-dim latents and one LSTM layer; full strides, 1024 codes per level and the full number of levels),
every weight perturbed and each level's codebook drawn from the mean and per-channel spread of its residual, so codes vary at
every level. Both models' encode, decode and forward are compared at every bandwidth: codes equal,
decode equal within 1e-6 (measured: bit-identical), forward within 1e-5 (measured ~2e-6: our
straight-through ``z + (e - z)`` rounds where the official eval path uses ``e``). The 48 kHz model runs
in normalised segments: 0.05-second ones (the official constructor's ``segment``) at every bandwidth, and
its released 1-second segmentation once. Full size: parameter counts and every converted tensor's shape.
"""

from __future__ import annotations

from importlib.metadata import version

import pytest
import torch

from implementations import create_tokenizer, tokenizer_entry
from implementations.audio.encodec import encodec_state_dict

encodec = pytest.importorskip("encodec")

pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")  # the official code's weight norm

SMALL = dict(n_filters=4, dimension=32, lstm=1)
REFERENCE = dict(reference="encodec", version=version("encodec"), golden=None)
CONFIG = {
    24: dict(channels=1, norm="weight_norm", causal=True, bandwidths=[1.5, 3.0, 6.0, 12.0, 24.0], n_q=32, normalize=False),
    48: dict(channels=2, norm="time_group_norm", causal=False, bandwidths=[3.0, 6.0, 12.0, 24.0], n_q=16, normalize=True),
}


def official_model(khz: int, segment: float | None, x: torch.Tensor) -> encodec.EncodecModel:
    """The official model at reduced width, random weights (seed 0), codebooks fitted to the residuals of ``x``."""
    from encodec.modules import SEANetDecoder, SEANetEncoder
    from encodec.quantization import ResidualVectorQuantizer

    c = CONFIG[khz]
    seanet = dict(channels=c["channels"], dimension=SMALL["dimension"], n_filters=SMALL["n_filters"], lstm=SMALL["lstm"], norm=c["norm"], causal=c["causal"])
    quantizer = ResidualVectorQuantizer(dimension=SMALL["dimension"], n_q=c["n_q"], bins=1024)
    model = encodec.EncodecModel(SEANetEncoder(**seanet), SEANetDecoder(**seanet), quantizer, c["bandwidths"], khz * 1000, c["channels"],
                                 normalize=c["normalize"], segment=segment).eval()  # fmt: skip
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
        scale = x.mean(dim=1, keepdim=True).square().mean(dim=2, keepdim=True).sqrt() if c["normalize"] else 1.0
        residual = model.encoder(x / scale).transpose(1, 2).reshape(-1, SMALL["dimension"])
        for layer in quantizer.vq.layers:
            book = layer._codebook
            book.embed.copy_(residual.mean(dim=0) + torch.randn_like(book.embed) * residual.std(dim=0))
            book.embed_avg.copy_(book.embed)
            book.cluster_size.fill_(1.0)
            book.inited.fill_(1.0)
            residual = residual - book.decode(book.encode(residual))
    return model


def ours_for(official: encodec.EncodecModel, name: str, **kwargs):
    ours = create_tokenizer(name, **SMALL, **kwargs).eval()
    ours.load_state_dict(encodec_state_dict(official.state_dict()), strict=True)
    return ours


def audio(channels: int, samples: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(2, channels, samples, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize(("khz", "samples", "segment"), [(24, 4_800 + 50, None), (48, 5_000, 0.05)])
def test_codes_and_reconstructions_equal_the_official_code_at_every_bandwidth(parity, khz, samples, segment):
    bandwidths = "/".join(f"{b:g}" for b in CONFIG[khz]["bandwidths"])
    case = parity.case(f"{khz}khz", family=f"EnCodec {khz} kHz", tokenizers=[f"encodec_{khz}khz"], **REFERENCE,
                       setup=f"4 filters, 32-dim latents, 1 LSTM layer; {bandwidths} kbps; 2 clips of {samples} samples"
                       + (f", {segment:g} s normalised segments" if segment else ""))  # fmt: skip
    x = audio(CONFIG[khz]["channels"], samples)
    official = official_model(khz, segment, x)
    ours = ours_for(official, f"encodec_{khz}khz", segment=segment)
    for bandwidth in CONFIG[khz]["bandwidths"]:
        official.set_target_bandwidth(bandwidth)
        ours.set_bandwidth(bandwidth)
        with torch.no_grad():
            frames = official.encode(x)
            expected = official.decode(frames)[..., :samples]  # = official(x)
            codes = ours.encode(x)
            decoded, out = ours.decode(codes), ours(x)
        case.compare_codes(codes, torch.cat([frame_codes for frame_codes, _ in frames], dim=-1).transpose(1, 2), codebook_size=1024)
        assert codes.shape[-1] == ours.levels_for(bandwidth) == round(bandwidth / ours.kbps_per_level)
        case.compare("decode", decoded, expected, tolerance=1e-6)
        case.compare("forward", out.recon, expected, tolerance=1e-5)
        assert ours.token_grid(x.shape[1:]) == codes.shape[1:2]
    stream = ours._last_encoded[1]
    with torch.no_grad():
        torch.testing.assert_close(ours.decode(codes.clone(), stream), expected, rtol=0, atol=1e-6)  # other codes: their stream given
    if CONFIG[khz]["normalize"]:
        assert len(frames) == 3 and stream.scales.shape == (2, 3)  # the last segment is the 248-sample tail
        torch.testing.assert_close(stream.scales, torch.cat([scale for _, scale in frames], dim=1), rtol=0, atol=0)


def test_the_released_one_second_segments_of_the_48khz_model(parity):
    case = parity.case("48khz_one_second_segments", family="EnCodec 48 kHz", tokenizers=["encodec_48khz"], **REFERENCE,
                       setup="4 filters, 32-dim latents, 1 LSTM layer; 24 kbps; the released 1 s segments, 2 clips of 1 s")  # fmt: skip
    x = audio(2, 48_000)  # one second: a full segment and the 480 samples after the next segment's start
    official = official_model(48, 1.0, x)
    ours = ours_for(official, "encodec_48khz", bandwidth=24.0)
    official.set_target_bandwidth(24.0)
    with torch.no_grad():
        frames = official.encode(x)
        expected = official.decode(frames)[..., :48_000]
        codes = ours.encode(x)
        decoded = ours.decode(codes)
    assert [tuple(c.shape) for c, _ in frames] == [(2, 16, 150), (2, 16, 2)] and codes.shape == (2, 152, 16)
    case.compare_codes(codes, torch.cat([c for c, _ in frames], dim=-1).transpose(1, 2), codebook_size=1024)
    case.compare("decode", decoded, expected, tolerance=1e-6)
    with pytest.raises(ValueError, match="stream"):
        ours.decode(codes.clone())  # the scales travel with the codes: without them there is no decoding


@pytest.mark.parametrize("bandwidth", [1.5, 3.0, 6.0, 12.0, 24.0])
def test_rates_are_the_bandwidths(bandwidth):
    with torch.device("meta"):
        model = create_tokenizer("encodec_24khz", bandwidth=bandwidth)
        assert model.rate((1, 24_000))["kbps"] == model.bandwidth == bandwidth
        if bandwidth > 1.5:
            assert create_tokenizer("encodec_48khz", bandwidth=bandwidth, segment=None).rate((2, 48_000))["kbps"] == bandwidth
            # the official segmentation codes one second as 150 + 2 frames
            assert create_tokenizer("encodec_48khz", bandwidth=bandwidth).rate((2, 48_000))["kbps"] == pytest.approx(bandwidth * 152 / 150)
    with pytest.raises(ValueError, match="kbps"):
        create_tokenizer("encodec_tiny", bandwidth=5.0)


@pytest.mark.parametrize(("khz", "count"), [(24, 14_851_810), (48, 14_856_294)])
def test_full_size_models_match_the_official_ones(parity, khz, count):
    official = getattr(encodec.EncodecModel, f"encodec_model_{khz}khz")(pretrained=False)
    with torch.device("meta"):
        ours = create_tokenizer(f"encodec_{khz}khz")
    parity.size(f"encodec_{khz}khz", sum(p.numel() for p in ours.parameters()), sum(p.numel() for p in official.parameters()))
    assert sum(p.numel() for p in official.parameters()) == count
    converted, own = encodec_state_dict(official.state_dict()), ours.state_dict()
    assert sorted(converted) == sorted(own)
    assert all(converted[key].shape == own[key].shape for key in own)
    assert ours.quantizer.depth == official.quantizer.n_q and ours.hop_length == official.encoder.hop_length
    entry = tokenizer_entry(f"encodec_{khz}khz")
    assert entry.convert is encodec_state_dict and entry.pretrained[0].sha256 == entry.pretrained[0].filename[-11:-3]


def test_a_wrong_state_dict_fails_naming_the_key():
    official = official_model(24, None, audio(1, 960))
    state = official.state_dict()
    with pytest.raises(KeyError, match=r"encoder\.model\.1\.block\.2\.conv\.conv\.weight_g"):
        encodec_state_dict({**state, "encoder.model.1.block.2.conv.conv.weight_g": torch.zeros(1)})  # no conv at that index
    with pytest.raises(KeyError, match=r"quantizer\.vq\.layers\.0\._codebook\.embed_sum"):
        encodec_state_dict({**state, "quantizer.vq.layers.0._codebook.embed_sum": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"decoder\.conv_out\.conv\.parametrizations\.weight\.original0"):
        encodec_state_dict({key: value for key, value in state.items() if key != "decoder.model.15.conv.conv.weight_v"})
    dropped = {key: value for key, value in state.items() if key != "quantizer.vq.layers.3._codebook.embed"}
    ours = create_tokenizer("encodec_24khz", **SMALL)
    with pytest.raises(RuntimeError, match=r"quantizer\.levels\.3\.codebook"):
        ours.load_state_dict(encodec_state_dict(dropped), strict=True)


def test_an_official_file_loads_through_the_harness(tmp_path):
    from bench.checkpoints import load_weights

    x = audio(1, 960)
    official = official_model(24, None, x)
    path = tmp_path / "encodec_24khz-d7cc33bc.th"
    torch.save(official.state_dict(), path)  # the released files are this: a plain state dict
    ours = create_tokenizer("encodec_24khz", **SMALL).eval()
    load_weights(ours, path, tokenizer_entry("encodec_24khz").convert)
    official.set_target_bandwidth(ours.bandwidth)
    with torch.no_grad():
        assert torch.equal(ours.encode(x), official.encode(x)[0][0].transpose(1, 2))
    assert all(bool(level.initialized) for level in ours.quantizer.levels)
