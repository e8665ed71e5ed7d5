"""Image tokenizers (one file per family)."""

from . import vqgan, vqvae  # noqa: F401  (registers the factories)
