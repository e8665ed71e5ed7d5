"""Saving and loading weights: atomic writes, ``weights_only=True`` or safetensors loads, strict keys."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import BenchError
from .files import atomic_write_bytes


def save(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary file, then rename: a killed job never leaves half a checkpoint."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise BenchError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise BenchError(f"cannot load checkpoint {path}: {error}") from error


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a state dict saved by this harness (strict: every key must match)."""
    state = load(path)
    state = state.get("model", state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise BenchError(f"checkpoint {path} does not fit {type(model).__name__}: {first_line}") from error
