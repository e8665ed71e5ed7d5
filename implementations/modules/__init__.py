"""Building blocks shared by several tokenizer families."""
