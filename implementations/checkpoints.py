"""Weight files are found, never downloaded.

A `WeightFile` says what a released file is (name, where it is published, sha256 when known); 
`find_weights` looks for it in order: an explicit path, the Hugging Face cache (through
``huggingface_hub`` with ``local_files_only=True``, so whoever ran the authors' code already has it),
the torch hub cache (``$TORCH_HOME/hub/checkpoints``), then the other places the file is known to
sit (a package that ships it, another library's cache). When it is nowhere, `MissingWeightsError`
says in one line which file, where to get it and where to put it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch


class MissingWeightsError(FileNotFoundError):
    """A weight file is not on this machine; the message names it, its source and a place to put it."""


class CorruptWeightsError(ValueError):
    """A weight file was found but its sha256 is not the published one."""


@dataclass(frozen=True)
class WeightFile:
    filename: str
    url: str  # where it is published
    sha256: str = ""  # full hex digest, or a published prefix (torchvision's file names carry 8 hex digits)
    hf_repo: str = ""  # a Hugging Face repo holding it as ``filename`` (looked up in the local cache only)
    also_at: tuple[str, ...] = field(default=())  # other known locations (``~`` expanded)
    licence: str = ""
    notes: str = ""  # format, published name, input preprocessing


def torch_hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _huggingface_cached(file: WeightFile) -> Path | None:
    if not file.hf_repo:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo_id=file.hf_repo, filename=file.filename)
    return Path(found) if isinstance(found, str) else None


def candidates(file: WeightFile, explicit: str | os.PathLike | None = None) -> list[Path]:
    """Where `find_weights` looks, in order."""
    places = [Path(explicit).expanduser()] if explicit else []
    cached = _huggingface_cached(file)
    places += [cached] if cached else []
    places.append(torch_hub_checkpoints() / file.filename)
    places += [Path(p).expanduser() for p in file.also_at]
    return places


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_weights(file: WeightFile, explicit: str | os.PathLike | None = None, *, verify: bool = True) -> Path:
    """The path of ``file`` on this machine (checked against its sha256 when ``verify``)."""
    if explicit and not Path(explicit).expanduser().is_file():
        raise MissingWeightsError(f"{explicit} does not exist (given as the path of {file.filename}, published at {file.url})")
    for path in candidates(file, explicit):
        if path.is_file():
            if verify and file.sha256 and not sha256_of(path).startswith(file.sha256):
                raise CorruptWeightsError(f"{path}: sha256 is not the published {file.sha256}: a different or damaged {file.filename}")
            return path
    raise MissingWeightsError(
        f"{file.filename} is not on this machine: download {file.url} and put it at {torch_hub_checkpoints() / file.filename}"
        + (f" (or fetch it into the Hugging Face cache: hf download {file.hf_repo} {file.filename})" if file.hf_repo else "")
    )
