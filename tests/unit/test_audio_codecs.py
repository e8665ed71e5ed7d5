"""The audio codecs: SoundStream (no official code: the paper's rates, causality and quantizer dropout,
the size of our layout; EnCodec's numerics are tests/parity/test_encodec.py) and one training step of
each tiny codec by its paper's recipe."""

from __future__ import annotations

import contextlib

import pytest
import torch

from bench.config import compose
from bench.objective import Objective
from implementations import create_tokenizer


@pytest.mark.parametrize(("bitrate", "levels"), [(3.0, 4), (6.0, 8), (12.0, 16), (18.0, 24)])
def test_one_model_runs_at_every_bitrate(bitrate, levels):
    with torch.device("meta"):
        model = create_tokenizer("soundstream_24khz", bitrate=bitrate)
    rate = model.rate((1, 24_000))
    assert rate["kbps"] == bitrate and rate["tokens_per_second"] == 75 and model.num_codebooks == levels
    assert model.quantizer.depth == 24 and model.hop_length == 320
    assert sum(p.numel() for p in model.parameters()) == 9_838_721  # C = 32, D = 128 (see the module docstring)


def test_bitrates_off_the_level_grid_are_refused():
    with pytest.raises(ValueError, match="multiples of 0.75"):
        create_tokenizer("soundstream_tiny", bitrate=5.0)


def test_encoder_and_decoder_are_causal():
    torch.manual_seed(0)
    model = create_tokenizer("soundstream_tiny").eval()
    x = torch.rand(1, 1, 6_400) * 2 - 1
    later = x.clone()
    later[..., 3_200:] = torch.rand(1, 1, 3_200)  # frames 0..9 end before sample 3,200
    with torch.no_grad():
        z, z_later = model.encoder(x), model.encoder(later)
        torch.testing.assert_close(z[..., :10], z_later[..., :10], rtol=0, atol=0)
        assert not torch.equal(z[..., 10:], z_later[..., 10:])
        y, y_later = model.decoder(z), model.decoder(torch.cat([z[..., :10], torch.randn_like(z[..., 10:])], dim=-1))
    torch.testing.assert_close(y[..., :3_200], y_later[..., :3_200], rtol=0, atol=0)


def test_quantizer_dropout_in_training_only():
    torch.manual_seed(0)
    model = create_tokenizer("soundstream_tiny", bitrate=3.0)
    x = torch.rand(2, 1, 3_200) * 2 - 1
    used = {int(model(x).metrics["num_levels"]) for _ in range(12)}
    assert len(used) > 3 and max(used) <= 24  # a random number of levels per batch
    out = model(x)
    n = int(out.metrics["num_levels"])
    assert out.codes.shape == (2, 10, 4) and (out.codes[..., :n] >= 0).all() and (out.codes[..., n:] == -1).all()
    model.eval()
    assert {int(model(x).metrics["num_levels"]) for _ in range(3)} == {4} and (model.encode(x) >= 0).all()


@pytest.mark.parametrize("name", ["encodec_tiny", "soundstream_tiny"])
def test_one_step_of_the_recipe_reaches_every_parameter(name):
    config = compose([f"tokenizer={name}"]).tokenizer
    torch.manual_seed(0)
    model = create_tokenizer(config.arch, **config.kwargs)
    objective = Objective(config.recipe, model).train()
    x = torch.rand(2, 1, 8_000) * 2 - 1
    out = model(x)
    logs = objective.generator_backward(x, out, step=0, last_layer=None, scale=1.0, backward=lambda loss, **kw: loss.backward(**kw))
    assert {"mel", "adversarial", "feature_matching"} <= set(logs)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    d_logs = objective.discriminator_backward(x, out.recon.detach(), 1.0, backward=lambda loss: loss.backward(), autocast=contextlib.nullcontext)
    assert torch.isfinite(d_logs["d_loss"])
