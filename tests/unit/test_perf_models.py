"""Smoke test of ``python -m bench.perf models``: one row of ours against taming's code at reduced width."""

from __future__ import annotations

import pytest
import torch

from bench.perf import models

pytest.importorskip("taming")
pytest.importorskip("tabulate")

# the f16 layout at width 32 (as tests/parity/test_taming_vqgan.py), 64x64 inputs
REDUCED = {"ch": 32, "z_channels": 32, "embed_dim": 32, "codebook_size": 64, "resolution": 64}


def test_a_row_against_the_official_code():
    (row,) = models.measure([models.Spec("vqgan_taming_f16_1024", (3, 64, 64), REDUCED)], batch=1, repeats=1, device=torch.device("cpu"), precision="fp32")
    assert row["model"] == "vqgan_taming_f16_1024" and row["official"].startswith("taming-transformers")
    assert (row["batch"], row["input"], row["precision"], row["note"]) == (1, "3x64x64", "fp32", "")
    assert row["codes_equal"] == 1.0  # same weights, same input: the official key map loaded strictly
    assert row["ms"] > 0 and row["official_ms"] > 0 and row["ratio"] == pytest.approx(row["official_ms"] / row["ms"], rel=0.01)
    assert row["items_s"] == pytest.approx(1e3 / row["ms"], rel=0.01)
    assert "peak_mb" in row and "official_peak_mb" in row


def test_every_full_size_tokenizer_is_listed_and_inputs_follow_the_options():
    names = models.full_size_models()
    assert set(models.PEERS) | {"open_magvit2_256", "soundstream_24khz", "vq_wav2vec_gumbel"} <= set(names)
    assert not any("tiny" in name for name in names)
    image, audio = models.specs_for(["dalle_dvae", "encodec_48khz"], image_size=128, seconds=0.5)
    assert image.input_shape == (3, 128, 128) and audio.input_shape == (2, 24_000)
