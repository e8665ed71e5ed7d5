"""Benchmark harness for discrete tokenizers: metrics, data, runs."""
