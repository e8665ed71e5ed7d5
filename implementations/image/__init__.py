"""Image tokenizers (one file per family)."""

from . import llamagen, vqgan, vqvae  # noqa: F401  (registers the factories)
