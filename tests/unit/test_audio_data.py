"""Audio datasets (bench/data/audio.py) on real files the tests write: espeak-ng speech (skipped when
espeak-ng is missing) and tones written by soundfile; resampling checked against soxr called directly."""

from __future__ import annotations

import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
import soxr
import torch

from bench.data import audio, build_dataset
from bench.data.items import Noted, Skipped, collate
from bench.errors import BenchError

NO_ESPEAK = "espeak-ng is not installed (Debian: apt-get install espeak-ng): no real speech to test on"
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason=NO_ESPEAK)


def dataset_cfg(**overrides):
    base = dict(kind="audio_folder", root=None, max_items=None, sample_rate=24_000, channels=1, segment_seconds=1.0)
    return SimpleNamespace(**{**base, **overrides})


def tone(seconds: float, rate: int, hz: float = 1000.0, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * hz * np.arange(round(seconds * rate)) / rate)).astype(np.float32)


def read(path) -> tuple[np.ndarray, int]:
    """``(frames, channels)`` float32 and the rate, as soundfile reads them."""
    return soundfile.read(path, dtype="float32", always_2d=True)


def check_resampling(folder, names):
    """Each file of ``folder``, read by the dataset, equals soxr HQ called directly (whole and cropped)."""
    crops = build_dataset(dataset_cfg(root=str(folder.parent), segment_seconds=1.0), folder.name)
    whole = build_dataset(dataset_cfg(root=str(folder.parent), segment_seconds=None), folder.name)
    assert crops.resampler == "soxr HQ" and whole.variable_length and not crops.variable_length
    for index, name in enumerate(names):
        samples, rate = read(folder / name)
        expected = torch.from_numpy(soxr.resample(samples, rate, 24_000, quality="HQ")).T
        assert torch.equal(whole[index], expected)
        assert torch.equal(crops[index], expected[:, :24_000])  # decoding only the first 2 s changes nothing
    return crops


def test_resampling_is_soxr_hq_and_keeps_pitch(tmp_path):
    soundfile.write(tmp_path / "tone.flac", tone(3.0, 44_100), 44_100)
    crops = check_resampling(tmp_path, ["tone.flac"])
    spectrum = np.abs(np.fft.rfft(crops[0][0].numpy()))
    assert np.argmax(spectrum) == 1000  # 1-second crop: 1 Hz per bin


@needs_espeak
def test_resampling_speech(tmp_path):
    text = "The birch canoe slid on the smooth planks."
    subprocess.run(["espeak-ng", "-w", str(tmp_path / "speech.wav"), "-a", "60", text], check=True, capture_output=True)
    assert read(tmp_path / "speech.wav")[1] == 22_050
    check_resampling(tmp_path, ["speech.wav"])


def test_channels_mean_duplicate_or_skip(tmp_path):
    left, right = tone(1.0, 24_000, 440.0), tone(1.0, 24_000, 1000.0, 0.25)
    soundfile.write(tmp_path / "a_stereo.wav", np.stack([left, right], 1), 24_000, subtype="FLOAT")
    soundfile.write(tmp_path / "b_mono.wav", left, 24_000, subtype="FLOAT")
    soundfile.write(tmp_path / "c_six.wav", np.stack([left] * 6, 1), 24_000, subtype="FLOAT")
    mono = build_dataset(dataset_cfg(root=str(tmp_path.parent), channels=1), tmp_path.name)
    stereo = build_dataset(dataset_cfg(root=str(tmp_path.parent), channels=2), tmp_path.name)
    assert torch.equal(mono[0], torch.from_numpy((left[:, None] + right[:, None]) / 2).T)  # float WAV at the target rate: no resampling
    assert torch.equal(stereo[0], torch.from_numpy(np.stack([left, right])))
    assert stereo[1].shape == (2, 24_000) and torch.equal(stereo[1][0], stereo[1][1])
    assert torch.equal(mono[1][0], torch.from_numpy(left))
    assert mono[2].shape == (1, 24_000)
    assert isinstance(stereo[2], Skipped) and "6 channels" in stereo[2].reason


def test_fixed_segment_crops_and_pads(tmp_path):
    soundfile.write(tmp_path / "long.wav", tone(2.5, 24_000), 24_000, subtype="FLOAT")
    soundfile.write(tmp_path / "short.wav", tone(0.4, 24_000), 24_000, subtype="FLOAT")
    dataset = build_dataset(dataset_cfg(root=str(tmp_path.parent)), tmp_path.name)
    long, short = dataset[0], dataset[1]
    assert isinstance(long, torch.Tensor) and torch.equal(long[0], torch.from_numpy(tone(2.5, 24_000)[:24_000]))
    assert isinstance(short, Noted) and short.note == "padded" and short.x.shape == (1, 24_000)
    assert torch.equal(short.x[0, :9600], torch.from_numpy(tone(0.4, 24_000))) and not short.x[0, 9600:].any()
    batch = collate([long, short])
    assert batch.x.shape == (2, 1, 24_000) and batch.notes == {"padded": 1}
    whole = build_dataset(dataset_cfg(root=str(tmp_path.parent), segment_seconds=None), tmp_path.name)
    assert [whole[i].shape[1] for i in range(2)] == [60_000, 9600]  # variable length: batch size 1


