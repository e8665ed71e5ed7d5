"""Self-contained PyTorch implementations of discrete tokenizers and their quantizers.

Imports torch (and einops) only; never ``bench``, hydra or a reference package.
"""

from .protocol import Discriminator, DiscriminatorOutput, Quantizer, QuantizerOutput, Tokenizer, TokenizerOutput
from .registry import (
    PretrainedWeights,
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
    "PretrainedWeights",
    "Quantizer",
    "QuantizerOutput",
    "Tokenizer",
    "TokenizerOutput",
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
