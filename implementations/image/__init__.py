"""Image tokenizers (one file per family)."""

from . import llamagen, maskgit, vqgan, vqvae  # noqa: F401  (registers the factories)
