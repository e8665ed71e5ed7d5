"""Audio tokenizers (one file per family)."""

from . import encodec  # noqa: F401  (registers the factories)
