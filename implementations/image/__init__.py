"""Image tokenizers (one file per family)."""

from . import vqvae  # noqa: F401  (registers the factories)
