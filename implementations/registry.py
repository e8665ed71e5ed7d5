"""Name -> factory registries for tokenizers and quantizers (in the spirit of timm's ``@register_model``).

A tokenizer factory is a plain function with typed keyword arguments that builds the parts
(encoder, quantizer, decoder) and returns a `Tokenizer`. Its registration records what a listing
needs without building the model: the default input shape and, where known, the official weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .checkpoints import WeightFile
from .protocol import Discriminator, Quantizer, Tokenizer

StateDict = dict  # parameter name -> tensor


@dataclass(frozen=True)
class TokenizerEntry:
    name: str
    factory: Callable[..., Tokenizer]
    input_shape: tuple[int, ...]
    pretrained: tuple[WeightFile, ...] = field(default=())
    convert: Callable[[StateDict], StateDict] | None = None  # the official checkpoint's keys -> ours


_TOKENIZERS: dict[str, TokenizerEntry] = {}
_QUANTIZERS: dict[str, type[Quantizer]] = {}
_DISCRIMINATORS: dict[str, type[Discriminator]] = {}


def register_tokenizer(
    *, input_shape: tuple[int, ...], pretrained: tuple[WeightFile, ...] = (), convert: Callable[[StateDict], StateDict] | None = None
):
    """Register a tokenizer factory under its function name, with its default input shape, its
    released weight files and the key map from their format to this module tree."""

    def decorator(factory: Callable[..., Tokenizer]) -> Callable[..., Tokenizer]:
        name = factory.__name__
        if name in _TOKENIZERS:
            raise ValueError(f"tokenizer {name!r} is registered twice")
        _TOKENIZERS[name] = TokenizerEntry(name, factory, tuple(input_shape), tuple(pretrained), convert)
        return factory

    return decorator


def _register_class(table: dict, kind: str, name: str):
    def decorator(cls):
        if name in table:
            raise ValueError(f"{kind} {name!r} is registered twice")
        table[name] = cls
        return cls

    return decorator


def register_quantizer(name: str):
    """Register a quantizer class under a short name (``vq``, ``fsq``, ``lfq``, ...)."""
    return _register_class(_QUANTIZERS, "quantizer", name)


def register_discriminator(name: str):
    """Register a discriminator class under a short name (``patchgan``, ``stylegan``, ``ms_stft``, ...)."""
    return _register_class(_DISCRIMINATORS, "discriminator", name)


def _lookup(table: dict, kind: str, name: str):
    _ensure_imported()
    if name not in table:
        raise KeyError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def tokenizer_entry(name: str) -> TokenizerEntry:
    return _lookup(_TOKENIZERS, "tokenizer", name)


def create_tokenizer(name: str, **kwargs) -> Tokenizer:
    """Build the registered tokenizer ``name`` with the factory's keyword arguments."""
    return tokenizer_entry(name).factory(**kwargs)


def list_tokenizers() -> list[str]:
    _ensure_imported()
    return sorted(_TOKENIZERS)


def create_quantizer(name: str, **kwargs) -> Quantizer:
    """Build the registered quantizer ``name`` (e.g. ``create_quantizer("vq", dim=64, codebook_size=512)``)."""
    return _lookup(_QUANTIZERS, "quantizer", name)(**kwargs)


def list_quantizers() -> list[str]:
    _ensure_imported()
    return sorted(_QUANTIZERS)


def discriminator_class(name: str) -> type[Discriminator]:
    return _lookup(_DISCRIMINATORS, "discriminator", name)


def create_discriminator(name: str, **kwargs) -> Discriminator:
    """Build the registered discriminator ``name`` (e.g. ``create_discriminator("patchgan", in_channels=3)``)."""
    return discriminator_class(name)(**kwargs)


def list_discriminators() -> list[str]:
    _ensure_imported()
    return sorted(_DISCRIMINATORS)


def _ensure_imported() -> None:
    # Importing the model packages runs their @register_* decorators.
    from . import audio, image, quantizers, video  # noqa: F401
    from .modules import discriminators  # noqa: F401
