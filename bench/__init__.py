"""Benchmark harness: evaluation of tokenizers and micro-benchmarks of their parts (``bench.perf``)."""
