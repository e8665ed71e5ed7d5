"""What the golden-file scripts share: importing official code from a checkout given on the command
line (never a copy in this repository) and the command line itself."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import types
from pathlib import Path

import torch


def module_from_file(path: Path, name: str) -> types.ModuleType:
    """Import one official file as module ``name``, whatever package it sits in."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def stand_in(name: str, path: Path | None = None, **attributes) -> types.ModuleType:
    """Put a module ``name`` in ``sys.modules`` instead of the official one: empty, with ``attributes``,
    and with ``path`` its package folder (so that its submodules import from the checkout, its own
    ``__init__`` not run)."""
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    if path is not None:
        module.__path__ = [str(path)]
    sys.modules[name] = module
    return module


def instantiate_from_config(config: dict):
    """The official repositories' config helper: the class named by ``target`` called with ``params``."""
    module, name = config["target"].rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**config.get("params", {}))


def arguments(doc: str, what: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("official", type=Path, help=what)
    parser.add_argument("out", type=Path, help="the golden file to write")
    return parser.parse_args()


def perturb_and_image_input(model):
    """The golden image models' common setup: every parameter moved by N(0, 0.05) from the global RNG
    (non-trivial norms and biases), eval mode, and the input ``(2, 3, 16, 16)`` in [-1, 1] drawn from
    its own generator (seed 1)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.eval()
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
