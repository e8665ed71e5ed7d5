"""Audio tokenizers (one file per family)."""
