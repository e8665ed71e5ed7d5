"""Audio datasets: files in a folder tree (any folder, LibriSpeech, LibriTTS) and the built-in offline
speech suite (`builtin_speech`, espeak-ng speech).

Every item is a float32 tensor ``(channels, samples)`` in [-1, 1] at the suite's ``sample_rate``, as
the audio tokenizers take it (``implementations/audio``). Files are decoded by libsndfile through
``soundfile`` (WAV, FLAC, Ogg) and resampled with ``soxr`` at quality "HQ" (`RESAMPLER`); a file at
the target rate is not resampled. Channels: ``channels=1`` takes the mean of a file's channels, a
mono file becomes stereo by duplication, any other mismatch (e.g. 6 channels -> 2) is `Skipped`.
Values are clipped to [-1, 1] (float files and resampling can overshoot full scale a little).

Two segment protocols (``segment_seconds``):

* a number: the first ``segment_seconds`` of every file (deterministic, no random crop); a shorter
  file is zero-padded and `Noted` "padded". Only ``ceil(segment_seconds * rate)`` frames plus one
  second are decoded: soxr's HQ filter is far shorter than that margin, so the crop equals the same
  crop of the whole file resampled (tested).
* None: whole utterances, of different lengths. Such a dataset has ``variable_length = True`` and its
  items cannot be stacked into batches: the evaluation runs it at batch size 1.

A file that cannot be read is `Skipped` with the reason (``bench.data.items``), never an exception:
libsndfile's errors (empty file, unknown format, FLAC that lost sync), a WAV whose data chunk
declares more bytes than the file holds (libsndfile reads it without complaint, shortened; see
`wav_truncation`), fewer frames than the header states, no samples, non-finite samples.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile
import soxr
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import BenchError
from .images import subset
from .items import FileItems, Item, Noted, Skipped

RESAMPLER = "soxr HQ"  # python-soxr's resample(..., quality="HQ"); the record carries it
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}
UNREADABLE = (soundfile.SoundFileError, RuntimeError, ValueError, OSError)
STREAMED_WAV_SIZES = 0x7FFF0000  # data-chunk sizes from here up are placeholders of WAVs written to a pipe
SAMPLE_RATE, CHANNELS, SEGMENT_SECONDS = 24_000, 1, 1.0  # defaults of the DatasetConfig fields


def wav_truncation(path: Path) -> str | None:
    """Why a RIFF/WAVE file is truncated (its data chunk declares more bytes than follow it), or None.
    Sizes of 0 or from `STREAMED_WAV_SIZES` up are what programs writing to a pipe put there
    (``espeak-ng --stdout`` writes 0x7FFFF000) and are not taken as a truncation."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return None
        offset = 12
        while offset + 8 <= size:
            file.seek(offset)
            chunk = file.read(8)
            length = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                held = size - offset - 8
                if 0 < length < STREAMED_WAV_SIZES and length > held:
                    return f"truncated WAV: data chunk of {length} bytes, the file holds {held}"
                return None
            offset += 8 + length + (length & 1)  # chunks are padded to an even size
    return None


def read_audio(path: Path, seconds: float | None = None) -> tuple[np.ndarray, int]:
    """``(frames, channels)`` float32 samples of a file and its rate: all of it, or its first ``seconds``
    plus one second (the resampler's margin). Raises one of `UNREADABLE`."""
    truncated = wav_truncation(path)
    if truncated:
        raise ValueError(truncated)
    with soundfile.SoundFile(path) as file:
        rate, frames = file.samplerate, file.frames
        wanted = frames if seconds is None else min(frames, math.ceil(seconds * rate) + rate)
        samples = file.read(wanted, dtype="float32", always_2d=True)
    if len(samples) < wanted:
        raise ValueError(f"truncated: {len(samples)} of {wanted} frames decoded")
    if len(samples) == 0:
        raise ValueError("no audio samples")
    if not np.isfinite(samples).all():
        raise ValueError("non-finite samples")
    return samples, rate


