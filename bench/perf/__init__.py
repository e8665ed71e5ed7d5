"""Speed and memory micro-benchmarks, run as ``python -m bench.perf <suite> [options]``.

Suites: ``quantizers`` (our quantizers against vector-quantize-pytorch at the same settings), ``train``
(a VQGAN training step against taming-transformers'), ``models`` (encode + decode against the official
code), ``eval`` (the evaluation pass). Every comparison is timed alike by `measure.interleaved`.
"""