def test_unreadable_files_are_skipped_with_reason(tmp_path):
    soundfile.write(tmp_path / "a_good.wav", tone(1.0, 16_000), 16_000)
    good = (tmp_path / "a_good.wav").read_bytes()
    (tmp_path / "b_truncated.wav").write_bytes(good[: len(good) // 2])
    (tmp_path / "c_empty.wav").write_bytes(b"")
    (tmp_path / "d_text.flac").write_text("not audio\n")
    soundfile.write(tmp_path / "e.flac", tone(1.0, 16_000), 16_000)
    flac = (tmp_path / "e.flac").read_bytes()
    (tmp_path / "e.flac").write_bytes(flac[: len(flac) // 2])
    streamed = bytearray(good)  # a WAV written to a pipe: data size is a placeholder, the audio is whole
    streamed[good.index(b"data") + 4 : good.index(b"data") + 8] = (0x7FFFF000).to_bytes(4, "little")
    (tmp_path / "f_streamed.wav").write_bytes(bytes(streamed))
    dataset = build_dataset(dataset_cfg(root=str(tmp_path.parent)), tmp_path.name)
    items = [dataset[i] for i in range(len(dataset))]
    assert isinstance(items[0], torch.Tensor) and isinstance(items[5], torch.Tensor) and torch.equal(items[0], items[5])
    reasons = {item.source.rsplit("/", 1)[1]: item.reason for item in items[1:5]}
    assert reasons["b_truncated.wav"].startswith("ValueError: truncated WAV: data chunk of 32000 bytes")
    assert "Format not recognised" in reasons["c_empty.wav"] and "Format not recognised" in reasons["d_text.flac"]
    assert reasons["e.flac"].startswith("LibsndfileError")
    assert [item.index for item in items[1:5]] == [1, 2, 3, 4]


def test_librispeech_and_libritts_layouts(tmp_path):
    for root, suffix in (("LibriSpeech", ".flac"), ("LibriTTS", ".wav")):
        names = ["1089/134686/1089-134686-0001", "1089/134686/1089-134686-0000", "121/121726/121-121726-0000"]
        for name in names:
            path = tmp_path / root / "test-clean" / f"{name}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, tone(1.2, 16_000), 16_000)
        (tmp_path / root / "test-clean" / "1089" / "134686" / "1089-134686.trans.txt").write_text("transcripts\n")
        (tmp_path / root / "test-clean" / "stray.flac").write_bytes(b"")  # not at <speaker>/<chapter>/
        kind = root.lower()
        dataset = build_dataset(dataset_cfg(kind=kind, root=str(tmp_path / root)), "test-clean")
        assert [p.relative_to(tmp_path / root / "test-clean").as_posix() for p in dataset.paths] == [f"{n}{suffix}" for n in sorted(names)]
        assert dataset[0].shape == (1, 24_000)
        assert len(build_dataset(dataset_cfg(kind=kind, root=str(tmp_path / root), max_items=2), "test-clean")) == 2
        with pytest.raises(BenchError, match="openslr.org"):
            build_dataset(dataset_cfg(kind=kind, root=str(tmp_path / root)), "dev-clean")


def test_fingerprint_changes_with_file_size(tmp_path):
    soundfile.write(tmp_path / "a.wav", tone(1.0, 16_000), 16_000)
    cfg = dataset_cfg(root=str(tmp_path.parent))
    before = build_dataset(cfg, tmp_path.name).fingerprint()
    assert build_dataset(cfg, tmp_path.name).fingerprint() == before
    soundfile.write(tmp_path / "a.wav", tone(1.5, 16_000), 16_000)
    assert build_dataset(cfg, tmp_path.name).fingerprint() != before


def test_bad_settings_are_one_line(tmp_path):
    with pytest.raises(BenchError, match="channels 1 or 2"):
        audio.AudioFiles([], 24_000, 3, 1.0)
    with pytest.raises(BenchError, match="holds no audio files"):
        build_dataset(dataset_cfg(root=str(tmp_path.parent)), tmp_path.name)


@needs_espeak
def test_builtin_speech_is_deterministic_and_split_by_sentence(tmp_path, monkeypatch):
    cfg = dataset_cfg(kind="builtin_speech")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "first"))
    test = build_dataset(cfg, "test")
    files = sorted(audio.speech_cache().rglob("*"))
    stamps = [path.stat().st_mtime_ns for path in files]
    again = build_dataset(cfg, "test")  # from the cache
    assert [path.stat().st_mtime_ns for path in sorted(audio.speech_cache().rglob("*"))] == stamps
    assert not [path for path in files if "partial" in path.name]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "second"))
    fresh = build_dataset(cfg, "test")  # synthesised again
    assert torch.equal(test.audio, again.audio) and torch.equal(test.audio, fresh.audio)
    assert test.fingerprint() == fresh.fingerprint() and test.espeak_version == audio.espeak_version()
    train = build_dataset(cfg, "train")
    assert 60 <= len(test) <= 100 and 250 <= len(train) <= 350
    assert test.audio.shape[1:] == (1, 24_000) and test.audio.abs().max() < 1
    assert set(test.sentences) == set(audio.SPEECH_SPLITS["test"]) and not set(test.sentences) & set(train.sentences)
    assert len(build_dataset(dataset_cfg(kind="builtin_speech", max_items=10), "test")) == 10


def test_builtin_speech_without_espeak_names_the_install(monkeypatch):
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    with pytest.raises(BenchError, match="apt-get install -y espeak-ng"):
        build_dataset(dataset_cfg(kind="builtin_speech"), "test")