def to_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    """``(frames, C)`` -> ``(frames, channels)``: mean for mono, duplication of mono; raises ValueError otherwise."""
    have = samples.shape[1]
    if have == channels:
        return samples
    if channels == 1:
        return samples.mean(axis=1, keepdims=True)
    if have == 1:
        return np.repeat(samples, channels, axis=1)
    raise ValueError(f"{have} channels: no defined conversion to {channels}")


def resample(samples: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    """``(frames, C)`` at ``rate`` -> ``(frames', C)`` at ``sample_rate`` with `RESAMPLER`, clipped to [-1, 1]."""
    if rate != sample_rate:
        samples = soxr.resample(samples, rate, sample_rate, quality="HQ")
    return np.clip(samples, -1.0, 1.0)


def check_audio_settings(sample_rate: int, channels: int, segment_seconds: float | None) -> None:
    if sample_rate <= 0 or channels not in (1, 2) or (segment_seconds is not None and segment_seconds <= 0):
        raise BenchError(f"suite.dataset: sample_rate={sample_rate} channels={channels} segment_seconds={segment_seconds}: "
                         "need sample_rate > 0, channels 1 or 2, segment_seconds > 0 or null (whole utterances)")  # fmt: skip


class AudioFiles(FileItems):
    """Audio files as ``(channels, samples)`` float32 in [-1, 1] at ``sample_rate``: the first
    ``segment_seconds`` of each (``samples = round(segment_seconds * sample_rate)``), or whole
    utterances when it is None (``variable_length``: evaluated at batch size 1). See the module docstring."""

    resampler = RESAMPLER

    def __init__(self, paths: list[Path], sample_rate: int, channels: int, segment_seconds: float | None):
        check_audio_settings(sample_rate, channels, segment_seconds)
        self.paths = paths
        self.sample_rate = sample_rate
        self.channels = channels
        self.segment_seconds = segment_seconds
        self.variable_length = segment_seconds is None

    def __getitem__(self, index: int) -> Item:
        try:
            samples, rate = read_audio(self.paths[index], self.segment_seconds)
            samples = resample(to_channels(samples, self.channels), rate, self.sample_rate)
        except UNREADABLE as error:
            return Skipped(index, self.source(index), f"{type(error).__name__}: {error}")
        x = torch.from_numpy(np.ascontiguousarray(samples.T))
        if self.segment_seconds is None:
            return x
        length = round(self.segment_seconds * self.sample_rate)
        if x.shape[1] >= length:
            return x[:, :length].contiguous()
        return Noted(torch.nn.functional.pad(x, (0, length - x.shape[1])), "padded")


def audio_settings(cfg) -> tuple[int, int, float | None]:
    """``(sample_rate, channels, segment_seconds)`` of a DatasetConfig, with this module's defaults."""
    return (getattr(cfg, "sample_rate", SAMPLE_RATE), getattr(cfg, "channels", CHANNELS),
            getattr(cfg, "segment_seconds", SEGMENT_SECONDS))  # fmt: skip


def split_folder(cfg, split: str, hint: str) -> Path:
    if cfg.root is None:
        raise BenchError(f"suite.dataset.root is not set: point it at the folder holding the splits ({hint})")
    folder = Path(cfg.root).expanduser() / split
    if not folder.is_dir():
        raise BenchError(f"dataset folder {folder} does not exist: {hint}")
    return folder


def audio_files(cfg, paths: list[Path], where: Path, pattern: str) -> AudioFiles:
    if not paths:
        raise BenchError(f"dataset folder {where} holds no audio files ({pattern})")
    return AudioFiles(subset(paths, cfg.max_items), *audio_settings(cfg))


def audio_folder(cfg, split: str) -> AudioFiles:
    """``<root>/<split>/**/*.{wav,flac,ogg}``, in sorted order."""
    folder = split_folder(cfg, split, "download the data and set suite.dataset.root")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    return audio_files(cfg, paths, folder, ", ".join(sorted(AUDIO_SUFFIXES)))


def librispeech(cfg, split: str) -> AudioFiles:
    """LibriSpeech (Panayotov et al. 2015, https://www.openslr.org/12) as extracted:
    ``<root>/<split>/<speaker>/<chapter>/*.flac`` (16 kHz mono), root being the ``LibriSpeech`` folder
    and split e.g. "test-clean" (2,620 utterances). Sorted by path."""
    folder = split_folder(cfg, split, "extract e.g. test-clean.tar.gz from https://www.openslr.org/12 in suite.dataset.root")
    return audio_files(cfg, sorted(folder.glob("*/*/*.flac")), folder, "<speaker>/<chapter>/*.flac")


def libritts(cfg, split: str) -> AudioFiles:
    """LibriTTS (Zen et al. 2019, https://www.openslr.org/60) as extracted:
    ``<root>/<split>/<speaker>/<chapter>/*.wav`` (24 kHz mono), root being the ``LibriTTS`` folder and
    split e.g. "test-clean". Sorted by path."""
    folder = split_folder(cfg, split, "extract e.g. test-clean.tar.gz from https://www.openslr.org/60 in suite.dataset.root")
    return audio_files(cfg, sorted(folder.glob("*/*/*.wav")), folder, "<speaker>/<chapter>/*.wav")


# --- the built-in offline speech suite ----------------------------------------------------------

# Harvard sentences, lists 1, 2 and the first four of list 3 ("IEEE Recommended Practice for Speech
# Quality Measurements", IEEE Trans. Audio Electroacoust. 17(3), 1969, Appendix C; public domain).
SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
    "The small pup gnawed a hole in the sock.",
    "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.",
    "The swan dive was far short of perfect.",
)
# espeak-ng voice (language + variant), -s words per minute, -p pitch (0..99)
VOICES = (
    ("en-us", 175, 50), ("en-gb", 175, 50), ("en-us+f3", 160, 60), ("en-gb+m3", 190, 40),
    ("en-us+f4", 150, 70), ("en-gb-x-rp+m7", 170, 30), ("en-gb-scotland+f2", 165, 55), ("en-029+m1", 180, 45),
)  # fmt: skip
AMPLITUDE = 60  # espeak-ng -a (default 100 peaks at full scale, which resampling then overshoots): peaks ~0.6
SPEECH_SPLITS = {"test": tuple(range(3, len(SENTENCES), 4))}  # every fourth sentence; the others train
SPEECH_SPLITS["train"] = tuple(i for i in range(len(SENTENCES)) if i not in SPEECH_SPLITS["test"])
ESPEAK_MISSING = "espeak-ng is not installed: builtin_speech synthesises its speech with it (Debian/Ubuntu: apt-get install -y espeak-ng)"


