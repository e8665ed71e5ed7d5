"""Benchmark harness for discrete tokenizers: configs, data, metrics, training, evaluation, records, leaderboards."""
