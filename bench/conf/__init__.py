"""Hydra config tree of `python -m bench.run` (a package so tests can compose it)."""