def espeak_version() -> str:
    """The installed espeak-ng's version, e.g. "1.51": other versions speak differently, so bit-exact
    reproduction of `builtin_speech` needs the same one. Raises `BenchError` when it is missing."""
    if shutil.which("espeak-ng") is None:
        raise BenchError(ESPEAK_MISSING)
    line = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    found = re.search(r"text-to-speech:\s*(\S+)", line)
    return found.group(1) if found else line


def speech_cache() -> Path:
    """``$XDG_CACHE_HOME/tokenizer-bench/builtin_speech`` (``~/.cache/...`` when unset)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "tokenizer-bench" / "builtin_speech"


def speak(text: str, voice: tuple[str, int, int], path: Path) -> None:
    """``espeak-ng -w`` one sentence into ``path`` (22,050 Hz 16-bit mono WAV), atomically."""
    name, speed, pitch = voice
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".partial.wav")
    os.close(handle)
    try:
        command = ["espeak-ng", "-w", partial, "-v", name, "-s", str(speed), "-p", str(pitch), "-a", str(AMPLITUDE), text]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchError(f"espeak-ng -v {name} failed ({done.returncode}): {done.stderr.strip()}")
        os.replace(partial, path)
    finally:
        Path(partial).unlink(missing_ok=True)


def synthesised(sentences: tuple[int, ...], version: str) -> dict[tuple[int, int], Path]:
    """WAV files of ``sentences`` (indices into `SENTENCES`) in every voice, keyed ``(sentence, voice)``:
    synthesised once into `speech_cache`, in a folder named by the espeak-ng ``version`` and a hash of
    the sentences, voices and amplitude."""
    key = hashlib.sha256(json.dumps([version, SENTENCES, VOICES, AMPLITUDE]).encode()).hexdigest()[:16]
    folder = speech_cache() / f"espeak-ng-{version}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {(s, v): folder / f"{s:02d}-{v}.wav" for s in sentences for v in range(len(VOICES))}
    missing = [(s, v) for (s, v), path in paths.items() if not path.exists()]
    with ThreadPoolExecutor(max(1, len(os.sched_getaffinity(0)))) as pool:
        list(pool.map(lambda sv: speak(SENTENCES[sv[0]], VOICES[sv[1]], paths[sv]), missing))
    return paths


class AudioSegments(Dataset):
    """Items of a ``(N, channels, samples)`` tensor in [-1, 1]; ``sources[i]`` names where item i comes
    from and ``sentences[i]`` its sentence (an index into `SENTENCES`)."""

    resampler = RESAMPLER
    variable_length = False

    def __init__(self, audio: Tensor, sources: list[str], sentences: list[int], espeak: str):
        self.audio = audio
        self.sources = sources
        self.sentences = sentences
        self.espeak_version = espeak

    def __len__(self) -> int:
        return len(self.audio)

    def __getitem__(self, index: int) -> Tensor:
        return self.audio[index]

    def source(self, index: int) -> str:
        return self.sources[index]

    def fingerprint(self) -> str:
        """Names the items by their values."""
        return hashlib.sha256(self.audio.contiguous().numpy().tobytes()).hexdigest()


def builtin_speech(cfg, split: str) -> AudioSegments:
    """The built-in offline speech suite: the 24 Harvard `SENTENCES`, each spoken by the 8 espeak-ng
    `VOICES` (Debian's espeak-ng, speech no one here recorded), resampled to ``sample_rate`` and cut into
    consecutive ``segment_seconds`` segments (a shorter remainder is dropped). Split by sentence: every
    fourth sentence is "test" (6 sentences, 99 one-second segments at 24 kHz with espeak-ng 1.51), the
    others "train" (18 sentences, 286 segments), so no test sentence is heard in training. The WAV files
    are synthesised once into `speech_cache` (both splits: about 2.4 s on 2 CPU cores, 0.3 s from the
    cache); the dataset records `espeak_version`, as bit-exact reproduction needs the same espeak-ng."""
    if split not in SPEECH_SPLITS:
        raise BenchError(f"the built-in speech suite has splits {', '.join(SPEECH_SPLITS)}, not {split!r}")
    sample_rate, channels, segment_seconds = audio_settings(cfg)
    check_audio_settings(sample_rate, channels, segment_seconds)
    if segment_seconds is None:
        raise BenchError("builtin_speech cuts fixed segments: set suite.dataset.segment_seconds (e.g. 1.0)")
    version = espeak_version()
    length = round(segment_seconds * sample_rate)
    segments, sources, sentences = [], [], []
    for (sentence, voice), path in synthesised(SPEECH_SPLITS[split], version).items():
        samples, rate = read_audio(path)
        samples = resample(to_channels(samples, channels), rate, sample_rate).T
        name, speed, pitch = VOICES[voice]
        for k in range(samples.shape[1] // length):
            segments.append(torch.from_numpy(np.ascontiguousarray(samples[:, k * length : (k + 1) * length])))
            sources.append(f"Harvard sentence {sentence + 1}, espeak-ng -v {name} -s {speed} -p {pitch} -a {AMPLITUDE}, segment {k}")
            sentences.append(sentence)
    keep = subset(list(range(len(segments))), cfg.max_items)
    return AudioSegments(torch.stack([segments[i] for i in keep]), [sources[i] for i in keep], [sentences[i] for i in keep], version)
