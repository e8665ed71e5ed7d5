"""The built-in audio suite end to end: espeak-ng speech, a tiny codec trained by its paper's recipe,
the audio metrics, kbps and usage per RVQ level on the page, listening samples and spectrograms;
and a tokenizer without a decoder (vq-wav2vec) scored on its codes."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from bench.leaderboard import write_leaderboard
from bench.run import run_one
from implementations import create_tokenizer

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt-get install -y espeak-ng)")
SHORT = ("suite=builtin_speech", "seed=0", "suite.train.steps=2", "suite.train.batch_size=4", "suite.dataset.max_items=12", "suite.eval.batch_size=6")


@pytest.mark.slow  # two training steps of a GAN-trained codec, then PESQ/STOI on 12 clips
def test_builtin_speech_writes_an_audio_leaderboard(compose_run, tmp_path):
    cfg = compose_run(*SHORT, "tokenizer=soundstream_tiny", "+suite.eval.metrics=[mel_distance,si_sdr,pesq,stoi,usage]")
    record = json.loads(run_one(cfg).read_text())
    for metric in ("mel_distance", "si_sdr", "pesq", "stoi", "usage"):
        assert isinstance(record["metrics"][metric], float), metric
    assert len(record["metrics"]["usage_per_codebook"]) == 8  # 6 kbps = 8 levels of 1024 codes at 75 Hz
    assert record["rate"]["kbps"] == pytest.approx(6.0) and record["data"]["espeak_version"] and record["data"]["resampler"] == "soxr HQ"
    page = write_leaderboard("builtin_speech", cfg.output_dir, cfg.leaderboard_dir, include_deviating=True).read_text()
    for column in ("mel distance ↓", "SI-SDR (dB) ↑", "PESQ ↑", "STOI ↑", "6.000 kbps", "usage per level"):
        assert column in page, column
    folder = tmp_path / "leaderboards" / "builtin_speech"
    assert (folder / "spectrograms.png").exists() and (folder / "rate_distortion.png").exists()
    assert (folder / "audio" / "original-0.flac").exists() and (folder / "audio" / "soundstream_tiny-0.flac").exists()
    assert "[soundstream_tiny](builtin_speech/audio/soundstream_tiny-0.flac)" in page


def test_a_tokenizer_without_decoder_is_scored_on_its_codes(compose_run, tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "vq_wav2vec_tiny.pt"
    torch.save({"model": create_tokenizer("vq_wav2vec_tiny_gumbel").state_dict(), "train": {}}, weights)  # this harness's format
    cfg = compose_run(*SHORT, "suite.train.steps=0", "tokenizer=vq_wav2vec_gumbel", "tokenizer.arch=vq_wav2vec_tiny_gumbel",
                      "tokenizer.pretrained=false", f"tokenizer.checkpoint={weights}", "suite.dataset.sample_rate=16000",
                      "suite.eval.metrics=[mel_distance,pesq,usage,quantization_error]")  # fmt: skip
    record = json.loads(run_one(cfg).read_text())
    assert record["metrics"]["quantization_error"] > 0 and 0 < record["metrics"]["usage"] <= 1
    assert len(record["metrics"]["usage_per_codebook"]) == 2  # 2 groups x 320 codes
    assert "no decoder" in record["unavailable"]["mel_distance"] and "no decoder" in record["unavailable"]["pesq"]
