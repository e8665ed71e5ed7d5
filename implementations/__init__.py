"""Self-contained PyTorch implementations of discrete tokenizers and their quantizers.

Imports torch (and einops) only; never ``bench``, hydra or a reference package.
"""

from .protocol import Discriminator, DiscriminatorOutput, Quantizer, QuantizerOutput, Tokenizer, TokenizerOutput
from .checkpoints import WeightFile
from .registry import (
    create_discriminator,
    create_quantizer,
    create_tokenizer,
    list_discriminators,
    list_quantizers,
    list_tokenizers,
    register_discriminator,
    register_quantizer,
    register_tokenizer,
    tokenizer_entry,
)

__all__ = [
    "Discriminator",
    "DiscriminatorOutput",
    "Quantizer",
    "QuantizerOutput",
    "Tokenizer",
    "TokenizerOutput",
    "WeightFile",
    "create_discriminator",
    "create_quantizer",
    "create_tokenizer",
    "list_discriminators",
    "list_quantizers",
    "list_tokenizers",
    "register_discriminator",
    "register_quantizer",
    "register_tokenizer",
    "tokenizer_entry",
]
