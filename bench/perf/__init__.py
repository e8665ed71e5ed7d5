"""Speed and memory micro-benchmarks, run as ``python -m bench.perf <suite> [options]``.

Suites: ``quantizers`` (our quantizers against vector-quantize-pytorch at the same settings).
"""
