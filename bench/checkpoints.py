"""Saving and loading weights: atomic writes, ``weights_only=True`` or safetensors loads, strict keys."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any, Callable

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
    if path.stat().st_size == 0:
        raise BenchError(f"checkpoint {path} is empty (0 bytes): an interrupted download or copy?")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        with torch.serialization.safe_globals([argparse.Namespace]):  # fairseq files keep their options as a Namespace
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling and safetensors errors come in many types
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise BenchError(f"cannot load checkpoint {path}: {reason}") from error


def load_weights(model: nn.Module, path: str | Path, convert: Callable[[dict], dict] | None = None) -> None:
    """Load weights into ``model``, strictly: a weights file of this harness (``{"model", "train"}``),
    or an official checkpoint (a plain state dict, or the weights under ``"ema"``, ``"model"`` or
    ``"state_dict"``, in that order, as LlamaGen's and Lightning's files hold them) through the
    architecture's key map ``convert``. A file that does not fit is one line
    naming what is missing, unexpected or of another shape."""
    state = load(path)
    if not isinstance(state, dict):
        raise BenchError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    if not state:
        raise BenchError(f"checkpoint {path} holds an empty dict, not a state dict")
    if "model" in state and "train" in state:
        state = state["model"]
    else:
        state = next((state[key] for key in ("ema", "model", "state_dict") if key in state), state)
        if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
            kinds = sorted({type(value).__name__ for value in (state.values() if isinstance(state, dict) else [state])})
            raise BenchError(f"checkpoint {path} is not a state dict of tensors (found {', '.join(kinds)}; top-level keys: {', '.join(map(str, list(load(path))[:5]))})")
        if convert is not None:
            try:
                state = convert(state)
            except KeyError as error:
                raise BenchError(f"checkpoint {path}: {error.args[0]}") from error
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    reshaped = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
    if missing or unexpected or reshaped:
        problems = [f"{len(found)} {what} ({', '.join(found[:3])}{', ...' if len(found) > 3 else ''})"
                    for what, found in (("missing", missing), ("unexpected", unexpected), ("of another shape, file vs model", reshaped)) if found]  # fmt: skip
        raise BenchError(f"checkpoint {path} does not fit {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
