"""Image tokenizers (one file per family)."""

from . import dalle, llamagen, maskgit, vqgan, vqvae  # noqa: F401  (registers the factories)
from . import open_magvit2, rqvae  # noqa: F401
