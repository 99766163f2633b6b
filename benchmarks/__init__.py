"""Benchmarks: heavy, architecture-faithful measurements kept out of the test suite.

    python -m benchmarks            # generation speed, re-rank share, UNet FLOP/s, memory
    python -m benchmarks eval       # zero-shot evaluation throughput against transformers' pipeline
"""
