"""Video tokenizers (one file per family)."""
